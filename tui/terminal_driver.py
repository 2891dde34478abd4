"""Textual's Linux terminal driver, with an input thread that stops the moment it is told.

Textual's input thread waits for keys in ``select(0.1)`` and looks at its exit flag between
waits, then sleeps one more ``select(0.1)`` on no descriptor at all before it ends; quitting
joins that thread, so every quit waited 100-200 ms on it (most of the dashboard's quit time at
10,000 rows). This driver's thread also waits on a pipe of its own, written to when input is
disabled, so the join returns at once, and it ends when the terminal goes away (a closed
tmux pane, a dropped ssh session) instead of spinning on a terminal that reads as EOF
forever; everything else is Textual's driver unchanged.
"""

from __future__ import annotations

import contextlib
import os
import selectors
from codecs import getincrementaldecoder

from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver


def _read(fileno: int) -> bytes:
    """What the terminal has; b"" once it is gone. A hung-up terminal reads as readable
    forever (EOF, or EIO): taken as the end, where Textual's loop, which breaks out of one
    select's events only, waited again at once and spun a core until it was killed."""
    try:
        return os.read(fileno, 4096)
    except OSError:
        return b""


class PromptLinuxDriver(LinuxDriver):
    """A LinuxDriver whose ``disable_input`` does not wait out a select timeout."""

    # how long one wait for input lasts; quitting no longer waits it out
    INPUT_WAIT_S = 0.1

    _wake_read: int | None = None
    _wake_write: int | None = None

    def start_application_mode(self) -> None:
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)  # a wake never blocks whoever quits
        super().start_application_mode()  # type: ignore[no-untyped-call]  # untyped in Textual

    def disable_input(self) -> None:
        # The byte is the thread's signal to stop; Textual's own flag and join follow.
        if self._wake_write is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake_write, b"x")
        super().disable_input()

    def stop_application_mode(self) -> None:
        super().stop_application_mode()
        for fd in (self._wake_read, self._wake_write):
            if fd is not None:
                os.close(fd)
        self._wake_read = self._wake_write = None

    def run_input_thread(self) -> None:
        """Textual's input loop, waiting on the terminal and the wake pipe."""
        wake = self._wake_read
        if wake is None:  # started without application mode: Textual's own loop
            super().run_input_thread()
            return
        selector = selectors.DefaultSelector()
        fileno = self.fileno
        selector.register(fileno, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode

        def feed(data: str) -> None:
            for event in parser.feed(data):
                self.process_message(event)

        def tick() -> None:
            for event in parser.tick():
                self.process_message(event)

        try:
            stop = gone = False
            while not (stop or self.exit_event.is_set()):
                for key, _mask in selector.select(self.INPUT_WAIT_S):
                    if key.fd == wake:
                        stop = True
                        continue
                    data = _read(fileno)
                    if not data:  # the terminal is gone (hung up) or stdin at its end
                        stop = gone = True
                        break
                    feed(decode(data))
                tick()
            # what the terminal still holds: taken now, never waited for
            selector.unregister(wake)
            if not gone:
                for _key, _mask in selector.select(0):
                    if data := _read(fileno):
                        feed(decode(data, final=True))
            tick()
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass
