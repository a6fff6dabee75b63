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
