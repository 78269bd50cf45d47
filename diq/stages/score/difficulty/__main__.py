"""``python -m diq.stages.score.difficulty judge|train|predict`` — the difficulty classifier workflow.

  judge    rate pool records 1–5 per perspective with the LLM judge → labels JSONL (resumable)
  train    train a sequence classifier on those labels → a model folder
  predict  score a pool with a trained classifier → JSON {id: {perspective: expected level}}

Settings are composed from ``conf/`` as ``diq.run`` composes them, with the same Hydra overrides after the flags:
the pool (``pool=medical_o1 pool.limit=500``), the judge (``judge=openai judge.base_url=URL judge.model_name=NAME``;
the local judge scores with ``judge.model``, else the run's ``model=``), and the classifier recipe
(``scoring.difficulty.classifier.epochs=5``, from conf/scoring/difficulty/classifier.yaml). The flags are shorthands
set on top: ``--pool NAME`` = ``pool=NAME``; ``--pool-path FILE --fields question=Q,...`` = ``pool=local
pool.path=FILE pool.fields.question=Q``; ``--limit``; ``--backend`` = ``judge=``; ``--backbone``/``--epochs``/``--lr``/
``--batch-size``/``--max-length``/``--seed`` = the classifier's keys.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from diq.args import parser
from diq.artifacts import write_json
from diq.config.compose import JUDGE_OVERRIDES, compose_conf, group_names
from diq.errors import DiqError
from diq.stages.score.difficulty import PERSPECTIVES

FIELDS = ("id", "question", "reasoning", "response", "options", "answer")
OVERRIDES = ("pool=", "pool.", "+pool.", "model=", "model.", "scoring/difficulty=", "scoring.difficulty.classifier.",
             *JUDGE_OVERRIDES)
FIX = ("pool=<conf/pool name>, pool.<key>=…, judge=local|openai, judge.<key>=…, model=<conf/model name>, "
       "scoring.difficulty.classifier.<key>=… (see conf/pool, conf/judge, conf/scoring/difficulty/classifier.yaml)")


def _q(value) -> str:
    """A value quoted for a Hydra override (paths may hold spaces, commas or '='). In Hydra's quoted strings only
    backslashes that precede a quote (or the closing quote) are escapes."""
    import re

    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", str(value))
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body) + "'"


def _overrides(args) -> list[str]:
    """The flags as Hydra overrides (first), then the user's overrides (which win)."""
    out = ["scoring/difficulty=classifier"]
    if args.pool_path:
        out += ["pool=local", f"pool.path={_q(args.pool_path)}"]
        for kv in filter(None, (args.fields or "").split(",")):
            k, sep, v = kv.partition("=")
            if not sep or k not in FIELDS:
                raise DiqError(f"--fields {args.fields!r}: {kv!r} is not NAME=COLUMN with NAME one of "
                               f"{', '.join(FIELDS)}\n  fix: e.g. --fields question=Q,response=R")
            out.append(f"pool.fields.{k}={_q(v) if v else 'null'}")
    elif args.pool:
        if args.pool not in group_names("pool"):
            raise DiqError(f"no pool config conf/pool/{args.pool}.yaml\n  fix: use --pool-path FILE or one of "
                           f"{group_names('pool')}")
        out.append(f"pool={args.pool}")
    if args.limit is not None:
        out.append(f"pool.limit={args.limit}")
    if getattr(args, "backend", None):
        out.append(f"judge={args.backend}")
    flags = {"base_url": "judge.base_url", "model_name": "judge.model_name", "api_key_env": "judge.api_key_env",
             "max_retries": "judge.max_retries", "backoff": "judge.backoff", "backbone": "scoring.difficulty."
             "classifier.backbone", "epochs": "scoring.difficulty.classifier.epochs", "lr": "scoring.difficulty."
             "classifier.lr", "batch_size": "scoring.difficulty.classifier.batch_size", "max_length": "scoring."
             "difficulty.classifier.max_length", "seed": "scoring.difficulty.classifier.seed"}
    out += [f"{key}={_q(v) if isinstance(v, str) else v}" for a, key in flags.items()
            if (v := getattr(args, a, None)) is not None]
    return out + list(args.overrides)


