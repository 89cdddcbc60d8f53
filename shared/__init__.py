"""Business rules of PackCloud, shared by every function module. Never imports azure.functions."""
