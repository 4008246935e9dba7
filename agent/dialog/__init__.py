"""The payment conversation: a pure policy (``policy.py``) driven by a session that does I/O."""
