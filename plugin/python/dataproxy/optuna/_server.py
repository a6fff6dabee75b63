"""One long-lived `dataproxy-trial --serve` per worker thread: it trains candidate after
candidate and keeps the data in memory, so a trial pays neither the process start nor the data
loading after the first.

The protocol (trial_runner/trial.h, serve()): one JSON request per line on stdin; per request,
the JSON Lines of one trial on stdout ending in one line whose "event" is "final", "pruned",
"interrupted" or "error". SIGUSR1 prunes the current candidate only. The server is started
lazily and started again after it died; it ends at the end of its stdin (close()), or with its
thread (the parent-death signal of _process).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from typing import Any

from ._process import ChildProcess

#: Events that end one request.
TERMINAL_EVENTS = frozenset({"final", "pruned", "interrupted", "error"})


class ServerGone(Exception):
    """The server's stdout closed before the request's last line."""

    def __init__(self, message: str, *, exit_code: int | None, stderr_tail: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class TrialServer:
    """A `dataproxy-trial --serve` child for one thread."""

    def __init__(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None, echo_stderr: bool = False
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.env = env
        self.echo_stderr = echo_stderr
        self._child: ChildProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def _running(self) -> ChildProcess:
        if self._child is not None and self._child.poll() is not None:
            self._child.__exit__(None, None, None)
            self._child = None
        if self._child is None:
            self._child = ChildProcess(
                self.argv, env=self.env, echo_stderr=self.echo_stderr, stdin_pipe=True
            )
        return self._child

    def start(self) -> int:
        """Starts the server unless it runs; returns its pid."""
        return self._running().pid

    def request(self, request: str) -> Iterator[dict[str, Any]]:
        """Sends one request line and yields its events, the terminal one last. Raises
        ServerGone when the server ends first (it is started again on the next request)."""
        child = self._running()
        try:
            child.send_line(request)
        except (BrokenPipeError, OSError):
            pass  # its end shows below
        for event in child.events():
            yield event
            if event.get("event") in TERMINAL_EVENTS:
                return
        code = child.wait()
        tail = child.stderr_tail() or child.stdout_tail()
        self._child.__exit__(None, None, None)
        self._child = None
        raise ServerGone(
            "the trial server ended before answering", exit_code=code, stderr_tail=tail
        )

    def prune(self) -> None:
        """Stops the current candidate, recorded as pruned; the server goes on."""
        if self._child is not None:
            self._child.signal(signal.SIGUSR1)

    def stop(self, timeout: float) -> None:
        """Ends the server: at once when idle, else after its current candidate's epoch."""
        if self._child is not None:
            self._child.stop(timeout)
            self._child.__exit__(None, None, None)
            self._child = None

    def close(self) -> None:
        """Ends the server at the end of its requests (EOF on its stdin)."""
        if self._child is not None:
            self._child.__exit__(None, None, None)
            self._child = None
