"""What the NNI tuner and the Optuna adapter share, one suite run over both (fake `dataproxy`
and trial programs; the space itself is always the real program's): the spot-check policy, the
proxy generated once with the one `generate` command line, and bad input refused before any
trial runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataproxy.commands import GenerateOptions, generate_argv
from dataproxy.errors import DataproxyError
from dataproxy.spot_check import SpotCheckPolicy
from optuna_support import FAKE_DATAPROXY, FAKE_TRIAL

ROOT = Path(__file__).resolve().parents[2]
SPACE = ROOT / "search_spaces" / "resnet_tiny.yaml"  # 12 configurations
BAD_SPACE = "name: bad\nfamily: resnet\nparameters: [{name: B, choices: [8, 8]}]\n"


class NniAdapter:
    """The DataProxy tuner driven as NNI's dispatcher drives it."""

    name = "nni"

    def __init__(self, tmp_path: Path) -> None:
        pytest.importorskip("nni")
        self.tmp = tmp_path

    def class_args(self, space: Path, *, spot=None, seed=0, **kw) -> dict:
        args = dict(
            space=str(space),
            dataset="fake",
            data_root=str(self.tmp / "data"),
            results_dir=str(self.tmp / "results"),
            dataproxy=FAKE_DATAPROXY,
            ratio=kw.pop("ratio", 0.25),
            seed=seed,
            builtin_tuner="GridSearch",
            report=False,
        )
        if spot:
            args["spot_check"] = {**spot, "seed": seed}
        return {**args, **kw}

    def run(self, space: Path, n: int, **kw) -> list[bool]:
        """Spot-check flags of trials 0 .. n-1."""
        from dataproxy.nni.tuner import RESERVED_KEY, DataProxyClassArgsValidator, DataProxyTuner
        from dataproxy.space import load_space

        args = self.class_args(space, **kw)
        DataProxyClassArgsValidator().validate_class_args(**args)
        tuner = DataProxyTuner(**args)
        # NNI hands the space file's export to update_search_space, before any trial.
        tuner.update_search_space(load_space(space).to_nni())
        params = tuner.generate_multiple_parameters(list(range(n)))
        return [p[RESERVED_KEY]["spot_check"] for p in params]

    def expected_generate(self, space: Path, **kw) -> GenerateOptions:
        return GenerateOptions(
            space=str(space),
            dataset="fake",
            data_root=str(self.tmp / "data"),
            ratio=0.25,
            method=kw.get("method", "importance"),
            seed=kw.get("seed", 0),
            probes=2,
            image_size=kw.get("image_size", 0),
        )


class OptunaAdapter:
    """A whole `dataproxy-optuna` run, in this process."""

    name = "optuna"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path

    def config(self, space: Path, *, spot=None, seed=0, **kw):
        from dataproxy.optuna.study import StudyConfig

        spot = spot or {}
        settings = dict(
            space=str(space),
            dataset="fake",
            data_root=str(self.tmp / "data"),
            ratio=kw.pop("ratio", 0.25),
            experiment=str(self.tmp / "exp"),
            study_name="s",
            sampler="grid",  # every trial a new configuration, as NNI's GridSearch
            pruner="none",
            epochs=1,
            seed=seed,
            spot_check_fraction=spot.get("fraction", 0.0),
            spot_check_every=spot.get("every", 0),
            spot_check_first=spot.get("first", 0),
            reuse_duplicates=False,
            heartbeat_interval=0,
            report=False,
            dataproxy_bin=FAKE_DATAPROXY,
            trial_bin=FAKE_TRIAL,
            serve=False,  # fake_trial.py is one process per trial
        )
        return StudyConfig(**{**settings, **kw})

    def run(self, space: Path, n: int, **kw) -> list[bool]:
        import optuna
        from dataproxy.optuna.study import run_study

        config = self.config(space, **kw)
        config.n_trials = n
        assert run_study(config) == 0
        study = optuna.load_study(study_name="s", storage=f"sqlite:///{self.tmp}/exp/study.db")
        return [t.user_attrs["spot_check"] for t in sorted(study.trials, key=lambda t: t.number)]

    def expected_generate(self, space: Path, **kw) -> GenerateOptions:
        return GenerateOptions(
            space=str(space),
            dataset="fake",
            data_root=str(self.tmp / "data"),
            ratio=0.25,
            method=kw.get("method", "importance"),
            seed=kw.get("seed", 0),
            selection_split="half-test",
            image_size=kw.get("image_size", 0),
            device="auto",
            report="jsonl",
        )


