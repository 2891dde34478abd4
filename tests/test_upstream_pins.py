"""The two places the project extends a dependency's internals, pinned and fingerprinted.

server/http/edge.py extends uvicorn's httptools protocol (uvicorn has no header-read timeout
and no per-request header cap); tui/terminal_driver.py replaces Textual's Linux input
loop (its thread waits out a select timeout on quit) and drives Textual's xterm parser
(a private module, fingerprinted here too).
Both dependencies are pinned exactly in pyproject.toml. These tests fail the day an
upgrade changes a version or the source of a method the extensions rely on, before any
behaviour changes silently: read the new upstream code, adapt, then update the pins here.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from importlib.metadata import version

import pytest
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.http.edge import GuardedHttpToolsProtocol
from tui.terminal_driver import PromptLinuxDriver

PINNED = {"uvicorn": "0.55.0", "httptools": "0.9.0", "textual": "8.2.8"}

# sha256 (first 16 hex digits) of each upstream method's source that an extension
# overrides or copies.
FINGERPRINTS: dict[tuple[type, str], str] = {
    (LinuxDriver, "run_input_thread"): "d796af6d69db337d",
    (LinuxDriver, "disable_input"): "6154c5a7c1743fe9",
    (LinuxDriver, "start_application_mode"): "7c41f5ba11a8ef05",
    (LinuxDriver, "stop_application_mode"): "9a7e99c8d4bdbd3b",
    # the parser the copied input loop drives
    (XTermParser, "__init__"): "d72babb3e40ab7da",
    (XTermParser, "feed"): "a2ae8e648629c0a1",
    (XTermParser, "tick"): "44606084ad3bf7c1",
    (HttpToolsProtocol, "data_received"): "010a7ae59a5d3b1a",
    (HttpToolsProtocol, "on_message_begin"): "96d377fdc7c2baef",
    (HttpToolsProtocol, "on_header"): "1e86ebb6cea0458c",
    (HttpToolsProtocol, "on_headers_complete"): "1ea8589acfad92d8",
    (HttpToolsProtocol, "on_body"): "dba9c32aeba35b6a",
    (HttpToolsProtocol, "on_message_complete"): "1fbad42dc31fc01f",
    (HttpToolsProtocol, "on_response_complete"): "64e254f28e389e76",
    (HttpToolsProtocol, "connection_made"): "6efb565ff3d36b91",
    (HttpToolsProtocol, "connection_lost"): "c91a4c9bf2e29c55",
}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_the_installed_version_is_the_pinned_one(package: str) -> None:
    assert version(package) == PINNED[package]


@pytest.mark.parametrize(
    ("owner", "name"), sorted(FINGERPRINTS, key=lambda item: (item[0].__name__, item[1]))
)
def test_the_upstream_source_is_the_one_the_extension_was_written_against(
    owner: type, name: str
) -> None:
    method: Callable[..., object] = getattr(owner, name)
    digest = hashlib.sha256(inspect.getsource(method).encode()).hexdigest()[:16]
    assert digest == FINGERPRINTS[(owner, name)], f"{owner.__name__}.{name} changed upstream"


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(GuardedHttpToolsProtocol, HttpToolsProtocol), (PromptLinuxDriver, LinuxDriver)],
)
def test_every_overridden_method_is_fingerprinted(ours: type, theirs: type) -> None:
    overridden = {
        name
        for name, member in vars(ours).items()
        if callable(member) and not name.startswith("_") and hasattr(theirs, name)
    }
    assert overridden <= {name for owner, name in FINGERPRINTS if owner is theirs}
