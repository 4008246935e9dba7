"""Secure payment links: random tokens, stored only as hashes, expiring, single use."""
