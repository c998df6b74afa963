"""Experiments: a frozen config plus a pure ``run(config, key) -> Result``, in a registry."""

from ._io import load_run as load_run, save_run as save_run
from ._registry import (
    THEMES as THEMES,
    Experiment as Experiment,
    broken as broken,
    get as get,
    names as names,
    register as register,
    run as run,
)
from ._result import (
    KINDS as KINDS,
    Check as Check,
    Result as Result,
    at_least as at_least,
    at_most as at_most,
    better as better,
    close as close,
    combine_seeds as combine_seeds,
    fit_ok as fit_ok,
    holds as holds,
)
from ._run_folder import run_all as run_all, run_into as run_into
