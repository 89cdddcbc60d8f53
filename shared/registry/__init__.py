"""The purpose registry: tenants, datasets and their declarations, tenant keys, and where a tenant lives."""
