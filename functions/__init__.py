"""One module per capability; each exposes a Blueprint `bp` that function_app.py registers."""
