"""Text messages: the outbox table is the source of truth; gateways deliver from it."""
