"""The dashboard's end of the polling engine: start it, send commands, receive deltas.

:class:`ProcessLink` runs the engine as a child process (``python -m tui.engine_process``),
the real dashboard's way. :class:`ThreadLink` runs the same engine on a loop in a thread
with a client the caller builds: tests use it to put a scripted client under the engine.
Both speak the same framed protocol and call back on the dashboard's loop:
``on_message`` for each engine message, ``on_exit`` once if the engine ends by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import IO

from client_core import VideoSimClient
from tui.engine import Engine
from tui.engine_process import PARENT_PID_VARIABLE
from tui.engine_protocol import LENGTH, Command, Configure, EngineMessage, FrameCodec

MessageHandler = Callable[[EngineMessage], None]
ExitHandler = Callable[[str], None]
ClientFactory = Callable[[str], VideoSimClient]
QUIT_GRACE_S = 0.2  # after SIGTERM, the engine has this long to exit before SIGKILL


class EngineLink:
    """What the app needs from either kind of link."""

    pid: int | None = None

    def __init__(self, on_message: MessageHandler, on_exit: ExitHandler) -> None:
        self.on_message = on_message
        self.on_exit = on_exit
        self._channel = FrameCodec(EngineMessage)
        self._stopping = False

    async def start(self, config: Configure) -> None:
        raise NotImplementedError

    def send(self, command: Command) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def _receive(self, payload: bytes) -> None:
        self.on_message(self._channel.decode(payload))


class ProcessLink(EngineLink):
    """The engine in a child process; the child dies with us (see tui.engine_process)."""

    def __init__(self, on_message: MessageHandler, on_exit: ExitHandler) -> None:
        super().__init__(on_message, on_exit)
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._log: IO[bytes] | None = None
        self._command_channel = FrameCodec(Command)

    async def start(self, config: Configure) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - open as long as the child runs
        # Started from the app's loop thread, which lives as long as the app: Linux sends
        # the parent-death signal when the thread that forked the child ends.
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tui.engine_process",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, PARENT_PID_VARIABLE: str(os.getpid())},
        )
        self.pid = self._process.pid
        self.send(config)
        self._reader = asyncio.create_task(self._read(self._process), name="engine reader")

    def send(self, command: Command) -> None:
        process = self._process
        if process is None or process.stdin is None or process.stdin.is_closing():
            return
        process.stdin.write(self._command_channel.frame(command))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while True:
                header = await process.stdout.readexactly(LENGTH.size)
                self._receive(await process.stdout.readexactly(LENGTH.unpack(header)[0]))
        except asyncio.IncompleteReadError:
            pass
        code = await process.wait()
        if not self._stopping:
            self.on_exit(f"exit code {code}: {self._last_log_line() or 'no message'}")

    async def stop(self) -> None:
        """End the engine now: it holds nothing worth an orderly close (the server keeps
        the jobs), so close its pipe, terminate it, and kill it if it lingers."""
        self._stopping = True
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), QUIT_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            self._reader.cancel()
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def _last_log_line(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().decode(errors="replace").splitlines()]
        return next((line for line in reversed(lines) if line), "")


class ThreadLink(EngineLink):
    """The same engine on a loop in a thread, with a client from ``client_factory``."""

    def __init__(
        self, on_message: MessageHandler, on_exit: ExitHandler, client_factory: ClientFactory
    ) -> None:
        super().__init__(on_message, on_exit)
        self._client_factory = client_factory
        self._engine: Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._pending: list[bytes] = []  # commands sent before the engine's loop runs
        self._command_channel = FrameCodec(Command)
        self._thread: threading.Thread | None = None

    async def start(self, config: Configure) -> None:
        ui_loop = asyncio.get_running_loop()

        def deliver(message: EngineMessage) -> None:
            ui_loop.call_soon_threadsafe(self._receive, self._channel.frame(message)[LENGTH.size :])

        def ended(reason: str) -> None:
            if not self._stopping:
                ui_loop.call_soon_threadsafe(self.on_exit, reason)

        def run() -> None:
            try:
                asyncio.run(self._serve(config, deliver))
            except BaseException as exc:
                ended(repr(exc))
            else:
                ended("engine stopped")

        self._thread = threading.Thread(target=run, name="polling engine", daemon=True)
        self._thread.start()

    async def _serve(self, config: Configure, deliver: Callable[[EngineMessage], None]) -> None:
        async with self._client_factory(config.url) as client:
            engine = Engine(
                client, config, deliver, make_client=lambda: self._client_factory(config.url)
            )
            self._loop, self._main = asyncio.get_running_loop(), asyncio.current_task()
            self._engine = engine
            for payload in self._pending:
                engine.handle(self._command_channel.decode(payload))
            self._pending.clear()
            try:
                await engine.run()
            except asyncio.CancelledError:
                if not self._stopping:
                    raise

    def send(self, command: Command) -> None:
        payload = self._command_channel.frame(command)[LENGTH.size :]
        loop, engine = self._loop, self._engine
        if loop is None or engine is None:
            self._pending.append(payload)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the engine is gone
            loop.call_soon_threadsafe(lambda: engine.handle(self._command_channel.decode(payload)))

    async def stop(self) -> None:
        self._stopping = True
        loop, main = self._loop, self._main
        if loop is not None and main is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(main.cancel)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
