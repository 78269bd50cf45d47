"""diq — a reproducibility harness for DIQ (Difficulty–Influence Quadrant) data selection."""

__version__ = "0.1.0"
