"""Repair tools: replay failed outbox messages and stored callbacks."""
