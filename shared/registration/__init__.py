"""The registration engine of the home deployment, and provisioning tenants in their regions."""
