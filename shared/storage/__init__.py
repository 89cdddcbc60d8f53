"""Storage: Blob Storage (containers, tags, timeouts), the secret store, the app identity, the audit log."""
