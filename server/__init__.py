"""The videosim simulation server: a FastAPI app that pretends to translate videos.

Jobs are plain records whose state is derived from the clock, so the server can hold a
million of them. Build an app with :func:`server.app.create_app`; run one from the command
line with ``python -m server`` (see :mod:`server.cli`).
"""

from server.app import create_app
from server.jobs.clock import Clock, FakeClock, SystemClock
from server.settings import ServerSettings

__all__ = ["Clock", "FakeClock", "ServerSettings", "SystemClock", "create_app"]
