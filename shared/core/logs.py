"""What the app's loggers may write: no request URL of any client library.

Pixel and link URLs carry personal values in their queries, and the storage requests of PackCloud carry
subject hashes (pseudonyms) in tag queries (`where=`) and in the names of personal state blobs. The Azure SDK's
HTTP logging policy logs every storage and Key Vault request URL at INFO (query values redacted, paths not),
its deserializer logs response bodies at DEBUG, and urllib3 logs each request line, query included, at DEBUG
(and whole URLs in a few warnings). In Azure the Python worker forwards these records to Application Insights
as traces, so they are held at WARNING (urllib3: ERROR) whatever the root level is; PackCloud's own loggers
(`packcloud.*`) never log a value, only ids, counts and error class names.
"""

from __future__ import annotations

import logging

REQUEST_LOGGERS: dict[str, int] = {
    "azure": logging.WARNING,  # azure.core's HTTP logging policy, azure.storage, azure.identity, azure.keyvault
    "msal": logging.WARNING,  # under azure-identity: token requests and cache events at DEBUG
    "urllib3": logging.ERROR,
    "aiohttp": logging.WARNING,  # the aio storage client's transport (shared/storage/aio_blobs.py)
    "requests": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "twilio": logging.WARNING,  # twilio.http_client logs each request's URL and headers at INFO
}


def quiet_request_logs() -> None:
    """Hold the client libraries' request logging below the level at which it would name a URL."""
    for name, level in REQUEST_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
