"""`dataproxy calibrate` on a real Fashion-MNIST slice: it rejects a broken proxy and accepts a
sound one, caches everything it trains, hands its full-data runs to the report as spot checks,
and refuses bad input without writing anything."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from testdata import fashion_mnist_root

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DATAPROXY_BUILD_DIR", ROOT / "build"))
DATAPROXY = Path(os.environ.get("DATAPROXY_BIN", BUILD / "plugin" / "cli" / "dataproxy"))

# Six narrow ResNets whose accuracy grows with width, sized for a test on 2 CPU cores.
SPACE = """\
name: calib_test
family: resnet
parameters:
  - name: B
    choices: [2, 4, 8]
  - name: K
    choices: [3]
  - name: M
    choices: [1, 2]
model: {stages: 3, blocks_per_stage: 1, stem_kernel: 3}
training:
  optimizer: adam
  learning_rate: 0.004
  batch_size: 32
  epochs: 2
  schedule: cosine
  augmentation: {random_crop_padding: 0, horizontal_flip: false}
"""

BROKEN = "random:0.005:1"  # 8 images: about one per class
SOUND = "random:0.3:1"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = fashion_mnist_root()
    assert root is not None, "Fashion-MNIST is missing: run scripts/setup.sh"
    assert DATAPROXY.is_file(), f"build {DATAPROXY} first"
    tmp = tmp_path_factory.mktemp("calibrate")
    space = tmp / "space.yaml"
    space.write_text(SPACE)
    return {"root": root, "tmp": tmp, "space": space, "cache": tmp / "cache"}


def calibrate(setup, *extra, out="out", check=True):
    argv = [
        str(DATAPROXY),
        "calibrate",
        "--space",
        str(setup["space"]),
        "--dataset",
        "fashion-mnist",
        "--data-root",
        str(setup["root"]),
        "--max-train",
        "1600",
        "--max-test",
        "600",
        "--cache",
        str(setup["cache"]),
        "--threads",
        "1",
        "--report",
        "quiet",
        "--out",
        str(setup["tmp"] / out),
        *extra,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_rejects_a_broken_proxy_accepts_a_sound_one_caches_and_records_spot_checks(setup):
    results = setup["tmp"] / "exp"
    args = ["--choice", BROKEN, "--choice", SOUND, "--candidates", "4", "--seeds", "2"]
    args += ["--target", "0.6", "--results", str(results)]
    first = calibrate(setup, *args)
    line = json.loads(first.stdout.strip().splitlines()[-1])
    assert line["event"] == "calibration"
    assert line["trained"] == 2 + 2 * 2 * 4  # two non-probe full runs, 2 choices x 2 seeds x 4
    cal = json.loads((setup["tmp"] / "out" / "calibration.json").read_text())
    by_name = {c["name"]: c for c in cal["choices"]}
    broken, sound = by_name["random:0.005:1"], by_name["random:0.3:1"]
    assert not broken["meets_target"], broken
    assert sound["meets_target"], (sound, first.stderr)
    assert cal["recommended"] == "random:0.3:1"
    assert line["recommended"] == "random:0.3:1"
    assert sound["spearman"] > broken["spearman"] if broken["spearman"] is not None else True
    assert len(cal["candidates"]) == 4
    accs = [c["full_accuracy"] for c in cal["candidates"]]
    assert accs[-1] > 0.5 and accs[-1] > accs[0] + 0.2, accs  # trained; the heaviest is better
    assert "recommended: random:0.3:1" in first.stderr
    assert "coarse" in first.stderr  # the output says what 4 candidates can and cannot show

    # A rerun trains nothing and finds the same.
    again = calibrate(setup, *args)
    line2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert line2["trained"] == 0
    assert line2["recommended"] == line["recommended"]
    cal2 = json.loads((setup["tmp"] / "out" / "calibration.json").read_text())
    assert [c["spearman"] for c in cal2["choices"]] == [c["spearman"] for c in cal["choices"]]

    # The full-data runs are spot checks in the results store (once, even after the rerun), and
    # the report counts them.
    records = [json.loads(x) for x in (results / "results.jsonl").read_text().splitlines()]
    assert sorted(r["config_id"] for r in records) == sorted(
        c["config_id"] for c in cal["candidates"]
    )
    assert all(r["spot_check"] and r["full_accuracy"] is not None for r in records)
    report = subprocess.run(
        [str(DATAPROXY), "report", "--results", str(results), "--out", str(results / "report")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    body = json.loads((results / "report" / "report.json").read_text())
    full = {c["id"]: c["full_accuracy"] for c in body["candidates"]}
    assert all(c["spot_check"] and c["full_seconds"] > 0 for c in body["candidates"])
    for c in cal["candidates"]:
        assert full[c["config_id"]] == pytest.approx(c["full_accuracy"])


def test_image_size_resizes_every_run_and_keys_the_cache(setup):
    """`--image-size` reaches every proxy and full-data run: the chosen manifest records it, its
    full-data and proxy runs are new (none taken from the cache of the unresized data)."""
    args = ["--choice", SOUND, "--candidates", "4", "--seeds", "1", "--target", "-0.9"]
    done = calibrate(setup, *args, "--image-size", "16", out="resized")
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["trained"] == 2 + 4  # nothing reused from the 28x28 runs of other tests
    cal = json.loads((setup["tmp"] / "resized" / "calibration.json").read_text())
    manifest = json.loads(Path(cal["choices"][0]["seeds"][0]["manifest"]).read_text())
    assert manifest["load_options"]["image_size"] == 16


def test_full_data_for_a_fraction_of_the_steps(setup):
    """random:1:0.25 is the whole training set for a quarter of the space's optimizer steps
    (EcoNAS's reduced training, not a subset): trained for exactly that many steps and costed
    as a quarter of a full-data trial, like a 25% subset at the space's length."""
    args = ["--choice", "random:1:0.25", "--candidates", "4", "--seeds", "1", "--target", "-0.9"]
    done = calibrate(setup, *args, out="fewer-steps")
    cal = json.loads((setup["tmp"] / "fewer-steps" / "calibration.json").read_text())
    (choice,) = cal["choices"]
    # 1,600 images in batches of 32 are 50 steps an epoch; the space's 2 epochs are 100 steps.
    assert choice["steps"] == 25 and choice["epochs"] == 1
    assert choice["cost_per_trial"] == pytest.approx(0.25)
    assert "is no subset: the full training data" in done.stderr  # the table says what it is
    key = json.loads(Path(choice["seeds"][0]["manifest"]).read_text())["key"]
    runs = [
        json.loads(x)
        for x in (setup["cache"] / "calibration" / "runs.jsonl").read_text().splitlines()
    ]
    mine = [r for r in runs if r.get("manifest_key") == key]
    assert len(mine) == 4, [r.get("manifest_key") for r in runs]
    for r in mine:
        assert r["training"]["steps"] == 25 and r["training"]["samples_seen"] == 25 * 32
        assert r["data"]["train_size"] == 1600
    if cal["recommended"]:
        assert "25 optimizer steps" in done.stderr, done.stderr


def test_epochs_reach_the_probes_too(setup):
    """The probes are the lightest and heaviest full-data candidates: `--epochs 1` (the space
    says 2) trains them 1 epoch like the other candidates, not the space's 2."""
    args = ["--choice", SOUND, "--candidates", "4", "--seeds", "1", "--target", "-0.9"]
    calibrate(setup, *args, "--epochs", "1", out="one-epoch")
    cal = json.loads((setup["tmp"] / "one-epoch" / "calibration.json").read_text())
    assert cal["full_epochs"] == 1
    manifest = json.loads(Path(cal["choices"][0]["seeds"][0]["manifest"]).read_text())
    assert [p["epochs"] for p in manifest["probes"]] == [1, 1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--choice", "magic:0.1"], "selection method 'magic' is unknown"),
        (["--choice", "random:1.5"], "outside (0, 1]"),
        (["--choice", "random:abc"], "must be numbers"),
        (["--target", "1.5"], "--target 1.5 is outside (-1, 1]"),
        (["--target", "-1"], "is outside (-1, 1]"),
        (["--candidates", "7"], "has 6 configurations, fewer than the 7"),
        (["--candidates", "3"], "below 4"),
        (["--expected-trials", "2", "--budget-share", "0.05"], "cannot buy the smallest"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(setup, args, words):
    out = "bad-" + str(abs(hash(tuple(args))))
    done = calibrate(setup, *args, out=out, check=False)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr, done.stderr
    assert not (setup["tmp"] / out).exists()


def test_optuna_ratio_auto_searches_on_the_calibrated_proxy(setup):
    """`dataproxy-optuna --ratio auto --image-size 20`: calibrate first (on resized images),
    then every trial trains on the chosen proxy for the chosen length, and the calibration's
    full-data runs are the first spot checks."""
    experiment = setup["tmp"] / "auto"
    argv = [
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "dataproxy.optuna",
        "--space",
        str(setup["space"]),
        "--dataset",
        "fashion-mnist",
        "--data-root",
        str(setup["root"]),
        "--max-train",
        "1600",
        "--max-test",
        "600",
        "--ratio",
        "auto",
        "--image-size",
        "20",
        "--calibration-choice",
        BROKEN,
        "--calibration-choice",
        "random:0.3:2",
        "--calibration-target",
        "0.6",
        "--calibration-budget-share",
        "1",
        "--calibration-trials",
        "40",
        "--n-trials",
        "3",
        "--sampler",
        "grid",
        "--pruner",
        "none",
        "--spot-check-fraction",
        "0",
        "--cache",
        str(setup["cache"]),
        "--experiment",
        str(experiment),
        "--threads",
        "1",
        "--seed",
        "0",
    ]
    env = dict(os.environ, DATAPROXY_BUILD_DIR=str(BUILD))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, check=False)
    assert done.returncode == 0, done.stderr
    cal = json.loads((experiment / "calibration" / "calibration.json").read_text())
    chosen = next(c for c in cal["choices"] if c["name"] == "random:0.3:2")
    # Chosen either way: recommended when its lower bound meets the target, else as the best
    # found, and the run says so.
    assert "random:0.3:2" in done.stderr
    if cal["recommended"] is None:
        assert "no choice met the target" in done.stderr
    assert chosen["epochs"] == 4  # twice the space's 2 epochs
    records = [json.loads(x) for x in (experiment / "results.jsonl").read_text().splitlines()]
    trials = [r for r in records if r["framework"] == "optuna"]
    spots = [r for r in records if r["framework"] == "calibrate"]
    assert len(trials) == 3 and len(spots) == len(cal["candidates"])
    seed0 = json.loads(Path(chosen["seeds"][0]["manifest"]).read_text())
    assert seed0["load_options"]["image_size"] == 20  # calibrated and searched on 20x20 images
    for r in trials:
        assert r["manifest_key"] == seed0["key"]
        assert r["training"]["proxy_epochs"] == 4
        assert len(r["proxy_curve"]) == 4 or r["status"] != "complete"
    report = json.loads((experiment / "report" / "report.json").read_text())
    assert report["calibration"]["best"] == "random:0.3:2"
    assert report["calibration"]["recommended"] in ("random:0.3:2", None)
    lines = report["summary"]["lines"]
    assert [x.split(":")[0] for x in lines] == ["Time", "Agreement", "Pick"]
    for line in lines:  # the run ends with the same three sentences
        assert line in done.stderr
    html = (experiment / "report" / "report.html").read_text()
    assert 'id="calibration"' in html and "random:0.3:2" in html
    assert sum(1 for c in report["candidates"] if c["spot_check"]) >= len(spots)


def test_nni_tuner_ratio_auto_calibrates_then_sends_the_chosen_proxy(setup, monkeypatch):
    """The NNI tuner with `ratio: auto` runs the real `dataproxy calibrate` in
    update_search_space and hands every trial the chosen manifest and proxy length."""
    from dataproxy.nni.tuner import RESERVED_KEY, DataProxyTuner
    from dataproxy.space import load_space

    monkeypatch.setenv("DATAPROXY_BIN", str(DATAPROXY))
    results = setup["tmp"] / "nni-results"
    tuner = DataProxyTuner(
        space=str(setup["space"]),
        dataset="fashion-mnist",
        data_root=str(setup["root"]),
        builtin_tuner="Random",
        builtin_args={"seed": 1},
        ratio="auto",
        max_train=1600,
        max_test=600,
        cache=str(setup["cache"]),
        results_dir=str(results),
        calibration={
            "choices": [BROKEN, "random:0.3:2"],
            "target": 0.6,
            "budget_share": 1,
            "expected_trials": 40,
            "threads": 1,
        },
    )
    tuner.update_search_space(load_space(setup["space"]).to_nni())
    cal = json.loads((results / "calibration" / "calibration.json").read_text())
    chosen = cal["recommended"] or cal["best"]
    assert chosen == "random:0.3:2"
    choice = next(c for c in cal["choices"] if c["name"] == chosen)
    params = tuner.generate_parameters(0)
    assert params[RESERVED_KEY]["manifest"] == choice["seeds"][0]["manifest"]
    assert params[RESERVED_KEY]["proxy_epochs"] == 4
    assert tuner.method == "random" and tuner.ratio == 0.3
    spots = [json.loads(x) for x in (results / "results.jsonl").read_text().splitlines()]
    assert {r["config_id"] for r in spots} == {c["config_id"] for c in cal["candidates"]}
