"""Loopback stand-ins for provider APIs, used by adapter, SDK and end-to-end tests."""
