"""What happens to captured data after capture: delivery, data-subject requests, the report, the purge."""
