"""Inputs the fuzzers (fuzz/, scripts/fuzz.sh) found to break a parser, replayed through the real
programs: each must now end in a clear message and the bad-input exit code (2), never in a JSON
library's error or a crash. Every such input is also in fuzz/corpus/<harness>/, so that every
fuzzing run replays it.

Needs the built programs (DATAPROXY_BUILD_DIR, default <repo>/build).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DATAPROXY_BUILD_DIR", ROOT / "build"))
DATAPROXY = Path(os.environ.get("DATAPROXY_BIN", BUILD / "plugin" / "cli" / "dataproxy"))
TRIAL = Path(os.environ.get("DATAPROXY_TRIAL_BIN", BUILD / "trial_runner" / "dataproxy-trial"))
CORPUS = ROOT / "fuzz" / "corpus"


@pytest.fixture(scope="module")
def programs() -> None:
    for program in (DATAPROXY, TRIAL):
        if not program.is_file():
            pytest.skip(f"build {program} first (set DATAPROXY_BUILD_DIR)")


# A search space with a byte that is not UTF-8 inside a string (found by fuzz_space): it passed
# yaml-cpp and then threw nlohmann::json's type_error 316 out of SearchSpace::parse.
NOT_UTF8 = [
    CORPUS / "fuzz_space" / "crash-invalid-utf8",
    (ROOT / "search_spaces" / "resnet_tiny.yaml").read_bytes().replace(b"name: ", b"name: \xe9", 1),
]


@pytest.mark.parametrize("text", NOT_UTF8, ids=["fuzzer-input", "latin1-name"])
def test_a_space_that_is_not_utf8_is_refused(programs, tmp_path, text):
    space = tmp_path / "space.yaml"
    space.write_bytes(text.read_bytes() if isinstance(text, Path) else text)
    for argv in (
        [str(DATAPROXY), "space", str(space)],
        [str(TRIAL), "--space", str(space), "--data-root", str(tmp_path), "--params", "{}"],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace")
        assert done.returncode == 2, (argv, done.returncode, done.stderr)
        assert f"{space} is not UTF-8 text" in done.stderr, done.stderr
        assert "save it as UTF-8" in done.stderr and "json.exception" not in done.stderr


def test_a_torchscript_module_name_too_long_is_refused(programs, tmp_path):
    # Found by fuzz_space: std::filesystem threw "File name too long" out of SearchSpace::parse.
    text = (ROOT / "search_spaces" / "mobilenet_ts.yaml").read_text()
    assert "module: mobilenet_ts.py" in text
    space = tmp_path / "space.yaml"
    space.write_text(text.replace("module: mobilenet_ts.py", "module: " + "m" * 5000 + ".py"))
    done = subprocess.run([str(DATAPROXY), "space", str(space)], capture_output=True, text=True)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "cannot be read: File name too long" in done.stderr, done.stderr
    assert "filesystem error" not in done.stderr
    # A module that is simply missing keeps its message.
    space.write_text(text.replace("module: mobilenet_ts.py", "module: no_such_module.py"))
    done = subprocess.run([str(DATAPROXY), "space", str(space)], capture_output=True, text=True)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "no_such_module.py does not exist" in done.stderr, done.stderr


def test_a_huge_whole_number_is_refused_as_written(programs, tmp_path):
    # Found by fuzz_space (UBSan): 3.2e101 for an integer setting was cast to int64, undefined
    # behaviour, and on x86 reported as "value -9223372036854775808 does not fit B".
    text = (ROOT / "search_spaces" / "resnet_tiny.yaml").read_text()
    assert "choices: [4, 8, 16]" in text
    space = tmp_path / "space.yaml"
    space.write_text(text.replace("choices: [4, 8, 16]", "choices: [4, 8, 3.2e101]"))
    done = subprocess.run([str(DATAPROXY), "space", str(space)], capture_output=True, text=True)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "parameters.B.choices[2]" in done.stderr and "3.2e+101" in done.stderr, done.stderr
    assert "-9223372036854775808" not in done.stderr
