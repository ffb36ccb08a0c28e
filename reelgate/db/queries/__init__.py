"""Every SQL statement of reelgate, as named functions per concept. Each takes the Tx of the transaction (or read)
it runs in, as the first argument; services compose them inside `db.write(...)` / `db.read(...)`."""
