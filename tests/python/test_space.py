"""dataproxy.space: the space as the `dataproxy` program reads it (`dataproxy space --json`), for
the tuners. The package has no YAML parser of its own: a file the program refuses is refused with
the program's message, family checks included."""

import json
import subprocess
from pathlib import Path

import optuna
import pytest
from dataproxy.binaries import find_binary
from dataproxy.errors import DataproxyError, SpaceError
from dataproxy.space import load_space
from optuna_support import TINY_SPACE, write_space

REPO = Path(__file__).resolve().parents[2]


def test_parameters_come_in_file_order_with_their_type(tmp_path):
    space = load_space(write_space(tmp_path))
    assert space.name == "tiny"
    assert space.family == "resnet"
    assert [(p.name, p.type) for p in space.parameters] == [("B", "choice"), ("K", "choice")]
    assert space.parameter("B").choices == (2, 4, 8)
    assert space.size == 6
    configs = list(space.enumerate())
    assert configs[0] == {"B": 2, "K": 3}
    assert configs[-1] == {"B": 8, "K": 5}
    # The program's own enumeration, in the same order.
    done = subprocess.run(
        [find_binary("dataproxy"), "space", str(write_space(tmp_path)), "--enumerate"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert configs == [json.loads(line) for line in done.stdout.splitlines()]


def test_training_and_model_settings_have_the_programs_defaults(tmp_path):
    space = load_space(write_space(tmp_path))
    assert space.training["epochs"] == 3  # from the file
    assert space.training["batch_size"] == 128  # the default in TrainSettings
    assert space.model["M"] == 2  # a family setting the file does not give (resnet default)
    assert space.torchscript is None
    assert len(space.content_hash) == 64


def test_exports_optuna_and_nni(tmp_path):
    space = load_space(write_space(tmp_path))
    dists = space.to_optuna()
    assert dists["B"] == optuna.distributions.CategoricalDistribution([2, 4, 8])
    assert space.to_nni()["K"] == {"_type": "choice", "_value": [3, 5]}
    assert space.grid() == {"B": [2, 4, 8], "K": [3, 5]}


def test_torchscript_block_is_complete_with_absolute_paths(tmp_path):
    (tmp_path / "nets.py").write_text("def make(config):\n    raise NotImplementedError\n")
    path = tmp_path / "ts.yaml"
    path.write_text(
        "name: ts\nfamily: torchscript\nparameters: [{name: width, choices: [1, 2]}]\n"
        "model: {depth: 3}\n"
        "torchscript: {module: nets.py, function: make, exports: out, seed: 7}\n"
    )
    space = load_space(path)
    ts = space.torchscript
    assert ts is not None
    assert ts.module == str(tmp_path / "nets.py")
    assert ts.exports == str(tmp_path / "out")
    assert (ts.function, ts.seed) == ("make", 7)
    assert len(ts.module_sha256) == 64
    assert space.model == {"depth": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed\n", r"x.yaml"),
        (TINY_SPACE + "extra: 1\n", r"unknown key 'extra'"),
        ("name: a\nfamily: vgg\nparameters: [{name: B, choices: [1]}]\n", r"vgg"),
        ("name: a\nfamily: resnet\nparameters: [{name: B, choices: [8, 8.0]}]\n", "duplicate"),
        (
            "name: e\nfamily: efficientnet\nparameters:\n  - name: r\n    choices: [r1, r2]\n"
            "    values: {r1: [1, 1, 1, 1, 1, 1, 1]}\n",
            "r2",
        ),
        # A family check the old Python parser never made: resnet has no setting Q.
        ("name: a\nfamily: resnet\nparameters: [{name: Q, choices: [1, 2]}]\n", "Q"),
    ],
)
def test_refuses_bad_files_with_the_programs_message(tmp_path, text, message):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=message) as caught:
        load_space(path)
    assert isinstance(caught.value, DataproxyError) and caught.value.exit_code == 2
    assert str(caught.value).startswith(f"search space '{path}'")


def test_missing_file_says_so(tmp_path):
    with pytest.raises(SpaceError, match="nope.yaml"):
        load_space(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["resnet20", "efficientnet_b0", "resnet_tiny"])
def test_reads_the_shipped_spaces(name):
    space = load_space(REPO / "search_spaces" / f"{name}.yaml")
    assert space.size >= 2
    assert set(space.to_optuna()) == {p.name for p in space.parameters}
