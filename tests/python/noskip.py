"""No silent skips in CI: with DATAPROXY_NO_SKIP=1 (set by .ci/run) every skipped test, and every
module skipped at collection (pytest.importorskip), fails the run and says why. Locally skips
stay allowed; scripts/test.sh lists them (-rs).

Used by tests/python/conftest.py and integration/conftest.py.
"""

from __future__ import annotations

import os

import pytest

VARIABLE = "DATAPROXY_NO_SKIP"


def enabled() -> bool:
    return os.environ.get(VARIABLE, "") not in ("", "0")


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def turn_skip_into_failure(report) -> None:
    """A skipped test's report becomes a failure (an expected failure, xfail, stays as it is)."""
    if not (enabled() and report.skipped and not hasattr(report, "wasxfail")):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped while {VARIABLE}=1 (CI: nothing may be skipped): {_reason(report)}\n"
        "Fix the environment (scripts/setup.sh) instead of skipping."
    )


class CollectionSkips:
    """Remembers modules skipped at collection; fails the session if any were."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def collectreport(self, report) -> None:
        if enabled() and report.skipped:
            self.skipped.append(f"{report.nodeid}: {_reason(report)}")

    def sessionfinish(self, session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def summary(self, terminalreporter) -> None:
        if self.skipped:
            terminalreporter.section(f"skipped at collection while {VARIABLE}=1", red=True)
            for line in self.skipped:
                terminalreporter.write_line(line)
