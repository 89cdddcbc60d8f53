"""Web forms: intake, body parsing, idempotency markers, rate limit, the embeddable snippet."""
