"""Optuna adapter: an objective that trains each trial on a data proxy with the C++ trial
runner, spot-check policies, and the `dataproxy-optuna` study runner.

    import optuna
    from dataproxy.space import load_space
    from dataproxy.optuna import DataProxyObjective, RunnerOptions, RunnerFailed, SpotCheckPolicy

    space = load_space("search_spaces/resnet_tiny.yaml")
    options = RunnerOptions(binary="build/trial_runner/dataproxy-trial", manifest=manifest_path,
                            space_file="search_spaces/resnet_tiny.yaml", data_root="data",
                            results_dir="experiments/demo", epochs=2)
    objective = DataProxyObjective(space, options, spot_check=SpotCheckPolicy(fraction=0.25))
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, n_trials=12, catch=(RunnerFailed,))
"""

from dataproxy.spot_check import NoSpotCheck, SpotCheck, SpotCheckPolicy

from .objective import DataProxyObjective, RunnerFailed, RunnerOptions, runner_argv
from .study import StudyConfig, StudyError, run_study

__all__ = [
    "DataProxyObjective",
    "NoSpotCheck",
    "RunnerFailed",
    "RunnerOptions",
    "SpotCheck",
    "SpotCheckPolicy",
    "StudyConfig",
    "StudyError",
    "run_study",
    "runner_argv",
]
