"""Clients of the real services (over httpx2)."""
