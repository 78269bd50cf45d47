"""Difficulty D(z), one function per source (``conf/scoring/difficulty/<source>.yaml`` names it with ``_target_``):
the LLM judge, the paper's judge → classifier recipe, a trained classifier, and the proxies (length, base-model loss,
IFD, pass rate). Every source caches its arrays (per perspective for the judge and the classifiers, one ``value``
for a proxy) and returns D(z) for the run's perspective (``difficulty``)."""

from __future__ import annotations

import random

from diq.artifacts import StageDir
from diq.errors import DiqError
from diq.stages.score.context import ScoreContext, device, plain
from diq.stages.score.difficulty import PERSPECTIVES, check_perspective
from diq.stages.score.result import Score

PROXIES = ("length", "loss", "ifd", "pass_rate")


def difficulty(ctx: ScoreContext, arrays: dict) -> Score:
    """D(z) from a source's cached arrays: the perspective the selection asks for (else ``scoring.difficulty``'s); a
    proxy has one ``value`` and no perspectives. The record says which perspective and source were used."""
    dcfg = ctx.cfg.scoring.difficulty
    persp = check_perspective(ctx.cfg.selection.get("perspective") or dcfg.perspective)
    rated = persp in arrays
    score = Score.cached(arrays, value=persp if rated else "value")
    score.meta = {**score.meta, "perspective": persp if rated else f"n/a (proxy {dcfg.source})", "source": dcfg.source}
    return score


def _judge_partial(ctx: ScoreContext, key: dict):
    return ctx.cache / "judge_partial" / f"{ctx.pool_hash[:16]}_{StageDir('', '', key).key[:12]}.jsonl"


def _judge_key(dcfg) -> dict:
    return {"judge": plain(dcfg.judge)}


def score_judge(ctx: ScoreContext) -> Score:
    """The LLM judge rates every pool sample, once per perspective (resumable: ratings go to a JSONL as they come)."""
    from diq.stages.score.difficulty.judge import judge_records, make_judge

    dcfg = ctx.cfg.scoring.difficulty
    key = _judge_key(dcfg)

    def compute():
        part = _judge_partial(ctx, key)
        judge = make_judge(dcfg.judge, ctx.model_path, ctx.records, len(PERSPECTIVES))
        res = judge_records(judge, ctx.records, PERSPECTIVES, part, bool(dcfg.judge.get("with_answer", True)),
                            bool(dcfg.judge.get("with_reasoning", True)))
        return res, {"source": "judge", "backend": dcfg.judge.backend, "partial": str(part)}

    return difficulty(ctx, ctx.cached("difficulty_judge", key, compute))


def score_classifier(ctx: ScoreContext) -> Score:
    """A difficulty classifier scores the pool: the one at ``classifier.path``, or, with ``classifier.labels`` (judge
    labels, the JSONL of ``python -m diq.stages.score.difficulty judge``), one trained on them as its own cached stage."""
    from diq.stages.score.difficulty.classifier import predict

    c = ctx.cfg.scoring.difficulty.classifier
    if not c.get("path") and not c.get("labels"):
        raise DiqError("scoring/difficulty=classifier needs scoring.difficulty.classifier.path (a trained classifier) "
                       "or scoring.difficulty.classifier.labels (judge labels to train one on, as a cached stage)\n"
                       "  fix: set one of them, or use scoring/difficulty=judge_classifier (the judge labels a "
                       "sample and the classifier is trained for you), judge, or a proxy (length, loss, ifd, pass_rate)")

    def compute():
        path, info = (str(c.path), {}) if c.get("path") else classifier_stage(ctx, c)
        return predict(path, ctx.records, int(c.max_length)), {"source": "classifier", "classifier": path, **info}

    return difficulty(ctx, ctx.cached("difficulty_classifier", {"classifier": plain(c)}, compute))


def classifier_stage(ctx: ScoreContext, c) -> tuple[str, dict]:
    """Train (or reuse) the classifier on ``c.labels``: cached by the labels' content, the backbone and its settings."""
    from diq.artifacts import sha256_file
    from diq.stages.score.difficulty.classifier import read_labels

    labels = read_labels(c.labels)  # a bad labels file fails here, naming the file and line
    key = {"labels": sha256_file(c.labels), "classifier": {k: v for k, v in plain(c).items() if k not in ("labels", "path")}}
    path, info = trained_classifier(ctx, key, ctx.records, labels, c)
    return path, {"labels": str(c.labels), "best_val_macro_f1": info.get("best_val_macro_f1")}


def trained_classifier(ctx: ScoreContext, key: dict, recs: list[dict], labels: dict, c) -> tuple[str, dict]:
    """The classifier trained on ``labels`` with settings ``c`` (backbone, epochs, lr, batch_size, max_length, seed),
    a cached stage ``difficulty_classifier_model`` keyed by ``key``: (its folder, its training info)."""
    from diq.stages.score.difficulty.classifier import train_classifier

    stage = StageDir(ctx.cache, "difficulty_classifier_model", {**ctx.base_key(), **key})
    meta, _ = stage.get_or_compute(lambda folder: {"result": train_classifier(
        recs, labels, c.backbone, folder, epochs=int(c.epochs), lr=float(c.lr), batch_size=int(c.get("batch_size", 8)),
        max_length=int(c.max_length), seed=int(c.seed))})
    info = meta["result"]
    return str(stage.path), info


