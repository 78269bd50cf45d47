"""diq — a reproducibility harness for DIQ (Difficulty–Influence Quadrant) data selection.

The package is layered; a module imports only from its own layer or those below it (tests/test_architecture.py):
``errors``, ``logs``, ``artifacts`` → ``engine/`` (models, LoRA, formatting, gradients, influence, projection,
fine-tuning) → ``config/`` (schemas, value checks, composition, components) → ``tasks/`` (benchmarks, validation
sources, decontamination) → ``stages/`` (pool → score → select → train → dpo → evaluate, one subpackage each) →
``run/`` (runner, run checks, record, tracking) → ``practice/`` → ``report/`` → ``tools/`` → ``cli``.
"""

from pathlib import Path

__version__ = "0.1.0"

DATA = Path(__file__).resolve().parent / "data"  # the files shipped in the package (fixtures, the demo pool)
CONF = Path(__file__).resolve().parents[1] / "conf"  # the Hydra config tree beside the package (a source checkout)
