"""Hooks of the Python suites: under DATAPROXY_NO_SKIP=1 a skip is a failure (see noskip.py)."""

from __future__ import annotations

import pytest
from noskip import CollectionSkips, turn_skip_into_failure

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
