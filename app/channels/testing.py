"""A recording adapter for tests and demos (Dispatch keeps its test plugins in the tree too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.channels.base import DeliveryResult
from app.errors import PermanentChannelError, TemporaryChannelError

if TYPE_CHECKING:
    from app.outbox.models import OutboxMessage


@dataclass
class RecordingAdapter:
    kind: str = "test"
    sent: list[dict[str, Any]] = field(default_factory=list)
    #: exceptions to raise on the next sends, first first
    failures: list[Exception] = field(default_factory=list)

    async def send(self, message: OutboxMessage) -> DeliveryResult:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append({"id": message.id, "recipient": message.recipient, "payload": message.payload})
        return DeliveryResult(provider_msg_id=f"test-{message.id}")

    def fail_next(self, *, temporary: bool = True, times: int = 1) -> None:
        for _ in range(times):
            self.failures.append(
                TemporaryChannelError("simulated outage") if temporary else PermanentChannelError("simulated refusal")
            )
