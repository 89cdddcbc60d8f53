"""A function app for bench/async_pixel.py only: the pixel as an async function over azure.storage.blob.aio."""
