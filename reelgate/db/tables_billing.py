"""Tables of the billing feature (declared on the shared Base in reelgate.db.tables)."""