def compose(args) -> DictConfig:
    cfg = compose_conf(_overrides(args), OVERRIDES, "pool, judge, model and classifier", FIX)
    if OmegaConf.is_missing(cfg.pool, "path"):  # load_pool names a null path itself
        raise DiqError("pool=local needs pool.path\n  fix: --pool-path FILE or pool.path=FILE")
    return cfg


def main(argv=None) -> int:
    from diq.logs import cli_logging

    cli_logging()
    ap = parser("difficulty", __doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("judge", "train", "predict"):
        p = sub.add_parser(name)
        p.usage = f"python -m diq.stages.score.difficulty {name} [flags] [KEY=VALUE overrides: {FIX}]"
        p.add_argument("--pool", help="= pool=NAME (conf/pool/NAME.yaml; default: the run's, medical_o1_demo)")
        p.add_argument("--pool-path", help="= pool=local pool.path=FILE")
        p.add_argument("--fields", help="with --pool-path, e.g. question=Q,reasoning=CoT,response=R")
        p.add_argument("--limit", type=int, help="= pool.limit=N")
        p.add_argument("--out", required=True)
    j = sub.choices["judge"]
    j.add_argument("--backend", choices=["local", "openai"], help="= judge=local|openai (default: conf's judge)")
    j.add_argument("--model-path", help="local judge: a model folder or hub id (default: judge.model, else model=)")
    j.add_argument("--base-url")
    j.add_argument("--model-name")
    j.add_argument("--api-key-env", help="the NAME of the environment variable holding the key")
    j.add_argument("--max-retries", type=int)
    j.add_argument("--backoff", type=float)
    t = sub.choices["train"]
    t.add_argument("--labels", required=True)
    t.add_argument("--backbone")
    t.add_argument("--epochs", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--max-length", type=int)
    t.add_argument("--seed", type=int)
    pr = sub.choices["predict"]
    pr.add_argument("--model", required=True)
    pr.add_argument("--max-length", type=int)
    args, extra = ap.parse_known_args(argv)
    args.overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    if len(args.overrides) < len(extra):
        ap.error(f"unrecognized arguments: {' '.join(a for a in extra if a not in args.overrides)}")
    try:
        from diq.config.checks import check_classifier
        from diq.stages.pool.load import load_pool
        from diq.stages.score.difficulty.judge import check_judge

        cfg = compose(args)
        clf = cfg.scoring.difficulty.classifier
        check_classifier(clf, "scoring.difficulty.classifier")
        if args.cmd == "judge":
            check_judge(cfg, judged=True)
        records = load_pool(cfg.pool)
        if args.cmd == "judge":
            from diq.stages.score.difficulty.judge import judge_records, make_judge

            jcfg = cfg.judge
            model_path = args.model_path
            if jcfg.backend == "local" and not jcfg.get("model") and model_path is None:
                from diq.engine.models import resolve_model

                model_path = resolve_model(cfg.model)
            judge = make_judge(jcfg, model_path)
            res = judge_records(judge, records, PERSPECTIVES, Path(args.out), bool(jcfg.get("with_answer", True)),
                                bool(jcfg.get("with_reasoning", True)))
            print(f"judged {len(records)} records × {len(PERSPECTIVES)} perspectives ({jcfg.backend} judge) → "
                  f"{args.out}; " + ", ".join(f"{p} mean {res[p].mean():.2f}" for p in PERSPECTIVES))
        elif args.cmd == "train":
            from diq.stages.score.difficulty.classifier import read_labels, train_classifier

            labels = read_labels(Path(args.labels))  # a bad labels file fails before any model is looked up
            if not Path(clf.backbone).exists():
                from diq.engine.hub import ensure_hub_reachable

                ensure_hub_reachable(clf.backbone, "model", "--backbone /path/to/a/local/model")
            info = train_classifier(records, labels, clf.backbone, Path(args.out), epochs=int(clf.epochs),
                                    lr=float(clf.lr), batch_size=int(clf.batch_size), max_length=int(clf.max_length),
                                    seed=int(clf.seed))
            print(f"trained on {info['n_train']} (held out {info['n_val']}); best val macro-F1 "
                  f"{info['best_val_macro_f1']:.3f} → {args.out}")
        else:
            from diq.stages.score.difficulty.classifier import predict

            res = predict(args.model, records, int(clf.max_length))
            write_json(args.out, {r["id"]: {p: float(res[p][i]) for p in PERSPECTIVES} for i, r in enumerate(records)})
            print(f"scored {len(records)} records → {args.out}")
    except DiqError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
