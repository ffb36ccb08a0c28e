"""Tables of the webhooks feature (declared on the shared Base in reelgate.db.tables)."""
