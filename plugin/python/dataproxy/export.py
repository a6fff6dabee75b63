"""Export the networks of a ``family: torchscript`` search space to TorchScript, once.

The C++ trainer, the proxy stage and the trial runner train your own networks from these files::

    python3 -m dataproxy.export --space search_spaces/mobilenet_ts.yaml --input 1,28,28 --classes 10

For every configuration of the space, ``build(config)`` from the space's ``torchscript.module``
file makes a ``torch.nn.Module`` (after ``torch.manual_seed(torchscript.seed)``, so the initial
weights are fixed by the space), which is compiled with ``torch.jit.script`` or, when that
fails, ``torch.jit.trace`` (batch norm, dropout and instance norm layers scripted first so that
train and eval mode still differ). The file is loaded back and checked against the Python
network in eval and train mode before it is recorded.

``config`` holds the configuration's parameters (named choices resolved to their values), the
space's ``model:`` settings, and two keys of the data: ``num_classes`` and ``input_shape``
([C, H, W]). The network must return logits [N, num_classes] and have a method
``features(self, x)`` returning one vector per image, [N, D] (the pooled penultimate
activations the proxy stage maps samples with); it is exported with the network (no
``@torch.jit.export`` needed). A network without one is refused.

The folder (``torchscript.exports``, default ``<space file stem>.export`` beside the space file)
gets one ``.pt`` file per configuration and input, and ``index.json``: for every configuration
id, the file, its sha256, MACs (PyTorch's profiler: FLOPs of ``aten::conv2d`` and the matrix
products ``mm``/``addmm``/``bmm``/``baddbmm``, halved, for one image, eval mode; batch norm,
activations, pooling and element-wise operations are not counted, as for the built-in families),
trainable parameters, feature width, input shape, classes, how it was compiled and the torch
version. Exporting for another input shape or class count adds entries; a changed module file,
function or seed starts the index afresh.

Export with the torch whose version matches the LibTorch that trains (Debian 12: python3-torch
1.13 and libtorch-dev 1.13; ``/usr/bin/python3``): a file written by a newer torch may not load.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataproxy.errors import DataproxyError, InvalidInput
from dataproxy.space import SearchSpace, load_space

__all__ = [
    "ExportError",
    "TorchScriptSpace",
    "config_id",
    "count_macs",
    "export_space",
    "load_torchscript_space",
    "main",
]

INDEX_FORMAT = "dataproxy-torchscript-index"
INDEX_VERSION = 1
INDEX_NAME = "index.json"
#: Keys the helper adds to every config; a space may not use them as parameters or settings.
RESERVED = ("num_classes", "input_shape")
#: Profiler events whose FLOPs count as 2 x MACs (they do not nest within each other).
MAC_EVENTS = ("aten::conv2d", "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
MACS_COUNTER = "torch.profiler with_flops: (conv2d + mm + addmm + bmm + baddbmm FLOPs) / 2"


class ExportError(InvalidInput):
    """A space or a network that cannot be exported; the message says what to change."""


@dataclass(frozen=True)
class TorchScriptSpace:
    """A ``family: torchscript`` space as the export helper reads it."""

    space: SearchSpace
    path: Path
    module: Path
    function: str
    exports: Path
    seed: int
    model: Mapping[str, Any]

    def configs(self) -> Iterable[dict[str, Any]]:
        """Every configuration (parameter -> choice), in the C++ side's order."""
        return self.space.enumerate()

    def build_config(
        self, config: Mapping[str, Any], input_shape: tuple[int, int, int], classes: int
    ) -> dict[str, Any]:
        """What build(config) receives: resolved parameters, model settings, data keys."""
        out = dict(self.model)
        for p in self.space.parameters:
            value = config[p.name]
            out[p.name] = p.values[value] if isinstance(value, str) else value
        out["num_classes"] = classes
        out["input_shape"] = list(input_shape)
        return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_torchscript_space(path: str | os.PathLike, binary: str | None = None) -> TorchScriptSpace:
    """A ``family: torchscript`` space as the `dataproxy` program reads it (``dataproxy space
    FILE --json``): relative paths are relative to its folder."""
    path = Path(path)
    try:
        space = load_space(path, binary)
    except DataproxyError as e:
        raise ExportError(str(e)) from None
    if space.family != "torchscript" or space.torchscript is None:
        raise ExportError(
            f"{path}: family is {space.family!r}; only `family: torchscript` spaces are exported "
            "(the built-in families are built in C++)"
        )
    for name in [p.name for p in space.parameters] + list(space.model):
        if name in RESERVED:
            raise ExportError(
                f"{path}: {name!r} is set by the export helper from --classes/--input; rename "
                "your parameter or setting"
            )
    block = space.torchscript
    return TorchScriptSpace(
        space=space,
        path=path,
        module=Path(block.module),
        function=block.function,
        exports=Path(block.exports),
        seed=block.seed,
        model=dict(space.model),
    )


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return json.dumps(value)


