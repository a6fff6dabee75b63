"""Family torchscript end to end: the export helper (python3 -m dataproxy.export, run by the
Python that has torch, as a user would), then the real `dataproxy` and `dataproxy-trial` programs
training the exported networks.

The export needs torch; the venv has none, so it runs under $DATAPROXY_TORCH_PYTHON, else
/usr/bin/python3 (Debian's python3-torch, installed by scripts/setup.sh). A missing torch fails
these tests: it is never a reason to skip them. Programs from DATAPROXY_BUILD_DIR (default
<repo>/build); Fashion-MNIST from DATAPROXY_DATA_ROOT (default <repo>/data).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from testdata import fashion_mnist_root

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DATAPROXY_BUILD_DIR", ROOT / "build"))
TRIAL = Path(os.environ.get("DATAPROXY_TRIAL_BIN", BUILD / "trial_runner" / "dataproxy-trial"))
DATAPROXY = Path(os.environ.get("DATAPROXY_BIN", BUILD / "plugin" / "cli" / "dataproxy"))
EXAMPLE = ROOT / "search_spaces" / "mobilenet_ts.yaml"
FMNIST = ["--input", "1,28,28", "--classes", "10"]


@pytest.fixture(scope="module")
def torch_python() -> str:
    """A Python interpreter that imports torch; fails (never skips) when there is none."""
    tried = []
    for candidate in (os.environ.get("DATAPROXY_TORCH_PYTHON"), "/usr/bin/python3"):
        if not candidate:
            continue
        tried.append(candidate)
        probe = subprocess.run(
            [candidate, "-c", "import torch, yaml; print(torch.__version__)"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            return candidate
    pytest.fail(
        f"no Python with torch and PyYAML among {tried}: install Debian's python3-torch "
        "(scripts/setup.sh does) or set DATAPROXY_TORCH_PYTHON"
    )


def export(python: str, space: Path, *args: str, timeout: float = 600):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "plugin" / "python")
    return subprocess.run(
        [python, "-m", "dataproxy.export", "--space", str(space), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def program(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"build {path} first (DATAPROXY_BUILD_DIR={BUILD})")
    return path


def data_root() -> Path:
    root = fashion_mnist_root()
    if root is None:
        pytest.skip("Fashion-MNIST not found (set DATAPROXY_DATA_ROOT)")
    return root


def copy_example(folder: Path) -> Path:
    """The example space and its module in `folder`, exporting into folder/exports."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "search_spaces" / "mobilenet_ts.py", folder / "mobilenet_ts.py")
    text = EXAMPLE.read_text().replace("exports: mobilenet_ts.export", "exports: exports")
    (folder / "mobilenet_ts.yaml").write_text(text)
    return folder / "mobilenet_ts.yaml"


@pytest.fixture(scope="module")
def exported(torch_python, tmp_path_factory) -> Path:
    """The example space, exported for Fashion-MNIST."""
    space = copy_example(tmp_path_factory.mktemp("mobilenet"))
    done = export(torch_python, space, *FMNIST)
    assert done.returncode == 0, done.stderr
    return space


def costs(space: Path, channels: int, size: int, classes: int) -> dict[str, dict]:
    argv = [str(program(DATAPROXY)), "space", str(space), "--costs", "--json"]
    argv += ["--channels", str(channels), "--size", str(size), "--classes", str(classes)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["config_id"]: r for r in rows}


# ---- the export helper ------------------------------------------------------------------------


