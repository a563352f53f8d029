"""Outbound webhooks: subscriptions, Standard Webhooks signing, delivery through the outbox, the delivery log."""
