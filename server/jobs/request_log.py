"""A job's log of its last status requests, packed into one bytearray.

A deque of named tuples costs about 110 bytes per entry plus ~600 for the deque itself;
a job polled ten times then weighed ~2.5 KB, and a million jobs could not fit. Here an
entry is 12 bytes (the time as a float64; the HTTP code and the whole-second Retry-After
packed in a uint32) in a ring that starts empty and grows to its length, then overwrites
its oldest entry. The first four bytes hold the index the next entry goes to.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<dI")
_CODE_BITS = 10  # HTTP codes are below 1024
_CODE_MASK = (1 << _CODE_BITS) - 1
# Retry-After is stored as seconds + 1 (0 means none), in the 22 bits left.
MAX_RETRY_AFTER_S = (1 << (32 - _CODE_BITS)) - 2


class StatusRequest(NamedTuple):
    """One answered GET /status, as read back from a job's log."""

    at: float
    code: int
    retry_after_s: float | None


def _packed(request: StatusRequest) -> int:
    """The code and the Retry-After of ``request`` in one uint32."""
    retry = request.retry_after_s
    return (request.code & _CODE_MASK) | (
        0 if retry is None else (min(round(retry), MAX_RETRY_AFTER_S) + 1) << _CODE_BITS
    )


def _request(at: float, packed: int) -> StatusRequest:
    retry = packed >> _CODE_BITS
    return StatusRequest(at, packed & _CODE_MASK, None if retry == 0 else retry - 1)


#: The same packing in Lua, for the Redis store's poll script: it computes the Retry-After
#: itself (from the job it reads), so it cannot be handed a packed entry. Kept beside
#: :func:`_packed` and tested against it on a real Redis. ``retry_after`` 0 means none.
LUA_PACK_ENTRY = f"""
local function pack_entry(at, code, retry_after)
  local packed = code
  if retry_after > 0 then
    packed = packed + (math.min(retry_after, {MAX_RETRY_AFTER_S}) + 1) * {1 << _CODE_BITS}
  end
  return struct.pack('<dI4', at, packed)
end
"""


def pack(request: StatusRequest) -> bytes:
    """One entry as 12 bytes, the form the Redis store keeps in a list."""
    return _ENTRY.pack(request.at, _packed(request))


def unpack(entry: bytes) -> StatusRequest:
    return _request(*_ENTRY.unpack(entry))


def append(log: bytearray | None, length: int, request: StatusRequest) -> bytearray | None:
    """Add ``request`` to ``log`` (allocated on first use); returns the log to keep."""
    if length <= 0:
        return None
    if log is None:
        log = bytearray(_HEADER.size)
    packed = _packed(request)
    entries = (len(log) - _HEADER.size) // _ENTRY.size
    (next_index,) = _HEADER.unpack_from(log)
    if entries < length:
        log += _ENTRY.pack(request.at, packed)
    else:
        _ENTRY.pack_into(
            log, _HEADER.size + (next_index % length) * _ENTRY.size, request.at, packed
        )
    _HEADER.pack_into(log, 0, (next_index + 1) % length)
    return log


def entries(log: bytearray | None) -> list[StatusRequest]:
    """The logged requests, oldest first."""
    if log is None:
        return []
    count = (len(log) - _HEADER.size) // _ENTRY.size
    (next_index,) = _HEADER.unpack_from(log)
    start = next_index % count if count else 0
    found = []
    for step in range(count):
        index = (start + step) % count
        found.append(_request(*_ENTRY.unpack_from(log, _HEADER.size + index * _ENTRY.size)))
    return found


def build(requests: list[StatusRequest], length: int) -> bytearray | None:
    """A log holding the last ``length`` of ``requests`` (oldest first), or None if empty."""
    log = None
    for request in requests[-length:] if length > 0 else []:
        log = append(log, length, request)
    return log