@pytest.fixture(params=[NniAdapter, OptunaAdapter], ids=lambda a: a.name)
def adapter(request, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("FAKE_DATAPROXY_LOG", str(tmp_path / "dataproxy-calls.jsonl"))
    return request.param(tmp_path)


def dataproxy_calls(tmp_path: Path, command: str) -> list[list[str]]:
    log = tmp_path / "dataproxy-calls.jsonl"
    if not log.exists():
        return []
    return [c for c in map(json.loads, log.read_text().splitlines()) if c[0] == command]


# ---- spot checks ---------------------------------------------------------------------------


def test_both_adapters_spot_check_the_trials_the_policy_picks(adapter, tmp_path):
    spot = {"fraction": 0.3, "first": 2, "every": 5}
    flags = adapter.run(SPACE, 10, spot=spot, seed=3)
    policy = SpotCheckPolicy(**spot, seed=3)
    picked = [n for n, flag in enumerate(flags) if flag]
    assert picked == [n for n in range(10) if policy.choose(n, {})]
    assert {0, 1, 5} <= set(picked)  # the first two and every fifth
    assert len(picked) < 10


def test_a_seed_picks_the_same_trials_in_every_run(adapter):
    a = [SpotCheckPolicy(fraction=0.5, seed=11).choose(n, {}) for n in range(300)]
    assert a == [SpotCheckPolicy(fraction=0.5, seed=11).choose(n, {}) for n in range(300)]
    assert a != [SpotCheckPolicy(fraction=0.5, seed=12).choose(n, {}) for n in range(300)]
    assert 100 < sum(a) < 200
    flags = adapter.run(SPACE, 12, spot={"fraction": 0.5}, seed=11)
    assert flags == a[:12]


def test_no_spot_checks_unless_asked(adapter):
    assert adapter.run(SPACE, 6) == [False] * 6


# ---- the proxy, generated once with the one command line ------------------------------------


def test_the_proxy_is_generated_once_with_the_shared_command_line(adapter, tmp_path):
    adapter.run(SPACE, 4, image_size=20, method="random", seed=2)
    calls = dataproxy_calls(tmp_path, "generate")
    assert len(calls) == 1
    expected = generate_argv(
        FAKE_DATAPROXY, adapter.expected_generate(SPACE, image_size=20, method="random", seed=2)
    )
    assert calls[0] == expected[1:]
    assert calls[0][calls[0].index("--image-size") + 1] == "20"


def test_the_generate_argv_is_a_list_without_a_shell():
    argv = generate_argv(
        "/bin/dataproxy",
        GenerateOptions(
            space="/s.yaml",
            dataset="cifar10",
            data_root="/d",
            ratio=0.1,
            cache="/c; rm -rf /",
            extra=("--weights", "2,1,6,1"),
        ),
    )
    assert argv[:2] == ["/bin/dataproxy", "generate"]
    assert argv[argv.index("--cache") + 1] == "/c; rm -rf /"
    assert argv[-2:] == ["--weights", "2,1,6,1"]
    assert "--max-train" not in argv and "--image-size" not in argv


# ---- bad input: a clear error before any trial -----------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("space", r"bad.yaml.*duplicate choice '8'"),
        ("method", "'magic' is unknown; use one of importance, random, stratified"),
        ("fraction", "fraction 1.5 must be in"),
        ("image_size", r"image.size.*-3.*>= 0"),
        ("program", "nope' is not an executable file"),
    ],
)
def test_bad_input_is_refused_before_any_trial(adapter, tmp_path, case, message):
    space, kw = SPACE, {}
    if case == "space":
        space = tmp_path / "bad.yaml"
        space.write_text(BAD_SPACE)
    elif case == "method":
        kw["method"] = "magic"
    elif case == "fraction":
        kw["spot"] = {"fraction": 1.5}
    elif case == "image_size":
        kw["image_size"] = -3
    elif case == "program":
        kw["dataproxy_bin" if adapter.name == "optuna" else "dataproxy"] = str(tmp_path / "nope")
    if adapter.name == "optuna" and kw.get("ratio") == "auto":
        kw.pop("ratio")
        kw["calibrate"] = True
    with pytest.raises(DataproxyError, match=message) as caught:
        adapter.run(space, 3, **kw)
    assert caught.value.exit_code == 2  # bad input: the CLIs exit 2
    assert dataproxy_calls(tmp_path, "generate") == []
    assert not (tmp_path / "results" / "results.jsonl").exists()
    assert not (tmp_path / "exp" / "results.jsonl").exists()
