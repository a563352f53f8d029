"""Inbound for other systems: customers named by any identity, Idempotency-Key, business events and their rules,
and polling by update time."""
