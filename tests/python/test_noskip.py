"""The CI rule: under DATAPROXY_NO_SKIP=1 a skip (in a test, a fixture, or a whole module at
collection) fails the run; without it, skips pass and are listed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SKIPPING = {
    "test_in_test.py": "import pytest\ndef test_a():\n    pytest.skip('no service here')\n",
    "test_in_fixture.py": (
        "import pytest\n@pytest.fixture\ndef server():\n    pytest.skip('postgres did not start')\n"
        "def test_b(server):\n    pass\n"
    ),
    "test_at_collection.py": (
        "import pytest\npytest.importorskip('no_such_module_dataproxy')\ndef test_c():\n    pass\n"
    ),
    "test_marker.py": (
        "import pytest\n@pytest.mark.skipif(True, reason='not built')\ndef test_d():\n    pass\n"
    ),
}


def run_suite(tmp_path: Path, files: dict[str, str], no_skip: str | None):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    env = {k: v for k, v in os.environ.items() if k != "DATAPROXY_NO_SKIP"}
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    if no_skip is not None:
        env["DATAPROXY_NO_SKIP"] = no_skip
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_locally_skips_pass_and_are_listed(tmp_path):
    result = run_suite(tmp_path, SKIPPING, no_skip=None)
    assert result.returncode == 0, result.stdout + result.stderr
    for reason in ("no service here", "postgres did not start", "no_such_module", "not built"):
        assert reason in result.stdout, result.stdout
    assert "4 skipped" in result.stdout


@pytest.mark.parametrize("name", sorted(SKIPPING))
def test_under_no_skip_every_kind_of_skip_fails_the_run(tmp_path, name):
    result = run_suite(
        tmp_path, {name: SKIPPING[name], "test_ok.py": "def test_ok():\n    pass\n"}, "1"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DATAPROXY_NO_SKIP=1" in result.stdout, result.stdout


def test_under_no_skip_a_clean_suite_passes_and_xfail_is_kept(tmp_path):
    files = {
        "test_ok.py": (
            "import pytest\ndef test_ok():\n    pass\n"
            "@pytest.mark.xfail(reason='known', strict=True)\ndef test_known():\n    assert False\n"
        )
    }
    result = run_suite(tmp_path, files, "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 xfailed" in result.stdout