def score_judge_classifier(ctx: ScoreContext) -> Score:
    """The paper's recipe: the judge labels a seeded sample of the pool (``label_n``), a sequence classifier is trained
    on those labels (its own cached stage), and the classifier scores the whole pool. D(z) is then model-agnostic."""
    from diq.stages.score.difficulty.classifier import predict
    from diq.stages.score.difficulty.judge import judge_records, make_judge

    dcfg = ctx.cfg.scoring.difficulty
    jc = dcfg.judge_classifier
    n = min(int(jc.label_n), len(ctx.records))
    if n < 10:
        raise DiqError(f"scoring.difficulty.judge_classifier.label_n={jc.label_n}: the classifier needs at least 10 "
                       f"judge-labelled samples\n  fix: raise label_n (the paper's recipe labels thousands)")
    sample = sorted(random.Random(f"judge_labels:{jc.seed}").sample(range(len(ctx.records)), n))
    recs = [ctx.records[i] for i in sample]
    key = {**_judge_key(dcfg), "judge_classifier": plain(jc)}

    def compute():
        part = _judge_partial(ctx, key)
        judge = make_judge(dcfg.judge, ctx.model_path, recs, len(PERSPECTIVES))
        labels_arr = judge_records(judge, recs, PERSPECTIVES, part, bool(dcfg.judge.get("with_answer", True)),
                                   bool(dcfg.judge.get("with_reasoning", True)))
        labels = {r["id"]: {p: float(labels_arr[p][i]) for p in PERSPECTIVES} for i, r in enumerate(recs)}
        path, info = trained_classifier(ctx, key, recs, labels, jc)
        res = predict(path, ctx.records, int(jc.max_length))
        return res, {"source": "judge_classifier", "labelled": n, "judge_backend": dcfg.judge.backend,
                     "classifier": path, "backbone": jc.backbone, "best_val_macro_f1": info.get("best_val_macro_f1")}

    return difficulty(ctx, ctx.cached("difficulty_judge_classifier", key, compute))


def score_proxy(ctx: ScoreContext) -> Score:
    """D(z) from a proxy: ``scoring.difficulty.source`` (length, loss, ifd, pass_rate)."""
    return difficulty(ctx, proxy_arrays(ctx, str(ctx.cfg.scoring.difficulty.source)))


def score_length(ctx: ScoreContext) -> Score:
    """The ``length`` strategy's score (``scoring.length``)."""
    return Score.cached(proxy_arrays(ctx, "length"))


def score_ifd(ctx: ScoreContext) -> Score:
    """The ``ifd`` strategy's score (``scoring.ifd``)."""
    return Score.cached(proxy_arrays(ctx, "ifd"))


def proxy_arrays(ctx: ScoreContext, name: str) -> dict:
    """A proxy's cached ``value``. The base-model ``loss`` is, with ``scoring.proxies.loss_from_influence: true``
    and a fresh LoRA (B = 0 leaves the base model's output unchanged), the influence pass's by-product: no second
    pass, and the record says so (``loss_from_influence``)."""
    from diq.engine.models import load_model
    from diq.stages.score.difficulty import proxies

    if name not in PROXIES:
        raise DiqError(f"unknown difficulty proxy {name!r}\n  fix: choose one of {', '.join(PROXIES)}")
    pcfg = ctx.cfg.scoring.proxies
    icfg = ctx.cfg.scoring.influence
    if name == "loss" and pcfg.get("loss_from_influence", True) and not icfg.warmup.enabled \
            and icfg.get("max_response_tokens") is None:
        from diq.stages.score.influence_score import influence_arrays

        inf = influence_arrays(ctx)
        return {"value": inf["loss"], "_meta": {"source": "loss (by-product of the influence pass)",
                                                "loss_from_influence": True, "cache": inf["_meta"]["cache"]}}
    key = {"proxy": name, "proxies": plain(pcfg)}

    def compute():
        if name == "length":
            return {"value": proxies.length_tokens(ctx.tok, ctx.records)}, {"source": "length"}
        model = load_model(ctx.model_path, dtype=pcfg.dtype, device=device(pcfg.device))
        if name == "loss":
            v = proxies.response_losses(model, ctx.tok, ctx.records, int(pcfg.max_length), int(pcfg.batch_tokens))
        elif name == "ifd":
            v = proxies.ifd(model, ctx.tok, ctx.records, int(pcfg.max_length), int(pcfg.batch_tokens))
        else:
            v = proxies.pass_rate_difficulty(model, ctx.tok, ctx.records)
        return {"value": v}, {"source": name, **({"loss_from_influence": False} if name == "loss" else {})}

    return ctx.cached(f"proxy_{name}", key, compute)
