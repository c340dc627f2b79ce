"""The event envelope every module publishes and consumes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One event on a topic.

    ``key`` is the partition key: events with the same key are delivered in publish order to a
    consumer group. ``event_id`` is unique per event and is what idempotent consumers dedupe on
    (an outbox re-publishing an event keeps its id). ``payload`` is a JSON-serialisable dict.
    """

    topic: str
    key: str
    payload: dict[str, Any]
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    occurred_at_s: float = field(default_factory=time.time)
    headers: dict[str, str] = field(default_factory=dict)
