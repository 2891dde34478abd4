"""Reading a GET /events stream in tests: a plain HTTP client and a line parser, so the
tests see exactly the bytes a client gets."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    event: str
    data: str
    id: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class EventReader:
    """Events as they arrive; ``comments`` counts heartbeat lines."""

    response: httpx.Response
    lines: Iterator[str]
    comments: int = 0
    ended: bool = False
    seen: list[Event] = field(default_factory=list)

    def next(self) -> Event | None:
        """The next event, or None once the server closed the stream."""
        kind, data, event_id = "message", [], None
        for line in self.lines:
            if line == "":
                if data:
                    event = Event(kind, "\n".join(data), event_id)
                    self.seen.append(event)
                    return event
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value
        self.ended = True
        return None

    def until(self, done: Callable[[list[Event]], bool], timeout_s: float = 10.0) -> list[Event]:
        """Read until ``done(events so far)`` or the stream ends; fails after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not done(self.seen):
            assert time.monotonic() < deadline, f"gave up waiting; got {self.seen}"
            if self.next() is None:
                break
        return list(self.seen)


@contextlib.contextmanager
def open_stream(
    http: httpx.Client, path: str, headers: dict[str, str] | None = None
) -> Iterator[EventReader]:
    """Read ``path`` as a stream; leaving the block hangs up."""
    request = http.build_request("GET", path, headers=headers)
    response = http.send(request, stream=True)
    try:
        yield EventReader(response, response.iter_lines())
    finally:
        response.close()


def finals(events: list[Event]) -> dict[str, str]:
    """job id -> final result, from the state events."""
    return {
        event.json["job_id"]: event.json["result"]
        for event in events
        if event.event == "state" and event.json["result"] != "pending"
    }
