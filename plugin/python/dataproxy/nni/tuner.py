"""DataProxy: an NNI tuner that wraps a built-in tuner and trains every candidate on a data proxy.

Once per experiment, before the first trial, it runs the proxy stage (``dataproxy generate``,
cached by content, so a resumed or repeated experiment finds it at once) and then hands each
trial the manifest, the results folder and its spot-check decision under the reserved
parameter key ``"_dataproxy"``; the C++ trial runner (``dataproxy-trial``) strips it before
checking the parameters against the space. The wrapped tuner never sees that key.

classArgs (paths must be absolute: NNI does not resolve them):

    builtin_tuner: TPE            # any registered NNI tuner: TPE, Random, GridSearch, Evolution...
    builtin_args: {}              # its classArgs; optimize_mode defaults to maximize
    space: /abs/search_spaces/resnet_tiny.yaml
    dataset: fashion-mnist
    data_root: /abs/data
    ratio: 0.1                    # proxy size, fraction of the train split, or auto:
    # calibration: {expected_trials: 100, target: 0.9, budget_share: 0.1, choices: [...]}
    #                             # with ratio auto: `dataproxy calibrate` picks the proxy first
    method: importance            # importance | random | stratified (`dataproxy methods`)
    seed: 0
    max_train: 0                  # slice of the data (0 = all)
    max_test: 0
    probes: 2
    probe_epochs: 0               # 0 = the space's epochs
    image_size: 0                 # resize images to N x N (0 = the data's most common size);
                                  # the manifest records it, so the trials load the same size
    cache: null                   # proxy cache folder (default: dataproxy's)
    generate_args: []             # more flags for `dataproxy generate`, e.g. [--weights, 2,1,6,1]
    manifest: null                # use this manifest instead of generating one
    results_dir: null             # default: <experiment folder>/dataproxy
    spot_check: {fraction: 0.2, seed: 0, top_k: 2, min_results: 4}   # also first, every;
                                  # see dataproxy/spot_check.py
    report: true                  # regenerate `dataproxy report` after each result
    serve: true                   # trials run by dataproxy-trial-client train in long-lived
                                  # servers of this experiment (false: a process per trial);
                                  # the servers end when the experiment does
    dataproxy: null               # path of the `dataproxy` program (default: found like
                                  # dataproxy.binaries.find_binary)
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from nni.tools.package_utils.tuner_factory import (
    create_builtin_class_instance,
    create_validator_instance,
    get_builtin_module_class_name,
)
from nni.tuner import Tuner
from nni.utils import ClassArgsValidator

from ..binaries import find_binary
from ..commands import (
    GenerateOptions,
    bottom_line,
    calibrate_argv,
    check_method,
    generate_argv,
    read_manifest,
    run_calibration,
    run_generate,
)
from ..errors import InvalidInput, RuntimeFailure
from ..space import load_space
from ..spot_check import SpotCheck, config_key, policy_from_spec

__all__ = ["RESERVED_KEY", "DataProxyClassArgsValidator", "DataProxyTuner"]

_logger = logging.getLogger("dataproxy.nni")

#: Parameter key that carries per-trial settings to dataproxy-trial.
RESERVED_KEY = "_dataproxy"


def _experiment_dir() -> Path | None:
    """The experiment's folder, from the dispatcher's environment (set by NNI)."""
    for var in ("NNI_LOG_DIRECTORY", "NNI_CHECKPOINT_DIRECTORY"):
        value = os.environ.get(var)
        if value:
            return Path(value).resolve().parent
    return None


def _proxy_steps(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(
            f"classArgs.proxy_steps={value!r} must be a whole number of optimizer steps >= 0 "
            "(0 = whole epochs; with ratio 1 and method random: the full data for that many steps)"
        )
    return value


def _absolute(name: str, value: Any) -> str:
    path = Path(str(value))
    if not path.is_absolute():
        raise InvalidInput(
            f"classArgs.{name}={value!r} must be an absolute path (NNI does not resolve paths "
            "in classArgs)"
        )
    return str(path)


class DataProxyTuner(Tuner):
    """Wraps a built-in NNI tuner; see the module's text for classArgs."""

    def __init__(
        self,
        space: str,
        dataset: str,
        data_root: str,
        builtin_tuner: str = "TPE",
        builtin_args: dict[str, Any] | None = None,
        ratio: float | str = 0.1,
        method: str = "importance",
        seed: int = 0,
        max_train: int = 0,
        max_test: int = 0,
        probes: int = 2,
        probe_epochs: int = 0,
        image_size: int = 0,
        cache: str | None = None,
        generate_args: list[str] | None = None,
        manifest: str | None = None,
        results_dir: str | None = None,
        spot_check: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
        report: bool = True,
        serve: bool = True,
        dataproxy: str | None = None,
        proxy_steps: int = 0,
    ) -> None:
        self.space = _absolute("space", space)
        self.dataset = dataset
        self.data_root = _absolute("data_root", data_root)
        #: "auto": run `dataproxy calibrate` first and search on the proxy it chooses.
        self.calibrate = ratio == "auto"
        self.ratio = 0.0 if self.calibrate else float(ratio)
        self.calibration = dict(calibration or {})
        self.proxy_epochs: int | None = None
        self.proxy_steps: int | None = _proxy_steps(proxy_steps) or None
        self.method = method
        self.seed = int(seed)
        self.max_train = int(max_train)
        self.max_test = int(max_test)
        self.probes = int(probes)
        self.probe_epochs = int(probe_epochs)
        self.image_size = int(image_size)
        self.cache = _absolute("cache", cache) if cache else None
        self.generate_args = list(generate_args or [])
        self.manifest: str | None = _absolute("manifest", manifest) if manifest else None
        self.manifest_key: str | None = None
        experiment = _experiment_dir()
        results = results_dir or (str(experiment / "dataproxy") if experiment else None)
        if results is None:
            raise InvalidInput(
                "classArgs.results_dir is needed outside an NNI experiment (NNI_LOG_DIRECTORY "
                "is unset)"
            )
        self.results_dir = _absolute("results_dir", results)
        self.report = bool(report)
        if not isinstance(serve, bool):
            raise InvalidInput(f"classArgs.serve={serve!r} must be true or false")
        self.serve = serve
        # A resumed experiment: the servers may start again.
        _remove(self.servers_stop_file())
        self._dataproxy_explicit = dataproxy
        self.policy: SpotCheck = policy_from_spec(spot_check, "classArgs.spot_check")
        self.inner: Tuner = _create_inner(builtin_tuner, builtin_args)
        self.builtin_tuner = builtin_tuner
        #: parameter ids the wrapped tuner generated (only these go back to it)
        self._inner_ids: set[int] = set()
        # NNI can deliver a trial's end before its final metric; built-in tuners such as TPE
        # forget the parameters at trial_end and then fail on the late result, so a successful
        # trial's end is passed on only after its result.
        self._results_seen: set[int] = set()
        self._ends_pending: dict[int, dict[str, Any]] = {}
        #: configuration keys with a full-data accuracy, or one on its way
        self._spot_keys: set[str] = set()
        #: the parameters (without the reserved key) handed out under each parameter_id
        self._issued: dict[int, dict[str, Any]] = {}
        #: the configuration each parameter_id's trial trained, from the results store
        self._trained: dict[int, dict[str, Any]] = {}
        self._store_offset = 0
        #: results whose trial trained other parameters than those issued under its id (NNI
        #: issue #5693): {"parameter_id", "issued", "trained"}; never given to the wrapped tuner
        self.mismatches: list[dict[str, Any]] = []
        self._rejected: set[int] = set()
        self._report_missing = False
        self._report_lock = threading.Lock()
        self._report_thread: threading.Thread | None = None
        self._report_dirty = False
        self.generations = 0

    # -- proxy stage ----------------------------------------------------------------------

    def _binary(self) -> str:
        return find_binary("dataproxy", self._dataproxy_explicit)

    def _calibrate(self) -> None:
        """`ratio: auto`: measure which proxy keeps the ranking here, then search on it."""
        c = self.calibration
        extra = ["--target", str(c.get("target", 0.9))]
        extra += ["--budget-share", str(c.get("budget_share", 0.1))]
        for choice in c.get("choices", []):
            extra += ["--choice", str(choice)]
        argv = calibrate_argv(
            self._binary(),
            space=self.space,
            dataset=self.dataset,
            data_root=self.data_root,
            out=str(Path(self.results_dir) / "calibration"),
            results=self.results_dir,
            expected_trials=int(c.get("expected_trials", 100)),
            seed=self.seed,
            max_train=self.max_train,
            max_test=self.max_test,
            image_size=self.image_size,
            epochs=int(c.get("epochs", 0)),
            cache=self.cache,
            threads=int(c.get("threads", 0)),
            extra=extra,
        )
        _logger.info("dataproxy: calibrating: %s", argv)
        cal = run_calibration(argv)
        _logger.info("dataproxy: calibration\n%s", cal.summary)
        if not cal.recommended:
            _logger.warning(
                "dataproxy: no proxy choice met the target; searching on the best one found "
                "(%s %g, %d epochs): trust its ranking only as far as the spot checks support it",
                cal.method,
                cal.ratio,
                cal.epochs,
            )
        self.method, self.ratio, self.proxy_epochs = cal.method, cal.ratio, cal.epochs
        self.proxy_steps = cal.steps or None
        self.manifest = cal.manifest
        self.manifest_key = read_manifest(cal.manifest).key

    def generate_options(self) -> GenerateOptions:
        """The proxy this experiment trains on, as `dataproxy generate` options."""
        return GenerateOptions(
            space=self.space,
            dataset=self.dataset,
            data_root=self.data_root,
            ratio=self.ratio,
            method=self.method,
            seed=self.seed,
            max_train=self.max_train,
            max_test=self.max_test,
            probes=self.probes,
            probe_epochs=self.probe_epochs,
            image_size=self.image_size,
            cache=self.cache,
            extra=tuple(str(a) for a in self.generate_args),
        )

    def _generate(self) -> None:
        argv = generate_argv(self._binary(), self.generate_options())
        _logger.info("dataproxy: generating the proxy: %s", argv)
        started = time.monotonic()
        proxy = run_generate(argv)
        self.manifest, self.manifest_key = proxy.path, proxy.key
        self.generations += 1
        _logger.info(
            "dataproxy: proxy ready in %.1f s (cache_hit=%s): %s",
            time.monotonic() - started,
            proxy.cache_hit,
            self.manifest,
        )

    def _check_space(self, search_space: dict[str, Any]) -> None:
        expected = load_space(self.space, self._dataproxy_explicit).to_nni()
        if json.dumps(expected, sort_keys=True) != json.dumps(search_space, sort_keys=True):
            raise InvalidInput(
                f"the experiment's search space {json.dumps(search_space, sort_keys=True)} is "
                f"not the one of {self.space} ({json.dumps(expected, sort_keys=True)}); write "
                "searchSpaceFile with `dataproxy` from the same YAML, or fix classArgs.space"
            )

    # -- NNI Tuner interface ----------------------------------------------------------------

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        # Called on INITIALIZE, before any trial is requested: the place for the long proxy
        # stage (NNI gives up on a tuner that does not connect within 10 s of __init__).
        self._check_space(search_space)
        if self.manifest is None:
            self._calibrate() if self.calibrate else self._generate()
        self.inner.update_search_space(search_space)

    def _attach(self, parameter_id: int, params: dict[str, Any], spot: bool) -> dict[str, Any]:
        if self.manifest is None:
            raise RuntimeFailure("dataproxy: parameters requested before the proxy stage ran")
        self._issued[parameter_id] = json.loads(json.dumps(params, default=_plain))
        out = dict(params)
        out[RESERVED_KEY] = {
            "spot_check": bool(spot),
            "manifest": self.manifest,
            "results": self.results_dir,
            "serve": self.serve,
        }
        if self.proxy_epochs:
            out[RESERVED_KEY]["proxy_epochs"] = self.proxy_epochs
        if self.proxy_steps:
            out[RESERVED_KEY]["proxy_steps"] = self.proxy_steps
        _logger.info(
            "dataproxy: parameter %s %s%s", parameter_id, params, " (spot check)" if spot else ""
        )
        return out

    def _from_inner(self, parameter_id: int, params: dict[str, Any]) -> dict[str, Any]:
        key = config_key(params)
        spot = key not in self._spot_keys and self.policy.choose(parameter_id, params)
        if spot:
            self._spot_keys.add(key)
        return self._attach(parameter_id, params, spot)

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        return self.generate_multiple_parameters([parameter_id], **kwargs)[0]

    def generate_multiple_parameters(
        self, parameter_id_list: list[int], **kwargs: Any
    ) -> list[dict[str, Any]]:
        # NNI pairs the i-th returned set with the i-th id: re-issues take the first ids.
        result: list[dict[str, Any]] = []
        ids = list(parameter_id_list)
        while ids:
            params = self.policy.reissue()
            if params is None:
                break
            self._spot_keys.add(config_key(params))
            result.append(self._attach(ids.pop(0), params, True))
        if not ids:
            return result
        callback = kwargs.get("st_callback")
        if callback is not None:
            # Tuners such as Evolution send later sets through this callback.
            def wrapped(parameter_id: int, params: dict[str, Any]) -> None:
                self._inner_ids.add(parameter_id)
                callback(parameter_id, self._from_inner(parameter_id, params))

            kwargs = {**kwargs, "st_callback": wrapped}
        inner = self.inner.generate_multiple_parameters(ids, **kwargs)
        for parameter_id, params in zip(ids, inner):
            self._inner_ids.add(parameter_id)
            result.append(self._from_inner(parameter_id, params))
        return result

    def receive_trial_result(
        self, parameter_id: int, parameters: dict[str, Any], value: Any, **kwargs: Any
    ) -> None:
        params = {k: v for k, v in parameters.items() if k != RESERVED_KEY}
        if not self._trained_as_issued(parameter_id, params):
            self._rejected.add(parameter_id)
            pending = self._ends_pending.pop(parameter_id, None)
            if pending is not None and parameter_id in self._inner_ids:
                self.inner.trial_end(parameter_id, False, **pending)
            return
        metric = value if isinstance(value, dict) else {"default": value}
        proxy = metric.get("default")
        full = metric.get("full_accuracy")
        spot = isinstance(full, (int, float))
        if isinstance(proxy, (int, float)):
            self.policy.observe(params, float(proxy), spot)
        if spot:
            self._spot_keys.add(config_key(params))
        _logger.info(
            "dataproxy: result of parameter %s: proxy %s full %s spearman %s kendall %s (n=%s)",
            parameter_id,
            proxy,
            full,
            metric.get("spearman"),
            metric.get("kendall"),
            metric.get("n_spot_checks"),
        )
        if parameter_id in self._inner_ids:
            self._results_seen.add(parameter_id)
            self.inner.receive_trial_result(parameter_id, params, value, **kwargs)
            pending = self._ends_pending.pop(parameter_id, None)
            if pending is not None:
                self.inner.trial_end(parameter_id, True, **pending)
        if self.report:
            self._request_report()

    def _read_store(self) -> None:
        """Reads the records the runners appended since the last call (a torn last line, a
        record still being written, is left for the next call)."""
        path = Path(self.results_dir) / "results.jsonl"
        try:
            with path.open("rb") as f:
                f.seek(self._store_offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self._store_offset += end
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("parameter_id"), int):
                self._trained[record["parameter_id"]] = record.get("config") or {}

    def _trained_as_issued(self, parameter_id: int, params: dict[str, Any]) -> bool:
        """False, with an error logged and the case kept in `mismatches`, when the trial that
        reported under `parameter_id` trained another configuration than the one this tuner
        issued under that id (NNI issue #5693: with concurrency a trial may receive another
        trial's parameter set). Such a result must not teach the wrapped tuner a wrong
        accuracy."""
        issued = self._issued.get(parameter_id)
        if issued is None:
            return True  # not issued by this tuner instance (a resumed experiment)
        self._read_store()
        trained = self._trained.get(parameter_id)
        candidates = [("results store", trained)] if trained is not None else []
        if params != issued:
            candidates.append(("NNI's record", params))
        for source, config in candidates:
            if config != issued:
                case = {
                    "parameter_id": parameter_id,
                    "issued": issued,
                    "trained": config,
                    "source": source,
                }
                self.mismatches.append(case)
                _logger.error(
                    "dataproxy: parameter %s: the trial trained %s (%s) but this tuner issued %s "
                    "under that id (NNI issue #5693: a trial received another trial's "
                    "parameters); its result is not given to the wrapped tuner",
                    parameter_id,
                    json.dumps(config, sort_keys=True),
                    source,
                    json.dumps(issued, sort_keys=True),
                )
                return False
        if trained is None:
            _logger.warning(
                "dataproxy: parameter %s: no record in %s to check what the trial trained",
                parameter_id,
                self.results_dir,
            )
        return True

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        if parameter_id not in self._inner_ids:
            return
        if parameter_id in self._rejected:
            success = False  # its result was not given to the wrapped tuner
        elif success and parameter_id not in self._results_seen:
            self._ends_pending[parameter_id] = kwargs
            return
        self.inner.trial_end(parameter_id, success, **kwargs)

    def import_data(self, data: list[dict[str, Any]]) -> None:
        cleaned = []
        for entry in data:
            entry = dict(entry)
            if isinstance(entry.get("parameter"), dict):
                entry["parameter"] = {
                    k: v for k, v in entry["parameter"].items() if k != RESERVED_KEY
                }
            cleaned.append(entry)
        self.inner.import_data(cleaned)

    def load_checkpoint(self) -> None:
        self.inner.load_checkpoint()

    def save_checkpoint(self) -> None:
        self.inner.save_checkpoint()

    def servers_stop_file(self) -> Path:
        """The file that tells this experiment's trial servers (dataproxy-trial-client's, in
        <results_dir>/servers) to exit once idle."""
        return Path(self.results_dir) / "servers" / "shutdown"

    def _stop_servers(self) -> None:
        folder = self.servers_stop_file().parent
        if folder.is_dir():
            try:
                self.servers_stop_file().write_text("the experiment ended\n")
            except OSError as e:
                _logger.warning("dataproxy: cannot tell the trial servers to stop: %s", e)

    def _on_exit(self) -> None:
        self._stop_servers()
        with self._report_lock:
            thread = self._report_thread
        if thread is not None:
            thread.join(timeout=300)
        if self.report:
            self._regenerate_report()
        self.inner._on_exit()

    def _on_error(self) -> None:
        self._stop_servers()
        self.inner._on_error()

    # -- report ---------------------------------------------------------------------------

    def _request_report(self) -> None:
        # In the background: the dispatcher must not wait for the report to hand out trials.
        with self._report_lock:
            self._report_dirty = True
            if self._report_thread is not None:
                return
            self._report_thread = threading.Thread(
                target=self._report_worker, name="dataproxy-report", daemon=True
            )
            self._report_thread.start()

    def _report_worker(self) -> None:
        while True:
            with self._report_lock:
                if not self._report_dirty:
                    self._report_thread = None
                    return
                self._report_dirty = False
            try:
                self._regenerate_report()
            except Exception:  # a report must never stop the search
                _logger.exception("dataproxy: report failed")

    def _regenerate_report(self) -> None:
        if self._report_missing or self.manifest is None:
            return
        if not (Path(self.results_dir) / "results.jsonl").exists():
            return
        try:
            binary = self._binary()
        except FileNotFoundError as e:
            _logger.warning("dataproxy: no report: %s", e)
            self._report_missing = True
            return
        probe = subprocess.run(
            [binary, "report", "--help"], capture_output=True, text=True, check=False
        )
        if probe.returncode != 0:
            _logger.info("dataproxy: `dataproxy report` is not available; no report")
            self._report_missing = True
            return
        argv = [binary, "report", "--results", self.results_dir, "--manifest", self.manifest]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        if done.returncode != 0:
            _logger.warning(
                "dataproxy: %s failed (exit %s): %s", argv, done.returncode, done.stderr[-500:]
            )
        else:
            _logger.info("dataproxy: report updated in %s", self.results_dir)
            for line in bottom_line(Path(self.results_dir) / "report.json"):
                _logger.info("dataproxy: %s", line)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _plain(value: Any) -> Any:
    # numpy scalars from a wrapped tuner, as NNI itself would serialise them
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot compare a parameter value of type {type(value).__name__}")


