"""A small local host for the function app: a development aid where Azure Functions Core Tools is missing.

It serves the HTTP functions that `function_app.py` registers (routes, methods, route parameters and auth
levels read from the app itself) and runs timer functions on their NCRONTAB schedules. Production runs on
Azure Functions, and `func start` keeps working for people who have Core Tools.
"""