def test_export_writes_every_configuration_once(exported, torch_python):
    index = json.loads((exported.parent / "exports" / "index.json").read_text())
    assert index["format"] == "dataproxy-torchscript-index" and index["version"] == 1
    assert index["space"] == "mobilenet_ts" and index["function"] == "build"
    assert "profiler" in index["macs_counter"]
    ids = [f"width{w}_depth{d}" for w in ("0.25", "0.5", "0.75", "1") for d in (1, 2)]
    assert sorted(index["configs"]) == sorted(ids)
    for cid in ids:
        (entry,) = index["configs"][cid]
        assert entry["input"] == [1, 28, 28] and entry["classes"] == 10
        assert entry["compiled"] == "script"
        assert entry["torch_version"].startswith(("1.", "2."))
        assert entry["macs"] > 0 and entry["params"] > 0
        data = (exported.parent / "exports" / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    # Wider and deeper costs more; the C++ side reads the same numbers from the index.
    macs = {cid: index["configs"][cid][0]["macs"] for cid in ids}
    assert macs["width0.25_depth1"] == min(macs.values())
    assert macs["width1_depth2"] == max(macs.values())
    from_cpp = costs(exported, 1, 28, 10)
    assert {c: r["macs"] for c, r in from_cpp.items()} == macs
    assert {c: r["params"] for c, r in from_cpp.items()} == {
        cid: index["configs"][cid][0]["params"] for cid in ids
    }

    # A second run keeps what is up to date; another input shape adds entries beside it.
    again = export(torch_python, exported, *FMNIST)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("up to date") == len(ids)
    colour = export(torch_python, exported, "--input", "3,32,32", "--classes", "10")
    assert colour.returncode == 0, colour.stderr
    index = json.loads((exported.parent / "exports" / "index.json").read_text())
    assert all(len(index["configs"][cid]) == 2 for cid in ids)
    big = costs(exported, 3, 32, 10)
    assert big["width1_depth2"]["macs"] > macs["width1_depth2"]


NETWORKS = {
    # Script fails on the lambda attribute; trace works, batch norm still follows the mode.
    "traced": """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = lambda t: torch.relu(t)
        self.fc = nn.Linear(8, classes)

    def features(self, x):
        return self.act(self.bn(self.conv(x))).mean((2, 3))

    def forward(self, x):
        return self.fc(self.features(x))

def build(config):
    return Net(config["num_classes"])
""",
    "no_features": """
from torch import nn

def build(config):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, config["num_classes"]))
""",
    "wrong_classes": """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 7)

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))

def build(config):
    return Net()
""",
    "not_a_module": "def build(config):\n    return 42\n",
    "raises": "def build(config):\n    raise RuntimeError('width too small')\n",
}


def write_space(folder: Path, module_text: str, function: str = "build") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.py").write_text(module_text)
    (folder / "space.yaml").write_text(
        "name: mine\nfamily: torchscript\n"
        f"torchscript: {{module: net.py, function: {function}, exports: out}}\n"
        "parameters:\n  - {name: size, choices: [1, 2]}\n"
        "training: {epochs: 1, batch_size: 64}\n"
    )
    return folder / "space.yaml"


def test_export_falls_back_to_trace_keeping_train_and_eval_apart(torch_python, tmp_path):
    space = write_space(tmp_path, NETWORKS["traced"])
    done = export(torch_python, space, *FMNIST)
    assert done.returncode == 0, done.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    entry = index["configs"]["size1"][0]
    assert entry["compiled"].startswith("trace (script failed")
    assert entry["feature_dim"] == 8
    # conv 28*28*8*9 and the classifier 8*10, as the built-in families count.
    assert entry["macs"] == 28 * 28 * 8 * 9 + 8 * 10


@pytest.mark.parametrize(
    ("network", "fragment"),
    [
        ("no_features", "has no features(self, x) method"),
        ("wrong_classes", "forward returns [1, 7] for one image; expected [1, 10]"),
        ("not_a_module", "returned int, not a torch.nn.Module"),
        ("raises", "build failed: RuntimeError: width too small"),
    ],
)
def test_export_refuses_networks_that_do_not_fit(torch_python, tmp_path, network, fragment):
    space = write_space(tmp_path, NETWORKS[network])
    done = export(torch_python, space, *FMNIST)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "configuration size1" in done.stderr and fragment in done.stderr, done.stderr
    assert not (tmp_path / "out" / "index.json").exists()


def test_export_refuses_bad_spaces(torch_python, tmp_path):
    space = write_space(tmp_path, NETWORKS["traced"], function="make")
    done = export(torch_python, space, *FMNIST)
    assert done.returncode == 2 and "has no function 'make'" in done.stderr, done.stderr
    builtin = export(torch_python, ROOT / "search_spaces" / "resnet_tiny.yaml", *FMNIST)
    assert builtin.returncode == 2 and "only `family: torchscript`" in builtin.stderr
    bad_shape = export(torch_python, EXAMPLE, "--input", "28,28", "--classes", "10")
    assert bad_shape.returncode == 2 and "expected C,H,W" in bad_shape.stderr


# ---- the same network built in C++ and exported from Python -----------------------------------

RESNET_TWIN = """
import torch
from torch import nn


def conv(cin, cout, k, stride):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class Block(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv1 = conv(cin, cout, k, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv(cout, cout, k, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    # The C++ `resnet` family (plugin/src/models/resnet.cpp), layer for layer.
    def __init__(self, cin, classes, B, K, M, blocks, stages, stem_kernel):
        super().__init__()
        self.stem = conv(cin, B, stem_kernel, 1)
        self.stem_bn = nn.BatchNorm2d(B)
        layers, width = [], B
        for s in range(stages):
            out = B * M**s
            for b in range(blocks):
                layers.append(Block(width, out, K, 2 if s > 0 and b == 0 else 1))
                width = out
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(width, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x):
        return self.stages(torch.relu(self.stem_bn(self.stem(x)))).mean((2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


def build(c):
    return ResNet(c["input_shape"][0], c["num_classes"], c["B"], c["K"], c["M"],
                  c["blocks_per_stage"], c["stages"], c["stem_kernel"])
"""

TWIN_PARAMETERS = "parameters:\n  - {name: B, choices: [8, 16]}\n  - {name: K, choices: [3]}\n"
TWIN_PARAMETERS += "  - {name: M, choices: [2]}\n"


def test_resnet_twin_costs_and_trains_like_the_builtin_family(torch_python, tmp_path):
    """The resnet_tiny family built in C++ and its Python twin exported to TorchScript: the same
    MACs and parameters, and the same accuracy within noise after the same training (initial
    weights differ: same initialisation scheme, different random streams)."""
    data = data_root()
    tiny = (ROOT / "search_spaces" / "resnet_tiny.yaml").read_text()
    head, rest = tiny.split("parameters:", 1)
    training = rest[rest.index("training:") :]
    model = "model: {stages: 3, blocks_per_stage: 1, stem_kernel: 3}\n"
    (tmp_path / "builtin.yaml").write_text(
        "name: twin\nfamily: resnet\n" + TWIN_PARAMETERS + model + training
    )
    (tmp_path / "twin.py").write_text(RESNET_TWIN)
    (tmp_path / "twin.yaml").write_text(
        "name: twin\nfamily: torchscript\ntorchscript: {module: twin.py}\n"
        + TWIN_PARAMETERS
        + model
        + training
    )
    done = export(torch_python, tmp_path / "twin.yaml", *FMNIST)
    assert done.returncode == 0, done.stderr
    assert costs(tmp_path / "twin.yaml", 1, 28, 10) == costs(tmp_path / "builtin.yaml", 1, 28, 10)

    results = {}
    for name in ("builtin", "twin"):
        argv = [str(program(DATAPROXY)), "evaluate", "--space", str(tmp_path / f"{name}.yaml")]
        argv += ["--dataset", "fashion-mnist", "--data-root", str(data), "--max-train", "4000"]
        argv += ["--max-test", "1000", "--epochs", "3", "--seed", "1", "--threads", "1"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        results[name] = {r["config_id"]: r for r in rows if r["event"] == "trial"}
    for cid in ("B8_K3_M2", "B16_K3_M2"):
        builtin, twin = results["builtin"][cid], results["twin"][cid]
        print(
            f"{cid}: accuracy C++ {builtin['full_accuracy']:.3f} TorchScript "
            f"{twin['full_accuracy']:.3f}; train seconds {builtin['full_seconds']:.1f} vs "
            f"{twin['full_seconds']:.1f}"
        )
        assert builtin["full_accuracy"] > 0.6
        assert abs(twin["full_accuracy"] - builtin["full_accuracy"]) <= 0.05
        assert (twin["macs"], twin["params"]) == (builtin["macs"], builtin["params"])


# ---- dataproxy generate and dataproxy-trial on the exported family ----------------------------


def test_generate_and_trial_end_to_end(exported, tmp_path):
    data = data_root()
    cache = tmp_path / "cache"
    argv = [str(program(DATAPROXY)), "generate", "--space", str(exported)]
    argv += ["--dataset", "fashion-mnist", "--data-root", str(data), "--ratio", "0.25"]
    argv += ["--max-train", "800", "--max-test", "400", "--probe-epochs", "1", "--threads", "2"]
    argv += ["--cache", str(cache), "--report", "quiet"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout.strip().splitlines()[-1])
    assert event["event"] == "manifest"
    manifest_path = Path(event["path"])
    manifest = json.loads(manifest_path.read_text())
    probes = json.dumps(manifest)
    # The probes are the lightest and heaviest networks by the index's MACs.
    assert "width0.25_depth1" in probes and "width1_depth2" in probes

    results = tmp_path / "results"
    base = [str(program(TRIAL)), "--space", str(exported), "--data-root", str(data)]
    base += ["--manifest", str(manifest_path), "--threads", "1", "--report", "jsonl"]
    base += ["--results", str(results), "--epochs", "1"]
    trial = subprocess.run(
        [*base, "--params", json.dumps({"width": 0.5, "depth": 1}), "--spot-check"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert trial.returncode == 0, trial.stderr
    evs = [json.loads(line) for line in trial.stdout.splitlines() if line.startswith("{")]
    assert evs[0]["config_id"] == "width0.5_depth1"
    final = evs[-1]
    assert final["event"] == "final" and final["status"] == "complete"
    assert 0.0 <= final["proxy_accuracy"] <= 1.0 and isinstance(final["full_accuracy"], float)
    (record,) = [json.loads(line) for line in (results / "results.jsonl").read_text().splitlines()]
    index = json.loads((exported.parent / "exports" / "index.json").read_text())
    entry = index["configs"]["width0.5_depth1"][0]
    assert (record["macs"], record["params"]) == (entry["macs"], entry["params"])

    # A network whose file no longer matches the index is refused before any training.
    path = exported.parent / "exports" / entry["file"]
    saved = path.read_bytes()
    try:
        path.write_bytes(saved[: len(saved) // 2])
        bad = subprocess.run(
            [*base, "--params", json.dumps({"width": 0.5, "depth": 1})],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        path.write_bytes(saved)
    assert bad.returncode == 3, bad.stderr
    assert "changed or damaged after export" in bad.stderr
    assert "python3 -m dataproxy.export --space" in bad.stderr


def test_unexported_space_is_refused_with_the_command_to_run(tmp_path):
    data = data_root()
    space = copy_example(tmp_path)
    argv = [str(program(DATAPROXY)), "generate", "--space", str(space)]
    argv += ["--dataset", "fashion-mnist", "--data-root", str(data), "--ratio", "0.1"]
    argv += ["--max-train", "200", "--max-test", "100", "--cache", str(tmp_path / "cache")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "has no export" in done.stderr
    assert f"python3 -m dataproxy.export --space {space} --input 1,28,28 --classes 10" in (
        done.stderr
    )
