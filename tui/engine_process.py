"""``python -m tui.engine_process``: the polling engine as a child of the dashboard.

Commands arrive on stdin, engine messages leave on stdout (framed, see
tui.engine_protocol); stderr is the child's log. The child never outlives the dashboard:
when stdin reaches end of file (the dashboard quit, crashed or was killed, since the
kernel closes a dead process's pipes) it exits at once, and on Linux a parent-death
signal backs that up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from client_core import VideoSimClient
from client_core.parent_death import die_with_parent
from tui.engine import Engine
from tui.engine_protocol import LENGTH, Command, Configure, EngineMessage, FrameCodec

# The dashboard names itself here, so the engine can tell whether it is still there.
PARENT_PID_VARIABLE = "VIDEOSIM_ENGINE_PARENT"


async def serve(commands_fd: int, messages_fd: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(commands_fd, "rb", buffering=0)
    )
    transport, _ = await loop.connect_write_pipe(
        asyncio.Protocol, os.fdopen(messages_fd, "wb", buffering=0)
    )
    channel = FrameCodec(Command)

    async def next_command() -> Command:
        header = await reader.readexactly(LENGTH.size)
        payload = await reader.readexactly(LENGTH.unpack(header)[0])
        command: Command = channel.decode(payload)
        return command

    def send(message: EngineMessage) -> None:
        transport.write(channel.frame(message))

    try:
        config = await next_command()
    except asyncio.IncompleteReadError:
        return
    if not isinstance(config, Configure):
        raise SystemExit(f"engine: expected Configure first, got {type(config).__name__}")

    def sibling_client() -> VideoSimClient:
        """A client like the engine's own, with an X-Client-Id of its own."""
        return VideoSimClient.with_options(config.url, replace(options, client_id=None))

    options = config.client_options
    async with VideoSimClient.with_options(config.url, options) as client:
        engine = Engine(client, config, send, make_client=sibling_client)

        async def obey() -> None:
            try:
                while True:
                    engine.handle(await next_command())
            except asyncio.IncompleteReadError:
                # The dashboard is gone (quit or killed): nobody to report to, and the
                # orderly close of thousands of watches would only delay the exit.
                os._exit(0)

        running, reading = asyncio.create_task(engine.run()), asyncio.create_task(obey())
        await asyncio.wait({running, reading}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # the engine failed: the traceback goes to the log, exit 1


def run_fast(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when it is installed (uvicorn's standard extra brings it): the engine is
    event-loop bound, and uvloop's loop costs less per request than asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


ENGINE_NICENESS = 4  # the UI first: a key press should not wait behind a burst of polls


def main() -> None:
    parent = os.environ.get(PARENT_PID_VARIABLE)
    die_with_parent(int(parent) if parent else os.getppid(), signal.SIGKILL)
    with contextlib.suppress(OSError, AttributeError):
        os.nice(ENGINE_NICENESS)
    # stdout carries the frames: anything printed by mistake goes to the log instead
    messages_fd = os.dup(1)
    os.dup2(2, 1)
    code = 0
    try:
        run_fast(serve(0, messages_fd))
    except KeyboardInterrupt:
        pass
    except BaseException:
        traceback.print_exc()
        code = 1
    # Skip the orderly close of thousands of watches: nobody is waiting for them.
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
