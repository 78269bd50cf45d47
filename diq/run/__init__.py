"""``python -m diq.run`` — one run (``frame``: config checks, the W&B run, the record and the summary) over the
stages that ``pipeline`` walks; ``validate`` checks a run's config as a whole, ``provenance`` says what was run where (git, versions),
``tracking`` is the W&B run."""

from diq.run.frame import NOT_A_CELL_KEY, cell_of, main, run, summary_text
from diq.run.pipeline import STAGES, cell_hash, config_hash

__all__ = ["NOT_A_CELL_KEY", "STAGES", "cell_hash", "cell_of", "config_hash", "main", "run", "summary_text"]
