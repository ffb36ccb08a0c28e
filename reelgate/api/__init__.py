"""HTTP API: thin routes over the services, the contract's error shape, and provider webhooks."""
