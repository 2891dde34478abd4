"""The one place the server builds on a dependency's internals: uvicorn's httptools
protocol, extended by server/edge.py. Pinned exactly in pyproject.toml; these fail the day
an upgrade moves what the extension relies on, before any behaviour silently changes."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.edge import GuardedHttpToolsProtocol

PINNED = {"uvicorn": "0.55.0", "httptools": "0.9.0"}


def test_the_versions_are_the_pinned_ones() -> None:
    assert uvicorn.__version__ == PINNED["uvicorn"]
    assert version("httptools") == PINNED["httptools"]


def test_every_overridden_hook_still_exists_with_its_signature() -> None:
    overridden = [
        name
        for name, member in vars(GuardedHttpToolsProtocol).items()
        if callable(member) and not name.startswith("_") and hasattr(HttpToolsProtocol, name)
    ]
    assert {"data_received", "on_headers_complete", "on_response_complete"} <= set(overridden)
    for name in overridden:
        upstream = inspect.signature(getattr(HttpToolsProtocol, name))
        ours = inspect.signature(getattr(GuardedHttpToolsProtocol, name))
        assert list(upstream.parameters) == list(ours.parameters), name


def test_the_attributes_the_extension_reads_are_still_set_by_uvicorn() -> None:
    source = inspect.getsource(HttpToolsProtocol)
    for attribute in ("self.pipeline", "self.cycle", "self.flow", "self.headers",
                      "self.connections", "_unset_keepalive_if_required"):  # fmt: skip
        assert attribute in source, attribute
    cycle_source = inspect.getsource(inspect.getmodule(HttpToolsProtocol))  # type: ignore[arg-type]
    for attribute in ("self.disconnected", "self.response_complete", "self.message_event"):
        assert attribute in cycle_source, attribute
