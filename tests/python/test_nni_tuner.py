"""The DataProxy NNI tuner with a fake `dataproxy` program: the reserved key, top-k re-issues,
what the wrapped tuner sees, and trials that trained another trial's parameters. What it shares
with the Optuna adapter (spot checks, generate once, bad input) is in test_adapters.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("nni")

from dataproxy.errors import InvalidInput  # noqa: E402
from dataproxy.nni.tuner import (  # noqa: E402
    RESERVED_KEY,
    DataProxyClassArgsValidator,
    DataProxyTuner,
)
from dataproxy.space import load_space  # noqa: E402
from optuna_support import FAKE_DATAPROXY as SHARED_FAKE  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPACE = ROOT / "search_spaces" / "resnet_tiny.yaml"

FAKE_DATAPROXY = """#!{python}
import json, os, pathlib, sys
log = pathlib.Path({log!r})
with log.open("a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1] == "space":  # the real program's answer
    os.execv(sys.executable, [sys.executable, {shared!r}, *sys.argv[1:]])
if sys.argv[1] == "generate":
    print(json.dumps({{"event": "progress", "what": "probes"}}))
    print(json.dumps({{"event": "manifest", "path": "/cache/abc/manifest.json", "key": "abc",
                      "cache_hit": False}}))
    sys.exit(0)
if sys.argv[1] == "report":
    sys.exit(0)
sys.exit(2)
"""


@pytest.fixture
def fake_dataproxy(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "calls.jsonl"
    program = tmp_path / "dataproxy"
    program.write_text(
        FAKE_DATAPROXY.format(python=sys.executable, log=str(log), shared=SHARED_FAKE)
    )
    program.chmod(0o755)
    return program, log


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def make_tuner(tmp_path: Path, program: Path, **kwargs) -> DataProxyTuner:
    args = dict(
        space=str(SPACE),
        dataset="fashion-mnist",
        data_root=str(tmp_path / "data"),
        results_dir=str(tmp_path / "results"),
        dataproxy=str(program),
        max_train=2000,
        max_test=1000,
        ratio=0.2,
    )
    args.update(kwargs)
    return DataProxyTuner(**args)


def nni_space() -> dict:
    return load_space(SPACE).to_nni()


def test_attaches_the_manifest_under_the_reserved_key(tmp_path, fake_dataproxy):
    program, log = fake_dataproxy
    tuner = make_tuner(tmp_path, program, builtin_tuner="Random", builtin_args={"seed": 1})
    assert calls(log) == []  # nothing in __init__: NNI waits only 10 s for the tuner
    tuner.update_search_space(nni_space())
    params = tuner.generate_parameters(0)
    reserved = params.pop(RESERVED_KEY)
    assert reserved == {
        "spot_check": False,
        "manifest": "/cache/abc/manifest.json",
        "results": str(tmp_path / "results"),
        "serve": True,
    }
    assert set(params) == {"B", "K", "M"}
    assert tuner.generations == 1
    # A calibrated length rides along: whole epochs, or steps when it is not whole epochs.
    tuner.proxy_epochs, tuner.proxy_steps = 1, 25
    reserved = tuner.generate_parameters(1)[RESERVED_KEY]
    assert reserved["proxy_epochs"] == 1 and reserved["proxy_steps"] == 25
    # Or set by hand in classArgs (the full data for fewer steps: ratio 1, method random).
    by_hand = make_tuner(tmp_path, program, builtin_tuner="Random", ratio=1, proxy_steps=40)
    by_hand.update_search_space(nni_space())
    assert by_hand.generate_parameters(0)[RESERVED_KEY]["proxy_steps"] == 40


def test_refuses_a_search_space_of_another_file(tmp_path, fake_dataproxy):
    program, _ = fake_dataproxy
    tuner = make_tuner(tmp_path, program, builtin_tuner="Random")
    other = nni_space()
    other["B"]["_value"] = [1, 2]
    with pytest.raises(ValueError, match="search space"):
        tuner.update_search_space(other)


def test_failed_generation_names_the_error(tmp_path):
    program = tmp_path / "dataproxy"
    program.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"if sys.argv[1] == 'space': os.execv(sys.executable, [sys.executable, {SHARED_FAKE!r}, "
        "*sys.argv[1:]])\n"
        "print('dataproxy: error: bad ratio', file=sys.stderr)\nsys.exit(2)\n"
    )
    program.chmod(0o755)
    tuner = make_tuner(tmp_path, program, builtin_tuner="Random")
    with pytest.raises(RuntimeError, match="bad ratio"):
        tuner.update_search_space(nni_space())


def test_wrapped_tuner_never_sees_the_reserved_key(tmp_path, fake_dataproxy):
    program, _ = fake_dataproxy
    tuner = make_tuner(tmp_path, program, builtin_tuner="TPE")
    assert tuner.inner.optimize_mode.value == "maximize"
    tuner.update_search_space(nni_space())
    seen = []
    original = tuner.inner.receive_trial_result

    def spy(parameter_id, parameters, value, **kwargs):
        seen.append(parameters)
        return original(parameter_id, parameters, value, **kwargs)

    tuner.inner.receive_trial_result = spy
    params = tuner.generate_multiple_parameters([0, 1])
    assert len(params) == 2
    tuner.receive_trial_result(0, params[0], {"default": 0.5, "full_accuracy": None})
    tuner.trial_end(0, True)
    assert seen and RESERVED_KEY not in seen[0]


def test_trial_end_before_its_final_result_reaches_tpe_in_order(tmp_path, fake_dataproxy):
    # Seen with real nnictl: the end of a trial arrived before its FINAL metric, and TPE, which
    # forgets a parameter set at trial_end, then failed on the result (KeyError).
    program, _ = fake_dataproxy
    tuner = make_tuner(tmp_path, program, builtin_tuner="TPE")
    tuner.update_search_space(nni_space())
    params = tuner.generate_multiple_parameters([0, 1])
    tuner.trial_end(0, True)
    tuner.receive_trial_result(0, params[0], {"default": 0.5, "full_accuracy": None})
    tuner.trial_end(1, False)
    assert tuner.inner._running_params == {}
    assert len(tuner.inner._history) > 0


def test_full_fraction_spot_checks_each_config_once(tmp_path, fake_dataproxy):
    program, _ = fake_dataproxy
    tuner = make_tuner(tmp_path, program, builtin_tuner="GridSearch", spot_check={"fraction": 1.0})
    tuner.update_search_space(nni_space())
    params = tuner.generate_multiple_parameters(list(range(12)))
    assert len(params) == 12
    assert all(p[RESERVED_KEY]["spot_check"] for p in params)
    assert (
        len({json.dumps({k: v for k, v in p.items() if k != RESERVED_KEY}) for p in params}) == 12
    )


def test_top_k_reissues_the_best_configs_as_spot_checks(tmp_path, fake_dataproxy):
    program, _ = fake_dataproxy
    tuner = make_tuner(
        tmp_path,
        program,
        builtin_tuner="GridSearch",
        spot_check={"top_k": 2, "min_results": 3},
    )
    tuner.update_search_space(nni_space())
    first = tuner.generate_multiple_parameters([0, 1, 2])
    accuracies = [0.6, 0.9, 0.7]
    for pid, (params, acc) in enumerate(zip(first, accuracies)):
        tuner.receive_trial_result(pid, params, {"default": acc, "full_accuracy": None})
        tuner.trial_end(pid, True)
    nxt = tuner.generate_multiple_parameters([3, 4, 5])
    strip = [{k: v for k, v in p.items() if k != RESERVED_KEY} for p in first]
    assert nxt[0][RESERVED_KEY]["spot_check"] is True
    assert {k: v for k, v in nxt[0].items() if k != RESERVED_KEY} == strip[1]  # best first
    assert {k: v for k, v in nxt[1].items() if k != RESERVED_KEY} == strip[2]
    assert nxt[2][RESERVED_KEY]["spot_check"] is False  # from GridSearch again
    # Re-issued ids never reach GridSearch.
    tuner.receive_trial_result(3, nxt[0], {"default": 0.9, "full_accuracy": 0.95})
    tuner.trial_end(3, True)
    assert tuner.policy.reissue() is None


def test_validator(tmp_path):
    v = DataProxyClassArgsValidator()
    good = dict(space=str(SPACE), dataset="fashion-mnist", data_root=str(tmp_path))
    v.validate_class_args(**good)
    with pytest.raises(ValueError, match="missing"):
        v.validate_class_args(space=str(SPACE))
    with pytest.raises(ValueError, match="absolute"):
        v.validate_class_args(**{**good, "data_root": "data"})
    with pytest.raises(ValueError, match="unknown"):
        v.validate_class_args(**{**good, "ratoi": 0.1})
    with pytest.raises(ValueError, match="not a tuner"):
        v.validate_class_args(**{**good, "builtin_tuner": "NoSuchTuner"})
    with pytest.raises(ValueError, match="ratio"):
        v.validate_class_args(**{**good, "ratio": 0})
    v.validate_class_args(**{**good, "ratio": 1, "method": "random", "proxy_steps": 25})
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="proxy_steps"):
            v.validate_class_args(**{**good, "proxy_steps": bad})


def _record(parameter_id: int, config: dict) -> str:
    return json.dumps(
        {"trial_id": f"t{parameter_id}", "parameter_id": parameter_id, "framework": "nni"}
        | {"config": config, "status": "complete", "proxy_accuracy": 0.5}
    )


def test_a_trial_that_trained_another_trials_parameters_is_caught(tmp_path, fake_dataproxy, caplog):
    # NNI issue #5693: a trial may get another trial's parameter set. The runner records what it
    # trained under the parameter_id it reported; the tuner compares it with what it issued.
    program, _ = fake_dataproxy
    tuner = make_tuner(tmp_path, program, builtin_tuner="GridSearch", report=False)
    tuner.update_search_space(nni_space())
    issued = tuner.generate_multiple_parameters([0, 1])
    strip = [{k: v for k, v in p.items() if k != RESERVED_KEY} for p in issued]
    assert strip[0] != strip[1]
    fed, ended = [], []
    tuner.inner.receive_trial_result = lambda pid, *a, **k: fed.append(pid)
    tuner.inner.trial_end = lambda pid, success, **k: ended.append((pid, success))
    store = tmp_path / "results" / "results.jsonl"
    store.parent.mkdir()
    # Trial of id 0 trained id 1's configuration; the trial of id 1 trained its own.
    store.write_text(_record(0, strip[1]) + "\n" + _record(1, strip[1]) + "\n")

    tuner.trial_end(0, True)  # NNI may end a trial before its result arrives
    with caplog.at_level("ERROR", logger="dataproxy.nni"):
        tuner.receive_trial_result(0, issued[0], {"default": 0.5, "full_accuracy": None})
    assert tuner.mismatches == [
        {"parameter_id": 0, "issued": strip[0], "trained": strip[1], "source": "results store"}
    ]
    assert "5693" in caplog.text and "parameter 0" in caplog.text
    assert fed == [] and ended == [(0, False)]

    tuner.receive_trial_result(1, issued[1], {"default": 0.7, "full_accuracy": None})
    tuner.trial_end(1, True)
    assert len(tuner.mismatches) == 1
    assert fed == [1] and ended == [(0, False), (1, True)]


def test_a_record_written_in_two_parts_is_read_once_complete(tmp_path, fake_dataproxy):
    program, _ = fake_dataproxy
    tuner = make_tuner(tmp_path, program, builtin_tuner="GridSearch", report=False)
    tuner.update_search_space(nni_space())
    issued = tuner.generate_multiple_parameters([0, 1])
    strip = [{k: v for k, v in p.items() if k != RESERVED_KEY} for p in issued]
    store = tmp_path / "results" / "results.jsonl"
    store.parent.mkdir()
    line = _record(0, strip[0])
    store.write_text(line[:20])  # a runner still writing: no newline yet
    tuner.receive_trial_result(0, issued[0], {"default": 0.5})
    with store.open("a") as f:
        f.write(line[20:] + "\n" + _record(1, strip[0]) + "\n")
    tuner.receive_trial_result(1, issued[1], {"default": 0.5})
    assert [m["parameter_id"] for m in tuner.mismatches] == [1]


def test_serve_class_arg_and_the_trial_servers_stop_file(tmp_path, fake_dataproxy):
    program, _ = fake_dataproxy
    stop = tmp_path / "results" / "servers" / "shutdown"
    stop.parent.mkdir(parents=True)
    stop.write_text("left by the run before\n")
    tuner = make_tuner(
        tmp_path, program, builtin_tuner="Random", builtin_args={"seed": 1}, serve=False
    )
    tuner.report = False
    assert not stop.exists()  # a resumed experiment: its servers may start again
    tuner.update_search_space(nni_space())
    assert tuner.generate_parameters(0)[RESERVED_KEY]["serve"] is False
    tuner._on_exit()  # the experiment ends: its servers exit once idle
    assert stop.read_text() == "the experiment ended\n"
    with pytest.raises(InvalidInput, match="classArgs.serve"):
        make_tuner(tmp_path, program, serve="yes")
