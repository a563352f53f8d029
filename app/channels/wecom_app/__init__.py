"""The WeCom self-built app channel: callbacks (/callbacks/wecom/app and /callbacks/wecom/contacts), the event
dispatch map other packages register into, and the outbox adapter that sends app messages (cards) to staff."""

from __future__ import annotations