def _builtin_class(name: str) -> type:
    module_name, class_name = get_builtin_module_class_name("tuners", name)
    if module_name is None:
        raise InvalidInput(f"builtin_tuner={name!r} is not a tuner NNI knows (nnictl algo list)")
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name)


def _inner_args(name: str, args: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(args or {})
    if "optimize_mode" not in out:
        params = inspect.signature(_builtin_class(name).__init__).parameters
        if "optimize_mode" in params:
            out["optimize_mode"] = "maximize"  # the metric is an accuracy
    return out


def _create_inner(name: str, args: dict[str, Any] | None) -> Tuner:
    if name.lower() == "dataproxy":
        raise InvalidInput("builtin_tuner cannot be DataProxy itself")
    return create_builtin_class_instance(name, _inner_args(name, args), "tuners")


class DataProxyClassArgsValidator(ClassArgsValidator):
    """Checks classArgs at `nnictl create`, before the experiment starts."""

    def validate_class_args(self, **kwargs: Any) -> None:
        required = {"space", "dataset", "data_root"}
        missing = required - set(kwargs)
        if missing:
            raise InvalidInput(f"DataProxy classArgs is missing {sorted(missing)}")
        known = set(inspect.signature(DataProxyTuner.__init__).parameters) - {"self"}
        unknown = set(kwargs) - known
        if unknown:
            raise InvalidInput(f"DataProxy classArgs has unknown keys {sorted(unknown)}")
        for key in ("space", "data_root", "cache", "manifest", "results_dir", "dataproxy"):
            if kwargs.get(key):
                _absolute(key, kwargs[key])
        # The program checks the space (family included) now, not when the first trial runs.
        load_space(kwargs["space"], kwargs.get("dataproxy"))
        check_method(kwargs.get("method", "importance"), kwargs.get("dataproxy"))
        _proxy_steps(kwargs.get("proxy_steps", 0))
        if not isinstance(kwargs.get("serve", True), bool):
            raise InvalidInput(f"classArgs.serve={kwargs['serve']!r} must be true or false")
        if kwargs.get("ratio") != "auto":
            ratio = float(kwargs.get("ratio", 0.1))
            if not 0.0 < ratio <= 1.0:
                raise InvalidInput(f"classArgs.ratio={ratio} must be in (0, 1], or 'auto'")
        image_size = kwargs.get("image_size", 0)
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 0:
            raise InvalidInput(
                f"classArgs.image_size={image_size!r} must be a whole number of pixels >= 0 "
                "(0 = the data's most common size)"
            )
        calibration = kwargs.get("calibration") or {}
        known_cal = {"target", "budget_share", "choices", "expected_trials", "epochs", "threads"}
        if not isinstance(calibration, dict) or set(calibration) - known_cal:
            raise InvalidInput(
                f"classArgs.calibration must be a mapping with keys among {sorted(known_cal)}"
            )
        policy_from_spec(kwargs.get("spot_check"), "classArgs.spot_check")
        name = kwargs.get("builtin_tuner", "TPE")
        _builtin_class(name)
        validator = create_validator_instance("tuners", name)
        if validator is not None:
            validator.validate_class_args(**_inner_args(name, kwargs.get("builtin_args")))
