"""Hooks of the integration suites: under DATAPROXY_NO_SKIP=1 a skip is a failure (a PostgreSQL
that does not start, an NNI that does not import, a missing build or data set; see
tests/python/noskip.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from noskip import CollectionSkips, turn_skip_into_failure  # noqa: E402

_collection = CollectionSkips()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    turn_skip_into_failure(outcome.get_result())


def pytest_collectreport(report):
    _collection.collectreport(report)


def pytest_sessionfinish(session, exitstatus):
    _collection.sessionfinish(session)


def pytest_terminal_summary(terminalreporter):
    _collection.summary(terminalreporter)
