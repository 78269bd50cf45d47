"""``python -m diq.practice`` — expert-practice ratings by an LLM judge, and the physician review pack.

  samples RUN [--n 20]                         judge selected vs unselected training samples of a run
  generations RUN [RUN ...] [--questions pubmedqa --n 10]
                                               judge generations of fine-tuned models on fixed questions
  export --out DIR (--runs RUN ... | --items FILE ...) [--samples-n 20 --questions pubmedqa --n 10]
                                               write a blinded review pack (CSV + offline HTML form + key)
  import --pack DIR RATINGS.csv [...]          unblind completed ratings: means by group, κ / α agreement

Judge (samples, generations): composed from ``conf/judge/`` like ``diq.run``'s — Hydra overrides after the run
folder(s) (``judge=openai judge.base_url=URL judge.model_name=NAME``) — with flag shorthands on top: ``--judge local
--judge-model smollm2_135m`` (a conf/model name or a folder) or ``--judge openai --base-url URL --model-name NAME
[--api-key-env OPENAI_API_KEY]`` (the key is read from that environment variable only). Ratings are cached per
judge and item and reused.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from diq.args import parser
from diq.artifacts import write_json, write_text
from diq.errors import DiqError
from diq.practice.criteria import DIMENSIONS
from diq.practice.items import eval_questions, generation_items, read_record, run_label, sample_items
from diq.practice.judging import _judge_cfg, _judge_for_record, _print_summary, rate_items, summarise
from diq.record import RunRecord


def _write_practice(record_path: Path, key: str, value: dict) -> Path:
    """``practice.json`` beside the run's record (``record.json`` itself is never rewritten); the report reads it."""
    path = record_path.parent / "practice.json"
    done = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return write_json(path, {**done, key: value})


def _track(rec: RunRecord, key: str, s: dict, mode: str) -> str | None:
    """Mirror a summary to W&B in the run's group (job_type expert_practice); keys from the environment only."""
    if mode == "disabled" or rec.cfg("logger").get("mode", "disabled") == "disabled":
        return None
    from diq.run.tracking import Tracker

    t = Tracker(OmegaConf.create(rec.cfg("logger")), config={"source": key, "run": run_label(rec)},
                group=rec.experiment, job_type="expert_practice", tags=[rec.strategy, key],
                name=f"practice-{key}-{run_label(rec)}".replace(" ", "_"), out_dir=rec.output_dir)
    t.summary({f"practice/{key}/{d}/{g}": m for d in DIMENSIONS for g, m in s["means"][d].items()})
    rows = [[d, name, b["diff"], b["ci_low"], b["ci_high"]] for d, c in s["differences"].items() for name, b in c.items()]
    t.table(f"practice/{key}/differences", ["dimension", "comparison", "diff", "ci_low", "ci_high"], rows)
    path = t.path
    t.finish()
    return path


def cmd_samples(args) -> int:
    rec, path = read_record(args.run)
    items = sample_items(rec, args.n, args.seed)
    out = path.parent / "practice"
    write_text(out / "sample_items.jsonl", "".join(json.dumps(it) + "\n" for it in items))
    ratings = rate_items(items, _judge_cfg(args), Path(rec.config["cache_dir"]))
    s = summarise(items, ratings, baseline="unselected", paired=False, seed=args.seed)
    s.update(judge=_judge_for_record(_judge_cfg(args)), n_per_group=args.n, seed=args.seed)
    s["wandb"] = _track(rec, "samples", s, args.wandb)
    write_json(out / "samples_summary.json", s)
    _write_practice(path, "samples", s)
    _print_summary(f"expert practice, training samples of {run_label(rec)} (judge {args.judge or 'local'})", s)
    print(f"\nwrote {out / 'samples_summary.json'} and {path.parent / 'practice.json'} (samples)")
    return 0


