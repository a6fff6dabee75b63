"""`dataproxy` subcommands refuse arguments they do not take, with a pointer to their help.

Needs the built CLI ($DATAPROXY_BUILD_DIR, default <repo>/build)/plugin/cli/dataproxy.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DATAPROXY_BUILD_DIR", ROOT / "build"))
DATAPROXY = BUILD / "plugin" / "cli" / "dataproxy"
SPACE = str(ROOT / "search_spaces" / "resnet_tiny.yaml")


@pytest.fixture(scope="module", autouse=True)
def _need_binary():
    if not DATAPROXY.exists():
        pytest.skip(f"dataproxy not built at {DATAPROXY} (set DATAPROXY_BUILD_DIR)")


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "stray", "--space", SPACE],
        ["generate", "stray", "--space", SPACE],
        ["report", "stray", "--results", "x"],
        ["space", SPACE, "stray"],
        ["data-info", "fashion-mnist", "stray"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_stray_argument_is_refused(argv):
    result = subprocess.run([str(DATAPROXY), *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "positional" in result.stderr
    assert f"see dataproxy {argv[0]} --help" in result.stderr


def test_help_exits_0_and_an_unknown_option_2():
    help_ = subprocess.run([str(DATAPROXY), "generate", "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--ratio" in help_.stdout
    bad = subprocess.run([str(DATAPROXY), "generate", "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--bogus" in bad.stderr
