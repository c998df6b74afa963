"""The jaxtyping annotations of the public API, checked at run time.

tests/typechecked_api.py imports flowjax_lab under jaxtyping's import hook (beartype as the
checker) and calls the public functions once at tiny sizes, traced with ``jax.eval_shape`` (the
checks run at trace time, so no XLA compilation is needed), then makes calls that break an
annotation, eagerly and under ``jit``, which must raise ``jaxtyping.TypeCheckError``. It runs in
a subprocess because the hook applies only to modules imported after it is installed, and the
rest of the suite has imported flowjax_lab already (the checks would also slow every other test).
"""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("typechecked_api.py")


def test_public_api_matches_its_annotations():
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-6000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["hook"] and report["calls"] >= 80
