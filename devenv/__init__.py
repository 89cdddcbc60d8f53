"""Local development environment: Azurite, the demo tenant and page, and `make run`. Not deployed."""
