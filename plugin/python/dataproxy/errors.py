"""The package's errors: one base class, as the C++ side has ``dataproxy::Error``.

Every message says what was wrong, where (file, option, value), and what to do. ``exit_code``
follows the C++ programs: 2 bad input (nothing ran), 3 a data error, 1 a run that failed.
The command-line entry points print ``str(error)`` and exit with it, without a traceback.
"""

from __future__ import annotations

__all__ = ["CommandFailed", "DataproxyError", "InvalidInput", "RuntimeFailure", "SpaceError"]


class DataproxyError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InvalidInput(DataproxyError, ValueError):
    """Bad input: an option, a file or a setting that cannot be used; nothing ran."""

    exit_code = 2


class SpaceError(InvalidInput):
    """A search space that the `dataproxy` program refuses (its message names file and key)."""


class RuntimeFailure(DataproxyError, RuntimeError):
    """A run that started and did not finish (a program failed, a service went away)."""

    exit_code = 1


class CommandFailed(RuntimeFailure):
    """A `dataproxy` subcommand exited with an error; `exit_code` is its own (2 bad input,
    3 data error, 1 runtime failure), `stderr_tail` its last lines on stderr."""

    def __init__(self, message: str, *, exit_code: int, stderr_tail: str = "") -> None:
        super().__init__(message, exit_code=exit_code if exit_code in (1, 2, 3) else 1)
        self.stderr_tail = stderr_tail
