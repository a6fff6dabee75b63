"""dataproxy: data proxies for fast neural architecture search (NNI and Optuna adapters)."""

__version__ = "0.1.0"
