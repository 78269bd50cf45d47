"""``python -m diq.report`` — tables from run records (``cli``): ``records`` finds and de-duplicates them, ``table``
aggregates one row per configuration, ``render`` writes the CSV's markdown, provenance page and plot."""

from diq.report.command import main
from diq.report.records import COLUMNS, budget_name, cell_key, dedupe, find_records, load_records
from diq.report.render import plot, render, render_provenance, write_csv
from diq.report.table import PRACTICE_COLUMNS, aggregate, practice_rows

__all__ = ["COLUMNS", "PRACTICE_COLUMNS", "aggregate", "budget_name", "cell_key", "dedupe", "find_records",
           "load_records", "main", "plot", "practice_rows", "render", "render_provenance", "write_csv"]
