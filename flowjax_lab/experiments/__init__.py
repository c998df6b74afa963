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
    Check as Check,
    Result as Result,
    check as check,
    combine_seeds as combine_seeds,
)
