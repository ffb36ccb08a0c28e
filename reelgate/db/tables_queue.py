"""Tables of the queue feature (declared on the shared Base in reelgate.db.tables)."""