def config_id(space: SearchSpace, config: Mapping[str, Any]) -> str:
    """The C++ side's id: numbers prefixed with the parameter's name, names as they are."""
    parts = []
    for p in space.parameters:
        v = config[p.name]
        parts.append(v if isinstance(v, str) else p.name + _number_text(v))
    return "_".join(parts)


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ExportError(
            f"{sys.executable} has no torch; run the export with the Python that has the torch "
            "matching your LibTorch (Debian 12: apt install python3-torch, then "
            "/usr/bin/python3 -m dataproxy.export ...)"
        ) from None
    return torch


def _load_builder(module_path: Path, function: str) -> Callable[[dict], Any]:
    name = "dataproxy_user_" + hashlib.sha256(str(module_path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, module_path)
    if spec is None or spec.loader is None:
        raise ExportError(f"{module_path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # TorchScript reads the source of the module's classes
    sys.path.insert(0, str(module_path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(module_path.parent))
    builder = getattr(module, function, None)
    if not callable(builder):
        raise ExportError(
            f"{module_path} has no function {function!r}; define `def {function}(config)` "
            "returning a torch.nn.Module, or set `torchscript.function`"
        )
    return builder


def count_macs(model, input_shape: tuple[int, int, int]) -> int:
    """MACs of one forward pass of one zero image, by PyTorch's profiler (see MAC_EVENTS)."""
    torch = _import_torch()
    from torch.profiler import ProfilerActivity, profile

    model = copy.deepcopy(model).eval()
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        model(torch.zeros(1, *input_shape))
    flops = sum(e.flops or 0 for e in prof.events() if e.name in MAC_EVENTS)
    return int(flops // 2)


def _script_mode_layers(model) -> int:
    """Scripts, in place, the layers that act differently in train and eval mode, so that a
    trace keeps calling them instead of freezing the mode it was traced in."""
    torch = _import_torch()
    nn = torch.nn.modules
    kinds = (nn.batchnorm._BatchNorm, nn.dropout._DropoutNd, nn.instancenorm._InstanceNorm)
    scripted = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, kinds):
                setattr(parent, name, torch.jit.script(child))
                scripted += 1
    return scripted


def _compile(model, example) -> tuple[Any, str]:
    """torch.jit.script, else torch.jit.trace of forward and features."""
    torch = _import_torch()
    # torch.jit.export marks the function itself (an attribute); the mark makes script compile
    # features even when forward does not call it, and must be off while tracing, which would
    # otherwise try to compile the method too.
    features = getattr(type(model), "features", None)
    marker = "_torchscript_modifier"
    had_mark = hasattr(features, marker)
    saved_mark = getattr(features, marker, None)
    try:
        if not had_mark:
            torch.jit.export(features)
        try:
            return torch.jit.script(model), "script"
        except Exception as e:  # the compiler raises many kinds; any means "try trace"
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        delattr(features, marker)
        traced = copy.deepcopy(model)
        _script_mode_layers(traced)
        # Tracing runs the network (in train mode): put back the batch-norm statistics it moved.
        state = {k: v.clone() for k, v in traced.state_dict().items()}
        try:
            module = torch.jit.trace_module(traced, {"forward": example, "features": example})
            with torch.no_grad():
                for k, v in module.state_dict().items():
                    v.copy_(state[k])
        except Exception as e:
            raise ExportError(
                f"neither torch.jit.script ({reason}) nor torch.jit.trace ({e}) compiles the "
                "network"
            ) from None
        return module, f"trace (script failed: {reason})"
    finally:
        if had_mark:
            setattr(features, marker, saved_mark)
        elif hasattr(features, marker):
            delattr(features, marker)


def _same(a, b) -> bool:
    torch = _import_torch()
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))


def _check_network(model, where: str, input_shape, classes: int):
    """The Python network's shape contract: [N, classes] logits and [N, D] features."""
    torch = _import_torch()
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"{where} returned {type(model).__name__}, not a torch.nn.Module")
    if not callable(getattr(model, "features", None)):
        raise ExportError(
            f"{where}: the network has no features(self, x) method, so the proxy stage cannot "
            "read the upper probe's features; add one returning the pooled penultimate "
            "activations [N, D] (forward can then be `return self.classifier(self.features(x))`)"
        )
    model.eval()
    with torch.no_grad():
        x = torch.zeros(1, *input_shape)
        try:
            logits, feats = model(x), model.features(x)
        except Exception as e:
            raise ExportError(
                f"{where}: the network fails on one zero image of shape [1, "
                f"{', '.join(map(str, input_shape))}]: {e}"
            ) from None
    model.train()
    if tuple(logits.shape) != (1, classes):
        raise ExportError(
            f"{where}: forward returns {list(logits.shape)} for one image; expected [1, {classes}]"
            " (read config['num_classes'] for the classifier's width)"
        )
    if feats.dim() != 2 or feats.shape[0] != 1:
        raise ExportError(
            f"{where}: features returns {list(feats.shape)} for one image; it must return one "
            "vector per image, [N, D] (pool and flatten)"
        )
    return int(feats.shape[1])


