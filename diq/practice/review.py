"""The physician review pack: blinded export (CSV + a self-contained offline HTML form) and the import of
completed ratings, unblinded into per-strategy means and inter-rater agreement.

Pack folder:
- ``review.html``   the form (open in any browser, no network): ratings autosave in the browser and
                    "Save ratings" downloads ``ratings-<rater>.csv``;
- ``review.csv``    the same items for raters who prefer a spreadsheet (fill the three rating columns);
- ``KEY-do-not-send-to-raters.json``  item → group(s), kind, source id: what unblinds the ratings;
- ``pack.json``     manifest (pack id, seed, counts, sources).
Items are shuffled with a seed, carry content-addressed ids, and show neither group nor strategy.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import random
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from diq.artifacts import write_json, write_text
from diq.errors import DiqError
from diq.practice.agreement import agreement, bootstrap_diff
from diq.practice.criteria import DIMENSIONS, RUBRICS, TITLES
from diq.practice.review_form import HTML

KEY_FILE = "KEY-do-not-send-to-raters.json"
CSV_COLUMNS = ["position", "item_id", "question", "answer", "rater", *DIMENSIONS, "comment"]


ITEM_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(v):
    """A spreadsheet cell that cannot run as a formula (OWASP CSV injection): a leading = + - @ tab or CR gets a '."""
    if isinstance(v, str) and v.startswith(FORMULA):
        return "'" + v
    return v


def safe_row(row: dict) -> dict:
    return {k: safe_cell(v) for k, v in row.items()}


