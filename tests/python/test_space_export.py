"""`dataproxy space` exports: the files NNI and Optuna read, checked with Optuna's own loader.

Needs the built CLI ($DATAPROXY_BUILD_DIR, default <repo>/build)/plugin/cli/dataproxy.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, json_to_distribution

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DATAPROXY_BUILD_DIR", ROOT / "build"))
DATAPROXY = BUILD / "plugin" / "cli" / "dataproxy"
SPACES = ROOT / "search_spaces"


@pytest.fixture(scope="module", autouse=True)
def _need_binary():
    if not DATAPROXY.exists():
        pytest.skip(f"dataproxy not built at {DATAPROXY} (set DATAPROXY_BUILD_DIR)")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DATAPROXY), "space", *args], capture_output=True, text=True, timeout=120
    )


def export(space: str, tmp_path: Path) -> tuple[dict, dict]:
    nni, optuna = tmp_path / "nni.json", tmp_path / "optuna.json"
    result = run(str(SPACES / space), "--nni", str(nni), "--optuna", str(optuna))
    assert result.returncode == 0, result.stderr
    return json.loads(nni.read_text()), json.loads(optuna.read_text())


def test_resnet20_exports(tmp_path):
    nni, optuna = export("resnet20.yaml", tmp_path)
    assert nni == {
        "B": {"_type": "choice", "_value": [8, 16, 32]},
        "K": {"_type": "choice", "_value": [3, 5]},
        "M": {"_type": "choice", "_value": [2, 4]},
    }
    dists = {name: json_to_distribution(json.dumps(d)) for name, d in optuna.items()}
    assert dists == {
        "B": CategoricalDistribution([8, 16, 32]),
        "K": CategoricalDistribution([3, 5]),
        "M": CategoricalDistribution([2, 4]),
    }


def test_efficientnet_exports_named_choices(tmp_path):
    nni, optuna = export("efficientnet_b0.yaml", tmp_path)
    assert nni["f"] == {"_type": "choice", "_value": ["f1", "f2", "f3"]}
    dist = json_to_distribution(json.dumps(optuna["r"]))
    assert dist == CategoricalDistribution(["r1", "r2"])


def test_enumerate_and_validate():
    result = run(str(SPACES / "resnet20.yaml"), "--enumerate")
    assert result.returncode == 0, result.stderr
    configs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(configs) == 12
    assert configs[0] == {"B": 8, "K": 3, "M": 2}
    ok = run(str(SPACES / "resnet20.yaml"), "--validate", '{"B": 16.0, "K": 5, "M": 4}')
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"config_id": "B16_K5_M4", "config": {"B": 16, "K": 5, "M": 4}}
    bad = run(str(SPACES / "resnet20.yaml"), "--validate", '{"B": 12, "K": 5, "M": 4}')
    assert bad.returncode == 2
    assert "allowed choices: [8, 16, 32]" in bad.stderr


def test_costs_put_the_paper_probes_at_the_ends():
    result = run(str(SPACES / "resnet20.yaml"), "--costs", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["config_id"] == "B8_K3_M2"
    assert rows[-1]["config_id"] == "B32_K5_M4"
    assert [r["macs"] for r in rows] == sorted(r["macs"] for r in rows)
