"""Child processes that cannot outlive their parent, with JSON Lines on stdout.

The trial runner and the generator are started from an argv list (never a shell string), in a
session of their own (so a terminal's Ctrl-C reaches the adapter, which then stops the child
cleanly), and with the kernel's parent-death signal set (Linux prctl PR_SET_PDEATHSIG), so that
a worker killed with SIGKILL takes its runner with it.

The parent-death signal fires when the *thread* that started the child exits; start children
from a thread that outlives them (the objective runs in the study's calling thread).
"""

from __future__ import annotations

import collections
import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def set_parent_death_signal(sig: int = signal.SIGTERM, parent_pid: int | None = None) -> bool:
    """Asks the kernel to send `sig` to this process when its parent dies (Linux only).

    When `parent_pid` is given and the parent is already gone (it died before this call), the
    process exits at once. Returns False where the platform has no such mechanism.
    """
    if _prctl is None:
        return False
    if _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
    return True


def _child_setup(parent_pid: int, sig: int) -> None:
    # Runs in the child between fork and exec: only async-signal-safe work (a prctl call).
    set_parent_death_signal(sig, parent_pid)


class ChildProcess:
    """A child started from `argv` whose stdout is read as JSON Lines.

    Use as a context manager: leaving the block stops the child if it still runs.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        stderr_lines: int = 40,
        echo_stderr: bool = False,
        inherit_stderr: bool = False,
        death_signal: int = signal.SIGKILL,
        stdin_pipe: bool = False,
    ) -> None:
        self.argv = [str(a) for a in argv]
        parent = os.getpid()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._stdout_other: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._echo = echo_stderr
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None if inherit_stderr else subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=lambda: _child_setup(parent, death_signal),
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True)]
        if not inherit_stderr:
            self._readers.append(threading.Thread(target=self._read_stderr, daemon=True))
        for t in self._readers:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr_tail.append(line.rstrip("\n"))
            if self._echo:
                sys.stderr.write(line)
                sys.stderr.flush()

    def send_line(self, text: str) -> None:
        """Writes one line to the child's stdin (started with stdin_pipe=True); raises
        BrokenPipeError when the child has gone."""
        assert self.proc.stdin is not None, "started without stdin_pipe"
        self.proc.stdin.write(text.rstrip("\n") + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        """Closes the child's stdin: a child reading requests sees the end and exits."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """JSON objects with an "event" key from stdout, until it closes; other lines are kept
        for diagnosis (see stdout_tail). With `timeout`, raises TimeoutError when no line
        comes for that many seconds. The generator may be left and called again: lines not
        yet read stay for the next call."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no output from {self.argv[0]} for {timeout} s") from None
            if line is None:
                self._lines.put(None)  # the end stays the end for later calls
                return
            text = line.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                self._stdout_other.append(text)
                continue
            if isinstance(obj, dict) and "event" in obj:
                yield obj
            else:
                self._stdout_other.append(text)

    def wait(self, timeout: float | None = None) -> int:
        """Exit status (negative: killed by that signal); waits for the readers to drain."""
        code = self.proc.wait(timeout)
        for t in self._readers:
            t.join(timeout=5)
        return code

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self, timeout: float = 60.0, sig: int = signal.SIGINT) -> int:
        """Asks the child to stop with `sig` (it finishes at its next boundary), waits up to
        `timeout` seconds, then kills its whole process group."""
        if self.proc.poll() is None:
            self._signal_group(sig)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return self.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self._signal_group(signal.SIGKILL)

    def signal(self, sig: int) -> None:
        """Sends `sig` to the child itself (not its group), if it still runs."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.proc.send_signal(sig)

    def stderr_tail(self, lines: int | None = None) -> str:
        tail = list(self._stderr_tail)
        if lines is not None:
            tail = tail[-lines:]
        return "\n".join(tail)

    def stdout_tail(self) -> str:
        return "\n".join(self._stdout_other)

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.close_stdin()  # a server ends at the end of its requests
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.stop(timeout=10.0)
        else:
            self.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
