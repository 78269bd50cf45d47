"""The measured-performance tables of ``docs/performance.md``, rendered from ``benchmarks/*.json`` (``diq bench docs``
writes them between two markers; ``--check``, run in CI, fails when the page and the JSON disagree). A figure in
these tables is never typed by hand: rerun a benchmark, then ``diq bench docs``."""

from __future__ import annotations

import json
from pathlib import Path

from diq.errors import DiqError

BEGIN = "<!-- begin: rendered by `diq bench docs` from benchmarks/*.json; do not edit by hand -->"
END = "<!-- end: rendered by `diq bench docs` -->"


def _f(x, fmt: str = "{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def _cmd(d: dict) -> str:
    c = d.get("command")
    for old in ("python -m diq.bench ", "python -m diq.tools.bench "):  # the same command, as typed before `diq`
        c = c.replace(old, "diq bench ") if c else c
    return f"`{c}`" if c else "—"


def _table(title: str, headers: list[str]) -> list[str]:
    return ["", f"### {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]


def _load(bench: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(bench.glob("*.json")):
        if p.name.endswith(".record.json"):  # run records kept beside the benchmarks, not benchmark results
            continue
        try:
            out[p.name] = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DiqError(f"{p}: not JSON ({e})\n  fix: rerun the benchmark that wrote it") from None
    return out


def render(bench: Path) -> str:
    """The tables, one per benchmark kind, one row per JSON file."""
    data = _load(bench)
    lines = [BEGIN, *_table("Influence engine (`diq bench influence`)", [
        "file", "model", "device", "dtype", "samples", "tokens", "max len", "batch tokens", "engine s", "tokens/s",
        "peak RSS GiB", "bs-1 loop s", "speedup vs loop", "command"])]
    for name, d in data.items():
        if name.startswith("influence_"):
            rss = d.get("engine_peak_rss_mb")
            lines.append(f"| `{name}` | {d.get('model')} | {d.get('device')} | {d.get('dtype')} | {d.get('n')} | "
                         f"{d.get('tokens')} | {d.get('max_len')} | {d.get('batch_tokens')} | "
                         f"{_f(d.get('engine_seconds'))} | {_f(d.get('engine_tokens_per_s'), '{:.0f}')} | "
                         f"{_f(rss / 1024 if rss else None)} | {_f(d.get('loop_seconds'))} | "
                         f"{_f(d.get('speedup_vs_loop'), '{:.2f}')} | {_cmd(d)} |")
    lines += _table("Against dattri-llm (`diq bench influence --against dattri`)", [
        "file", "method", "ours s", "dattri-llm s", "dattri-llm / ours", "Spearman", "scale-relative difference",
        "top-10 % overlap", "same Adam convention: scale-relative difference"])
    for name, d in data.items():
        if not name.startswith("peer_"):
            continue
        for method, block in (("Dot", d if "ours" in d else None), ("LESS", d.get("less"))):
            if not block:
                continue
            a, same = block.get("agreement") or {}, block.get("agreement_same_adam_convention") or {}
            lines.append(f"| `{name}` | {method} | {_f(block['ours']['seconds'])} | "
                         f"{_f(block['dattri_llm']['seconds'])} | {_f(block.get('dattri_over_ours_time'), '{:.2f}')}× | "
                         f"{_f(a.get('spearman'), '{:.4f}')} | {_f(a.get('max_abs_err_over_scale'), '{:.1e}')} | "
                         f"{_f(a.get('top10_overlap'), '{:.2f}')} | "
                         f"{_f(same.get('max_abs_err_over_scale'), '{:.1e}')} |")
    lines += _table("Projection (`diq bench projection`)", [
        "file", "model", "d", "k", "batch", "sparse JL s/batch", "dense Rademacher s/batch", "speedup"])
    for name, d in data.items():
        if name.startswith("projection_"):
            for r in d.get("rows") or []:
                lines.append(f"| `{name}` | {r.get('model')} | {r.get('d')} | {r.get('k')} | {r.get('batch')} | "
                             f"{_f(r.get('sjlt_seconds_per_batch'), '{:.2e}')} | "
                             f"{_f(r.get('rademacher_seconds_per_batch'), '{:.2f}')}"
                             f"{' (extrapolated)' if r.get('rademacher_extrapolated') else ''} | "
                             f"{_f(r.get('speedup'), '{:,.0f}')}× |")
    lines += _table("Throughput (`diq bench throughput`)", [
        "file", "architecture", "layers", "sequences × length", "engine tokens/s", "engine MFU",
        "one SFT epoch tokens/s", "epoch MFU", "engine / epoch time", "peak FLOP/s source"])
    for name, d in data.items():
        if name.startswith("throughput_"):
            e, ep = d.get("engine") or {}, d.get("epoch") or {}
            lines.append(f"| `{name}` | {d.get('model')} | {d.get('layers')} of {d.get('layers_full')} | "
                         f"{d.get('n')} × {d.get('seq_len')} | {_f(e.get('tokens_per_s'))} | "
                         f"{_f(e.get('mfu'), '{:.2f}')} | {_f(ep.get('tokens_per_s'))} | {_f(ep.get('mfu'), '{:.2f}')} | "
                         f"{_f(d.get('engine_over_epoch_time'), '{:.2f}')} | {d.get('peak_source')} |")
    return "\n".join(lines + ["", END])


def apply(page: Path, bench: Path, check: bool = False) -> bool:
    """Write the rendered tables into ``page`` between the markers (or, with ``check``, only compare). Returns True
    when the page already held exactly these tables."""
    text = page.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise DiqError(f"{page}: no rendered section (the markers {BEGIN!r} … {END!r})\n  fix: put both markers "
                       f"where the tables go, then run diq bench docs")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = head + render(bench) + tail
    if new == text:
        return True
    if check:
        raise DiqError(f"{page}: its benchmark tables differ from {bench}/*.json\n  fix: run diq bench docs (the "
                       f"tables are rendered from the JSON, never edited by hand)")
    page.write_text(new, encoding="utf-8")
    return False
