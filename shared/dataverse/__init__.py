"""Dynamics 365 (Dataverse) as a delivery target: the tenant's target and its secret, the Web API client, and what
the deliverer keeps besides (dead letters, receipts). The deliverer itself is shared/lifecycle/dataverse_push.py."""
