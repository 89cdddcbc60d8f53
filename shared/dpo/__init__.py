"""DPO notifications: a tenant's webhook, signed events about its datasets, an outbox drained with retries."""
