"""What every sink is: send a batch, say how many events were dropped (best-effort only), or raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from onexd.errors import DeliveryError as DeliveryError


@dataclass(frozen=True, slots=True)
class SendResult:
    """sent: events handed to the receiver; dropped: events a best-effort sink gave up on (never retried)."""

    sent: int
    dropped: int = 0


class Sink(Protocol):
    name: str

    def send(self, events: list[dict[str, Any]]) -> SendResult:
        """Deliver a batch or raise: a batch that raises is sent again later, whole."""