def export_pack(items: list[dict], out: Path, seed: int = 0, title: str = "Expert-practice review",
                sources: list[str] | None = None) -> dict:
    """Write the blinded pack for ``items`` (identical texts are merged into one item rated once)."""
    for i, it in enumerate(items):
        if not isinstance(it.get("item_id"), str) or not ITEM_ID.match(it["item_id"]):
            raise DiqError(f"item {i + 1}: item_id {str(it.get('item_id'))[:60]!r} is not a plain id (letters, digits, "
                           f"_ . : - only, at most 128)\n  fix: use the item files written by `python -m diq.practice "
                           f"samples|generations` (content-addressed ids), or plain ids")
    by_id: dict[str, dict] = {}
    groups: dict[str, list[str]] = defaultdict(list)
    for it in items:
        by_id.setdefault(it["item_id"], it)
        if it["group"] not in groups[it["item_id"]]:
            groups[it["item_id"]].append(it["group"])
    order = sorted(by_id)
    random.Random(seed).shuffle(order)
    pack_id = hashlib.sha256(("\n".join(order)).encode()).hexdigest()[:12]
    out.mkdir(parents=True, exist_ok=True)
    shown = [{"position": i + 1, "item_id": k, "question": by_id[k]["question"], "answer": by_id[k]["text"]}
             for i, k in enumerate(order)]
    with open(out / "review.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for s in shown:
            w.writerow(safe_row({**s, "rater": "", **{d: "" for d in DIMENSIONS}, "comment": ""}))
    write_text(out / "review.html", render_html(shown, pack_id, title))
    write_json(out / KEY_FILE, {"pack_id": pack_id, "items": {
        k: {"groups": groups[k], "kind": by_id[k]["kind"], "source_id": by_id[k]["source_id"]} for k in order}})
    manifest = {"pack_id": pack_id, "seed": seed, "n_items": len(order), "n_input_items": len(items),
                "groups": sorted({g for gs in groups.values() for g in gs}), "sources": sources or [],
                "dimensions": DIMENSIONS}
    write_json(out / "pack.json", manifest)
    return manifest


def render_html(shown: list[dict], pack_id: str, title: str) -> str:
    # JSON inside a <script> block: no "<", ">" or "&" may appear raw ("<!--<script>" in a text would otherwise
    # switch the HTML parser into a state where the block never ends and the page stays blank)
    data = json.dumps({"pack_id": pack_id, "items": shown, "dimensions": DIMENSIONS,
                       "titles": TITLES, "rubrics": RUBRICS}, ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return HTML.replace("__TITLE__", html.escape(title)).replace("__DATA__", data)


# ------------------------------------------------------------------------------------------------ import
def _decode(path: Path) -> str:
    """UTF-8 (with or without BOM), else Windows-1252 / Latin-1 — what spreadsheets commonly export."""
    raw = Path(path).read_bytes()
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _read_ratings(path: Path, known: set[str]) -> list[dict]:
    import io

    rows = []
    if not Path(path).is_file():
        raise DiqError(f"ratings file not found: {path}\n  fix: pass the CSV files saved from review.html or review.csv")
    with io.StringIO(_decode(path), newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ["item_id", "rater", *DIMENSIONS] if c not in (reader.fieldnames or [])]
        if missing:
            raise DiqError(f"{path}: missing column(s) {', '.join(missing)}\n  fix: keep the header of review.csv "
                           f"or of the form's saved file (item_id, rater, {', '.join(DIMENSIONS)})")
        for line, r in enumerate(reader, start=2):
            if not any((r.get(d) or "").strip() for d in DIMENSIONS):
                continue  # an item this rater left blank
            iid, rater = (r["item_id"] or "").strip().lstrip("'"), (r["rater"] or "").strip().lstrip("'")
            if iid not in known:
                raise DiqError(f"{path}:{line}: item_id {iid!r} is not in this pack\n  fix: import ratings into "
                               f"the pack they were made from (--pack)")
            if not rater:
                raise DiqError(f"{path}:{line}: empty 'rater'\n  fix: fill in the rater's name or initials")
            vals = {}
            for d in DIMENSIONS:
                v = (r.get(d) or "").strip()
                if v == "":
                    vals[d] = None
                    continue
                if v not in {"1", "2", "3", "4", "5"}:
                    raise DiqError(f"{path}:{line}: {d}={v!r} is not a rating\n  fix: use a whole number 1-5, or "
                                   f"leave it empty")
                vals[d] = int(v)
            rows.append({"file": str(path), "line": line, "item_id": iid, "rater": rater, **vals})
    return rows


def import_ratings(pack: Path, csv_paths: list[Path], n_boot: int = 2000, seed: int = 0) -> dict:
    """Read completed rating files, unblind them with the pack's key, and summarise them."""
    key_path = pack / KEY_FILE
    if not key_path.exists():
        raise DiqError(f"{key_path}: the pack's key is missing\n  fix: pass the pack folder written by "
                       f"`python -m diq.practice export` (--pack)")
    key = json.loads(key_path.read_text(encoding="utf-8"))
    rows = [r for p in csv_paths for r in _read_ratings(Path(p), set(key["items"]))]
    seen: dict[tuple[str, str], dict] = {}
    for r in rows:
        k = (r["rater"], r["item_id"])
        if k in seen:
            a = seen[k]
            raise DiqError(f"rater {r['rater']!r} rated item {r['item_id']} twice: {a['file']}:{a['line']} and "
                           f"{r['file']}:{r['line']}\n  fix: keep one of the two rows")
        seen[k] = r
    if not rows:
        raise DiqError(f"no ratings in {', '.join(map(str, csv_paths))}\n  fix: fill in the rating columns first")
    # unblinded long table
    long = [{"rater": r["rater"], "item_id": r["item_id"], "group": g, "kind": key["items"][r["item_id"]]["kind"],
             "source_id": key["items"][r["item_id"]]["source_id"], "dimension": d, "rating": r[d]}
            for r in rows for g in key["items"][r["item_id"]]["groups"] for d in DIMENSIONS if r[d] is not None]
    groups = sorted({x["group"] for x in long})
    summary: dict = {"pack_id": key["pack_id"], "raters": sorted({r["rater"] for r in rows}),
                     "n_rating_rows": len(rows), "groups": groups, "means": {}, "differences": {}, "agreement": {}}
    for d in DIMENSIONS:
        # item-level mean over raters, then the mean over a group's items
        per_item: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for x in long:
            if x["dimension"] == d:
                per_item[x["group"]][x["item_id"]].append(x["rating"])
        item_means = {g: {i: float(np.mean(v)) for i, v in per_item[g].items()} for g in groups}
        summary["means"][d] = {g: {"mean": float(np.mean(list(m.values()))) if m else None, "n_items": len(m)}
                               for g, m in item_means.items()}
        if len(groups) >= 2:
            base = groups[-1] if "unselected" not in groups else "unselected"
            for g in groups:
                if g == base or not item_means[g] or not item_means[base]:
                    continue
                summary["differences"].setdefault(d, {})[f"{g} - {base}"] = bootstrap_diff(
                    list(item_means[g].values()), list(item_means[base].values()), n_boot=n_boot, seed=seed)
        by_rater: dict[str, dict[str, float]] = defaultdict(dict)
        for r in rows:
            if r[d] is not None:
                by_rater[r["rater"]][r["item_id"]] = r[d]
        summary["agreement"][d] = agreement(by_rater)
    return {"summary": summary, "long": long}


def write_import(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ratings_unblinded.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["rater", "item_id", "group", "kind", "source_id", "dimension", "rating"])
        w.writeheader()
        w.writerows(safe_row(r) for r in result["long"])
    write_json(out / "review_summary.json", result["summary"])
    write_text(out / "review_summary.md", summary_markdown(result["summary"]))
    return [out / "ratings_unblinded.csv", out / "review_summary.json", out / "review_summary.md"]


def summary_markdown(s: dict) -> str:
    lines = [f"# Physician review (pack {s['pack_id']}; raters: {', '.join(s['raters'])})", "",
             "| dimension | " + " | ".join(s["groups"]) + " |", "|---|" + "---|" * len(s["groups"])]
    for d in DIMENSIONS:
        cells = [f"{m['mean']:.2f} (n={m['n_items']})" if m["mean"] is not None else "–"
                 for m in (s["means"][d].get(g, {"mean": None}) for g in s["groups"])]
        lines.append(f"| {TITLES[d]} | " + " | ".join(cells) + " |")
    if s["differences"]:
        lines += ["", "| dimension | comparison | difference | 95 % CI (bootstrap) |", "|---|---|---|---|"]
        for d, comps in s["differences"].items():
            for name, b in comps.items():
                lines.append(f"| {TITLES[d]} | {name} | {b['diff']:+.2f} | [{b['ci_low']:+.2f}, {b['ci_high']:+.2f}] |")
    lines += ["", "| dimension | raters | Cohen's κ (quadratic) | Krippendorff's α (ordinal) | α (interval) |",
              "|---|---|---|---|---|"]
    for d in DIMENSIONS:
        a = s["agreement"][d]

        def f(k, a=a):
            return f"{a[k]:.3f}" if k in a else "–"

        lines.append(f"| {TITLES[d]} | {len(a['raters'])} | {f('cohen_kappa_quadratic')} | "
                     f"{f('krippendorff_alpha_ordinal')} | {f('krippendorff_alpha_interval')} |")
    return "\n".join(lines) + "\n"