def cmd_generations(args) -> int:
    recs = [read_record(r) for r in args.runs]
    questions = eval_questions(args.questions, args.n)
    items = []
    for rec, _ in recs:
        items += generation_items(rec, questions, args.max_new_tokens, Path(rec.config["cache_dir"]),
                                  device=args.device)
    labels = [run_label(r) for r, _ in recs]
    if len(set(labels)) != len(labels):
        raise DiqError(f"two runs share the label {labels}: compare runs that differ in strategy, budget or seed")
    out = Path(args.out or f"runs/practice/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    write_text(out / "generation_items.jsonl", "".join(json.dumps(it) + "\n" for it in items))
    ratings = rate_items(items, _judge_cfg(args), Path(recs[0][0].config["cache_dir"]))
    s = summarise(items, ratings, baseline=labels[0], paired=True, seed=args.seed)
    s.update(judge=_judge_for_record(_judge_cfg(args)), questions=args.questions, n_questions=len(questions),
             max_new_tokens=args.max_new_tokens, runs=[str(p) for _, p in recs])
    write_json(out / "generations_summary.json", s)
    for rec, path in recs:
        own = {"label": run_label(rec), "means": {d: s["means"][d][run_label(rec)] for d in DIMENSIONS},
               "baseline": labels[0], "summary": str(out / "generations_summary.json"),
               "differences": {d: {k: v for k, v in c.items() if k.startswith(run_label(rec) + " -")}
                               for d, c in s["differences"].items()}, "judge": s["judge"],
               "questions": args.questions, "n_questions": len(questions)}
        own["wandb"] = _track(rec, "generations", {**s, "groups": [own["label"]],
                                                   "means": {d: {own["label"]: own["means"][d]} for d in DIMENSIONS},
                                                   "differences": own["differences"]}, args.wandb)
        _write_practice(path, "generations", own)
    _print_summary(f"expert practice, generations on {len(questions)} {args.questions} questions "
                   f"(judge {args.judge or 'local'}; differences paired by question, vs {labels[0]})", s)
    print(f"\nwrote {out / 'generations_summary.json'} and practice.json (generations) beside each run's record")
    return 0


def check_args(args) -> None:
    """Counts, sizes and the device, before any record is read or a judge loads."""
    from diq.args import check_minimums
    from diq.config.checks import check_device

    check_minimums(args, {"n": 1 if args.cmd in ("samples", "generations") else 0, "samples_n": 0,
                          "max_new_tokens": 1, "judge_max_length": 64, "max_retries": 0})
    if getattr(args, "backoff", None) is not None and args.backoff < 0:
        raise DiqError(f"--backoff={args.backoff}: use seconds ≥ 0")
    if getattr(args, "device", None) is not None:
        check_device(args.device, "--device")


def read_items(path: str) -> list[dict]:
    """An --items JSONL file (as ``samples``/``generations`` write them), each line an object; errors name the line."""
    p = Path(path)
    fix = "  fix: pass a .jsonl of items, e.g. sample_items.jsonl written by `python -m diq.practice samples`"
    if not p.is_file():
        raise DiqError(f"--items {p}: no such file\n{fix}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DiqError(f"--items {p}: not UTF-8 text (byte {e.start})\n{fix}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            it = json.loads(line)
        except json.JSONDecodeError as e:
            raise DiqError(f"{p}:{n}: malformed JSON line ({e.msg})\n{fix}") from None
        if not isinstance(it, dict):
            raise DiqError(f"{p}:{n}: a {type(it).__name__}, not an item object\n{fix}")
        out.append(it)
    return out


def cmd_export(args) -> int:
    from diq.practice.review import export_pack

    items: list[dict] = []
    for f in args.items or []:
        items += read_items(f)
    runs = [read_record(r) for r in args.runs or []]
    if runs:
        if args.samples_n:
            for rec, _ in runs:  # one strategy's selected vs unselected samples
                items += [{**it, "group": f"{run_label(rec)}: {it['group']}"} for it in
                          sample_items(rec, args.samples_n, args.seed)]
        if args.n:
            qs = eval_questions(args.questions, args.n)
            for rec, _ in runs:
                items += generation_items(rec, qs, args.max_new_tokens, Path(rec.config["cache_dir"]),
                                          device=args.device)
    if not items:
        raise DiqError("nothing to export\n  fix: pass --runs RUN ... (with --samples-n and/or --n) or --items FILE")
    m = export_pack(items, Path(args.out), seed=args.seed, sources=[str(p) for _, p in runs] + list(args.items or []))
    print(f"wrote review pack {m['pack_id']} to {args.out}: {m['n_items']} items from {len(m['groups'])} groups "
          f"(review.html, review.csv; keep KEY-do-not-send-to-raters.json to yourself)")
    return 0


def cmd_import(args) -> int:
    from diq.practice.review import import_ratings, summary_markdown, write_import

    res = import_ratings(Path(args.pack), [Path(p) for p in args.ratings], seed=args.seed)
    paths = write_import(res, Path(args.out or args.pack))
    print(summary_markdown(res["summary"]))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def main(argv=None) -> int:
    from diq.logs import cli_logging

    cli_logging()
    ap = parser("practice", __doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def judge_opts(p):
        p.add_argument("--judge", choices=["local", "openai"], help="conf/judge/<name>.yaml (default: local)")
        p.add_argument("--judge-model", help="local judge: conf/model name or model folder (default smollm2_135m)")
        p.add_argument("--judge-max-length", type=int)
        p.add_argument("--base-url", help="openai judge: e.g. http://127.0.0.1:8000/v1")
        p.add_argument("--model-name", help="openai judge: the served model's name")
        p.add_argument("--api-key-env", help="environment variable holding the key (default OPENAI_API_KEY)")
        p.add_argument("--max-retries", type=int)
        p.add_argument("--backoff", type=float)
        p.add_argument("--wandb", choices=["record", "disabled"], default="record",
                       help="mirror summaries to W&B with the run's logger settings (record) or not")

    def gen_opts(p, n_default):
        p.add_argument("--questions", default="pubmedqa", help="pubmedqa (bundled test split) or a .json/.jsonl file")
        p.add_argument("--n", type=int, default=n_default, help="number of evaluation questions")
        p.add_argument("--max-new-tokens", type=int, default=256)

    for name in ("samples", "generations", "export", "import"):
        p = sub.add_parser(name)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="cpu")
        if name == "samples":
            p.add_argument("run")
            p.add_argument("overrides", nargs="*", help="judge overrides, as for diq.run: judge=openai judge.base_url=…")
            p.add_argument("--n", type=int, default=20, help="samples per group (selected, unselected)")
            judge_opts(p)
        elif name == "generations":
            p.add_argument("runs", nargs="+", help="run folders, then judge overrides (judge=openai judge.base_url=…)")
            p.add_argument("--out")
            gen_opts(p, 10)
            judge_opts(p)
        elif name == "export":
            p.add_argument("--out", required=True)
            p.add_argument("--runs", nargs="*")
            p.add_argument("--items", nargs="*", help="item JSONL files written by samples / generations")
            p.add_argument("--samples-n", type=int, default=0, help="per run: selected and unselected samples")
            gen_opts(p, 0)
        else:
            p.add_argument("--pack", required=True)
            p.add_argument("ratings", nargs="+")
            p.add_argument("--out")
    args = ap.parse_args(argv)
    if args.cmd == "generations":  # KEY=VALUE tokens after the run folders are judge overrides
        args.overrides = [r for r in args.runs if "=" in r]
        args.runs = [r for r in args.runs if "=" not in r]
    try:
        check_args(args)
        return {"samples": cmd_samples, "generations": cmd_generations, "export": cmd_export,
                "import": cmd_import}[args.cmd](args)
    except DiqError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
