"""``python -m diq.difficulty judge|train|predict`` — the difficulty classifier workflow.

  judge    rate pool records 1–5 per perspective with the LLM judge → labels JSONL (resumable)
  train    train a sequence classifier on those labels → a model folder
  predict  score a pool with a trained classifier → JSON {id: {perspective: expected level}}

Pools: --pool NAME (a conf/pool/NAME.yaml config) or --pool-path FILE (canonical field names, or
--fields question=Q,response=R,... to map).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from ..artifacts import write_json
from ..errors import DiqError
from . import PERSPECTIVES

CONF = Path(__file__).resolve().parents[2] / "conf"


def _pool(args):
    from ..pool import load_pool

    if args.pool_path:
        fields = {"id": None, "question": "question", "reasoning": "reasoning", "response": "response"}
        for kv in filter(None, (args.fields or "").split(",")):
            k, sep, v = kv.partition("=")
            if not sep or k not in ("id", "question", "reasoning", "response", "options", "answer"):
                raise DiqError(f"--fields {args.fields!r}: {kv!r} is not NAME=COLUMN with NAME one of id, question, "
                               f"reasoning, response, options, answer\n  fix: e.g. --fields question=Q,response=R")
            fields[k] = v or None
        cfg = OmegaConf.create({"name": "cli", "path": args.pool_path, "hub_id": None, "fields": fields,
                                "limit": args.limit})
    else:
        f = CONF / "pool" / f"{args.pool}.yaml"
        if not f.exists():
            raise DiqError(f"no pool config {f}\n  fix: use --pool-path FILE or one of "
                           f"{sorted(p.stem for p in (CONF / 'pool').glob('*.yaml'))}")
        cfg = OmegaConf.load(f)
        cfg.limit = args.limit
    return load_pool(cfg)


def main(argv=None) -> int:
    from diq.logs import cli_logging

    cli_logging()
    ap = argparse.ArgumentParser(prog="python -m diq.difficulty", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("judge", "train", "predict"):
        p = sub.add_parser(name)
        p.add_argument("--pool", default="medical_o1_demo")
        p.add_argument("--pool-path")
        p.add_argument("--fields", help="mapping for --pool-path, e.g. question=Q,reasoning=CoT,response=R")
        p.add_argument("--limit", type=int)
        p.add_argument("--out", required=True)
    j = sub.choices["judge"]
    j.add_argument("--backend", choices=["local", "openai"], default="local")
    j.add_argument("--model-path", help="local judge: a model folder or hub id")
    j.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    j.add_argument("--model-name")
    j.add_argument("--api-key-env", default="OPENAI_API_KEY")
    j.add_argument("--max-retries", type=int, default=5)
    j.add_argument("--backoff", type=float, default=1.0)
    t = sub.choices["train"]
    t.add_argument("--labels", required=True)
    t.add_argument("--backbone", default="microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--max-length", type=int, default=512)
    t.add_argument("--seed", type=int, default=0)
    pr = sub.choices["predict"]
    pr.add_argument("--model", required=True)
    pr.add_argument("--max-length", type=int, default=512)
    args = ap.parse_args(argv)
    try:
        records = _pool(args)
        if args.cmd == "judge":
            from .judge import judge_records, make_judge

            jcfg = OmegaConf.load(CONF / "judge" / f"{args.backend}.yaml")  # the run's judge config; flags on top
            jcfg.merge_with({"model": None} if args.backend == "local" else {
                "base_url": args.base_url, "model_name": args.model_name, "api_key_env": args.api_key_env,
                "max_retries": args.max_retries, "backoff": args.backoff})
            judge = make_judge(jcfg, args.model_path)
            res = judge_records(judge, records, PERSPECTIVES, Path(args.out))
            print(f"judged {len(records)} records × {len(PERSPECTIVES)} perspectives → {args.out}; "
                  + ", ".join(f"{p} mean {res[p].mean():.2f}" for p in PERSPECTIVES))
        elif args.cmd == "train":
            from .classifier import read_labels, train_classifier

            labels = read_labels(Path(args.labels))  # a bad labels file fails before any model is looked up
            backbone = args.backbone
            if not Path(backbone).exists():
                from ..hub import ensure_hub_reachable

                ensure_hub_reachable(backbone, "model", "--backbone /path/to/a/local/model")
            info = train_classifier(records, labels, backbone, Path(args.out), epochs=args.epochs,
                                    lr=args.lr, batch_size=args.batch_size, max_length=args.max_length, seed=args.seed)
            print(f"trained on {info['n_train']} (held out {info['n_val']}); best val macro-F1 "
                  f"{info['best_val_macro_f1']:.3f} → {args.out}")
        else:
            from .classifier import predict

            res = predict(args.model, records, args.max_length)
            write_json(args.out, {r["id"]: {p: float(res[p][i]) for p in PERSPECTIVES} for i, r in enumerate(records)})
            print(f"scored {len(records)} records → {args.out}")
    except DiqError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
