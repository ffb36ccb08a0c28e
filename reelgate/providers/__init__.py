"""Provider adapters: one module per vendor behind the small interface in base.py."""
