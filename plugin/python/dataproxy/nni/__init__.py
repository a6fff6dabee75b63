"""NNI adapter: the DataProxy tuner (wraps a built-in tuner, runs the proxy stage once, hands
the manifest and spot-check decisions to the C++ trials). Register it with
scripts/register-nni.sh; see integration/nni/config.yml."""

from .tuner import RESERVED_KEY, DataProxyClassArgsValidator, DataProxyTuner

__all__ = ["RESERVED_KEY", "DataProxyClassArgsValidator", "DataProxyTuner"]