def _verify(loaded, model, where: str, input_shape) -> None:
    """The loaded file computes what the Python network computes, in eval and in train mode."""
    torch = _import_torch()
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    reference = copy.deepcopy(model)
    loaded = copy.deepcopy(loaded)
    with torch.no_grad():
        for mode in ("eval", "train"):
            reference.train(mode == "train")
            loaded.train(mode == "train")
            torch.manual_seed(0)
            want = (reference(x), reference.features(x))
            torch.manual_seed(0)
            got = (loaded(x), loaded.features(x))
            if not (_same(want[0], got[0]) and _same(want[1], got[1])):
                raise ExportError(
                    f"{where}: the exported file computes something else than the Python network "
                    f"in {mode} mode (a trace freezes Python control flow and the shapes it saw); "
                    "make the network scriptable (torch.jit.script) and export again"
                )


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_index(folder: Path) -> dict | None:
    try:
        index = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        return None
    return index


def _shape_text(shape) -> str:
    return "x".join(str(s) for s in shape)


def export_space(
    space_path: str | os.PathLike,
    input_shape: tuple[int, int, int],
    classes: int,
    out: str | os.PathLike | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
    binary: str | None = None,
) -> dict:
    """Exports every configuration of the space for `input_shape` (C, H, W) and `classes`;
    returns the index. Entries already exported from the same module, function and seed, whose
    file is intact, are kept unless `force`."""
    torch = _import_torch()
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ExportError(f"--input must be C,H,W with positive sizes (got {input_shape})")
    if classes < 2:
        raise ExportError(f"--classes must be at least 2 (got {classes})")
    ts = load_torchscript_space(space_path, binary)
    folder = Path(out) if out is not None else ts.exports
    folder.mkdir(parents=True, exist_ok=True)
    module_sha = _sha256_file(ts.module)
    identity = {"module_sha256": module_sha, "function": ts.function, "seed": ts.seed}

    index = _read_index(folder)
    if index is None or any(index.get(k) != v for k, v in identity.items()):
        if index is not None:
            log(f"{ts.module.name}, its function or seed changed: exporting afresh")
            for entries in index.get("configs", {}).values():
                for e in entries:
                    (folder / str(e.get("file", ""))).unlink(missing_ok=True)
        index = {"configs": {}}
    index.update(
        {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "space": ts.space.name,
            "space_file": str(ts.path.resolve()),
            "module": str(ts.module),
            **identity,
            "macs_counter": MACS_COUNTER,
        }
    )
    builder = _load_builder(ts.module, ts.function)
    input_shape = tuple(int(s) for s in input_shape)
    configs = list(ts.configs())
    for n, config in enumerate(configs, 1):
        cid = config_id(ts.space, config)
        where = f"configuration {cid} ({ts.module.name}:{ts.function})"
        entries = [
            e
            for e in index["configs"].get(cid, [])
            if not (tuple(e.get("input", ())) == input_shape and e.get("classes") == classes)
        ]
        old = [e for e in index["configs"].get(cid, []) if e not in entries]
        if old and not force and (folder / old[0]["file"]).is_file():
            if _sha256_file(folder / old[0]["file"]) == old[0]["sha256"]:
                log(f"[{n}/{len(configs)}] {cid}: up to date")
                continue
        torch.manual_seed(ts.seed)
        try:
            model = builder(ts.build_config(config, input_shape, classes))
        except ExportError:
            raise
        except Exception as e:
            raise ExportError(f"{where}: build failed: {type(e).__name__}: {e}") from None
        feature_dim = _check_network(model, where, input_shape, classes)
        macs = count_macs(model, input_shape)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        model.train()
        example = torch.zeros(2, *input_shape)
        module, how = _compile(model, example)
        module.train()
        name = f"{cid}.{_shape_text(input_shape)}.c{classes}.pt"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=name + ".", suffix=".tmp")
        os.close(fd)
        try:
            module.save(tmp)
            try:
                loaded = torch.jit.load(tmp)
            except Exception as e:
                raise ExportError(f"{where}: the saved file does not load back: {e}") from None
            if not loaded._c._has_method("features"):
                raise ExportError(f"{where}: the compiled network lost its features method")
            _verify(loaded, model, where, input_shape)
            os.replace(tmp, folder / name)
        finally:
            Path(tmp).unlink(missing_ok=True)
        entries.append(
            {
                "config": config,
                "input": list(input_shape),
                "classes": classes,
                "file": name,
                "sha256": _sha256_file(folder / name),
                "macs": macs,
                "params": params,
                "feature_dim": feature_dim,
                "compiled": how,
                "torch_version": torch.__version__,
                "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"
                ),
            }
        )
        index["configs"][cid] = entries
        log(
            f"[{n}/{len(configs)}] {cid}: {how.split(' ')[0]}, {macs / 1e6:.2f} M MACs, "
            f"{params} parameters, features {feature_dim} -> {name}"
        )
    _atomic_write(folder / INDEX_NAME, (json.dumps(index, indent=1) + "\n").encode())
    if folder.resolve() != ts.exports.resolve():
        log(
            f"note: {ts.path} reads its networks from {ts.exports}; set `torchscript.exports: "
            f"{folder}` there to use this folder"
        )
    return index


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(
            f"expected C,H,W such as 1,28,28 or 3,32,32 (got {text!r})"
        )
    return parts  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m dataproxy.export",
        description="Export every configuration of a `family: torchscript` search space to "
        "TorchScript files and an index.json (MACs, parameters, sha256) for the C++ trainer.",
    )
    parser.add_argument("--space", required=True, help="the search-space YAML file")
    parser.add_argument(
        "--input", required=True, type=_parse_shape, help="C,H,W of the images, e.g. 1,28,28"
    )
    parser.add_argument("--classes", required=True, type=int, help="number of classes")
    parser.add_argument(
        "--out", help="folder to write (default: the space's torchscript.exports)", default=None
    )
    parser.add_argument("--force", action="store_true", help="export again even if up to date")
    parser.add_argument(
        "--dataproxy-bin",
        default=None,
        help="the dataproxy program, which reads the space (default: $DATAPROXY_BIN, PATH, "
        "then the checkout's build folder)",
    )
    args = parser.parse_args(argv)
    try:
        export_space(
            args.space,
            args.input,
            args.classes,
            out=args.out,
            force=args.force,
            binary=args.dataproxy_bin,
        )
    except DataproxyError as e:
        print(f"dataproxy.export: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
