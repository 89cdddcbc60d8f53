"""PowerEmail delivery events: SendGrid's Event Webhook, verified, minimised, deduplicated, stored as records."""
