"""PowerSMS: text messages sent through the tenant's Twilio account, its status callbacks and inbound messages."""
