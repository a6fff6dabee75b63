"""dataproxy.space: reading search-space YAML for the tuners."""

from pathlib import Path

import optuna
import pytest
from dataproxy.space import SpaceError, load_space, parse_space
from optuna_support import TINY_SPACE, write_space

REPO = Path(__file__).resolve().parents[2]


def test_parses_parameters_in_file_order(tmp_path):
    space = load_space(write_space(tmp_path))
    assert space.name == "tiny"
    assert space.family == "resnet"
    assert [p.name for p in space.parameters] == ["B", "K"]
    assert space.parameter("B").choices == (2, 4, 8)
    assert space.size == 6
    configs = list(space.enumerate())
    assert configs[0] == {"B": 2, "K": 3}
    assert configs[-1] == {"B": 8, "K": 5}
    assert len(configs) == 6


def test_exports_optuna_and_nni(tmp_path):
    space = load_space(write_space(tmp_path))
    dists = space.to_optuna()
    assert dists["B"] == optuna.distributions.CategoricalDistribution([2, 4, 8])
    assert space.to_nni()["K"] == {"_type": "choice", "_value": [3, 5]}
    assert space.grid() == {"B": [2, 4, 8], "K": [3, 5]}


def test_named_choices_need_values():
    text = "name: e\nfamily: efficientnet\nparameters:\n  - name: r\n    choices: [r1, r2]\n"
    text += "    values: {r1: [1, 2]}\n"
    with pytest.raises(SpaceError, match=r"named choice 'r2' has no entry under 'values'"):
        parse_space(text, "x.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed\n", r"x.yaml: not valid YAML at line"),
        ("- 1\n- 2\n", r"expected a mapping"),
        (TINY_SPACE + "extra: 1\n", r"unknown key\(s\) \['extra'\]"),
        ("name: a\nfamily: vgg\nparameters: [{name: B, choices: [1]}]\n", r"family 'vgg'"),
        ("name: a\nfamily: resnet\nparameters: []\n", r"non-empty list"),
        ("name: a\nfamily: resnet\nparameters: [{name: B, choices: [8, 8.0]}]\n", "twice"),
        (
            "name: a\nfamily: resnet\nparameters: [{name: B, choices: [1]}, {name: B, "
            "choices: [2]}]\n",
            r"name 'B' appears twice",
        ),
        ("name: a\nfamily: resnet\nparameters: [{name: B, choices: [[1]]}]\n", "number or"),
        ("family: resnet\nparameters: [{name: B, choices: [1]}]\n", r"'name' is required"),
    ],
)
def test_refuses_bad_files_naming_the_problem(text, message):
    with pytest.raises(SpaceError, match=message):
        parse_space(text, "x.yaml")


def test_missing_file_says_so(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "nope.yaml")


def test_validate_checks_every_parameter(tmp_path):
    space = load_space(write_space(tmp_path))
    assert space.validate({"B": 4, "K": 3.0}) == {"B": 4, "K": 3.0}
    with pytest.raises(SpaceError, match="missing"):
        space.validate({"B": 4})
    with pytest.raises(SpaceError, match="not one of"):
        space.validate({"B": 5, "K": 3})
    with pytest.raises(SpaceError, match="unknown parameter"):
        space.validate({"B": 4, "K": 3, "Z": 1})


@pytest.mark.parametrize("name", ["resnet20", "efficientnet_b0", "resnet_tiny"])
def test_reads_the_shipped_spaces(name):
    path = REPO / "search_spaces" / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    space = load_space(path)
    assert space.size >= 2
    assert set(space.to_optuna()) == {p.name for p in space.parameters}
