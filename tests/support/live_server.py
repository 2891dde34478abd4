"""A real server process on a free loopback port, for tests that talk HTTP.

The same helper the dashboard uses for its embedded server: ``python -m server`` as a child
process (not in-thread), so tests can kill it, restart it on the same port, and see exactly
what a user's client would.
"""

from __future__ import annotations

from client_core.local_server import ServerProcess as LiveServer
from client_core.local_server import free_port

__all__ = ["LiveServer", "free_port"]
