"""Where the engine says what it is doing: named events with plain fields, for people and schedulers.

Every layer reports through an `EventSink`; the CLI renders events as text or JSON lines. Fields hold
chunk numbers, job ids, counts and messages: never tokens, secrets, passwords or users.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class EventSink(Protocol):
    """Receives one event: its name and its fields."""

    def __call__(self, name: str, fields: Mapping[str, object], /) -> None: ...


def discard(name: str, fields: Mapping[str, object], /) -> None:
    """An EventSink that drops every event (library callers that do not listen)."""


def info(events: EventSink, message: str) -> None:
    """A line of information for people (an `info` event)."""
    events("info", {"message": message})


def warning(events: EventSink, message: str) -> None:
    """Something a person should know before it costs them (a `warning` event, shown even with
    --quiet)."""
    events("warning", {"message": message})
