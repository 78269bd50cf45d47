"""Per-sample scores with a content-addressed cache: each score is computed once per (pool, model, LoRA,
warm-up, validation set, scorer config) and reused by every strategy and budget that needs it.

``SCORER_CALLS`` counts real computations (cache misses) per scorer; tests use it to prove a sweep over
budgets × strategies scores each sample once.
"""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .artifacts import StageDir, write_json, write_npy
from .difficulty import PERSPECTIVES, check_perspective
from .errors import DiqError
from .formatting import encode
from .gradients import resolve_batch_tokens
from .lora import lora_key
from .pool import pool_hash
from .validation import build_validation

SCORER_CALLS: collections.Counter = collections.Counter()

log = logging.getLogger(__name__)


def _c(x) -> dict:
    return OmegaConf.to_container(x, resolve=True) if isinstance(x, DictConfig) else x


class ScoreContext:
    """What every scorer shares: the pool, the model path, the validation set and the cache root."""

    def __init__(self, records, model_path, cfg: DictConfig, out_dir: Path, decontam=None):
        self.records, self.model_path, self.cfg, self.out_dir = records, model_path, cfg, out_dir
        self.decontam = decontam  # (mode, benchmark docs, n) or None
        self.val_decontam: dict | None = None
        self.ids = [r["id"] for r in records]
        self.pool_hash = pool_hash(records)
        self.cache = Path(cfg.cache_dir)
        self._val = None
        self._tok = None

    @property
    def tok(self):
        if self._tok is None:
            from .models import load_tokenizer

            self._tok = load_tokenizer(self.model_path)
        return self._tok

    @property
    def val(self):
        if self._val is None:
            recs, info = build_validation(self.cfg.scoring.validation, int(self.cfg.seed), self.cfg.eval)
            if self.decontam is not None:
                from . import decontam as dc

                mode, docs, n = self.decontam
                rep = dc.check(recs, docs, n)
                self.val_decontam = rep.summary()
                if rep.ids and mode == "drop":
                    short = {t: (len(ids), sum(i not in rep.ids for i in ids)) for t, ids in info["tasks"].items()}
                    raise DiqError(
                        "decontamination leaves fewer validation items than asked for: " + ", ".join(
                            f"{t}: {b} of {a}" for t, (a, b) in short.items() if b < a) +
                        f" (flagged: {[x['id'] + ' ~ ' + x['doc'] for x in rep.exact + rep.ngram][:6]})\n"
                        "  fix: the validation items overlap scored benchmark items; take them from a split that "
                        "does not, or set decontaminate=warn to keep them knowingly")
                dc.apply(mode, "validation", recs, rep)  # warn: says so; fail: raises
            self._val = (recs, info)
        return self._val

    def base_key(self) -> dict:
        return {"pool_hash": self.pool_hash, "model": self.model_path, "model_cfg": _c(self.cfg.model)}

    def cached(self, name: str, key: dict, compute) -> dict[str, np.ndarray]:
        """Load ``name``'s arrays from the cache, or compute, save atomically and mark done."""
        stage = StageDir(self.cache, f"scores/{name}", {**self.base_key(), **key})
        with stage.lock():
            if stage.done:
                meta = stage.meta()
                arrays = {k: np.load(stage.path / f"{k}.npy") for k in meta["arrays"]}
                log.info(f"scores/{name}: reusing {stage.path}")
                return arrays | {"_meta": {**meta.get("info", {}), "cache": str(stage.path), "reused": True}}
            stage.begin()
            t = time.time()
            SCORER_CALLS[name] += 1
            arrays, info = compute()
            for k, v in arrays.items():
                write_npy(stage.path / f"{k}.npy", np.asarray(v, dtype=np.float64))
            write_json(stage.path / "ids.json", self.ids)
            info = {**info, "seconds": time.time() - t}
            stage.finish({"arrays": sorted(arrays), "info": info})
            return arrays | {"_meta": {**info, "cache": str(stage.path), "reused": False}}


# ------------------------------------------------------------------------------------------ model setup
def _scoring_model(ctx: ScoreContext, lora_cfg, adapter_dir: str | None, icfg):
    from .lora import attach_lora
    from .models import load_model

    model = load_model(ctx.model_path, dtype=icfg.dtype, device=_device(icfg.device))
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
    else:
        model = attach_lora(model, lora_cfg, dropout=0.0)
    model.eval()  # no dropout while scoring; LoRA weights still require grad
    return model


def _device(d: str) -> str:
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return d


def _encode_all(ctx, records, icfg):
    return [encode(ctx.tok, r, int(icfg.max_length), max_response_tokens=icfg.get("max_response_tokens"))
            for r in records]


def _warmup_checkpoints(ctx: ScoreContext, wcfg, lora_cfg, tag: str) -> list[dict]:
    """Warm-up LoRA training on a seeded random slice of the pool, one checkpoint (adapter + Adam state +
    mean learning rate) per epoch. Cached like any stage."""
    import random

    from .train import finetune

    key = {**ctx.base_key(), "warmup": _c(wcfg), "lora": _c(lora_cfg)}
    stage = StageDir(ctx.cache, f"warmup/{tag}", key)
    with stage.lock():
        if not stage.done:
            stage.begin()
            n = max(1, int(round(float(wcfg.fraction) * len(ctx.records))))
            rng = random.Random(f"warmup:{wcfg.seed}")
            subset = [ctx.records[i] for i in sorted(rng.sample(range(len(ctx.records)), n))]
            tcfg = OmegaConf.create({**_c(ctx.cfg.train), "lora": _c(lora_cfg), "epochs": int(wcfg.epochs),
                                     "lr": float(wcfg.lr), "max_length": int(wcfg.max_length),
                                     "seed": int(wcfg.seed)})
            SCORER_CALLS[f"warmup/{tag}"] += 1
            info = finetune(ctx.model_path, subset, tcfg, stage.path, checkpoint_every_epoch=True)
            stage.finish({"checkpoints": info["checkpoints"], "n_warmup": n})
    return stage.meta()["checkpoints"]


# ------------------------------------------------------------------------------------------ scorers
def _influence_key(ctx: ScoreContext) -> dict:
    icfg = _c(ctx.cfg.scoring.influence)
    icfg.pop("shards", None)
    icfg.pop("shard_index", None)  # sharding never changes the result (bitwise), so it is not in the key
    if not icfg["warmup"].get("enabled"):
        icfg["warmup"] = {"enabled": False}  # a disabled warm-up's lr/epochs change nothing: not in the key
    return {"lora": lora_key(ctx.cfg.train.lora), "val_hash": ctx.val[1]["hash"], "influence": icfg}


def _influence_pass(ctx: ScoreContext, shard: tuple[int, int]) -> tuple[dict, dict]:
    """One (shard of a) influence pass over every warm-up checkpoint."""
    from .influence import dot_scores, mean_gradient

    icfg = ctx.cfg.scoring.influence
    lora_cfg = ctx.cfg.train.lora
    val_recs, val_info = ctx.val
    if icfg.warmup.enabled:
        ckpts = _warmup_checkpoints(ctx, icfg.warmup, lora_cfg, "diq")
        ckpts = ckpts if icfg.warmup.checkpoints == "all" else ckpts[-1:]
    else:
        ckpts = [{"adapter": None, "mean_lr": 1.0}]
    pool_enc = _encode_all(ctx, ctx.records, icfg)
    val_enc = _encode_all(ctx, val_recs, icfg)
    total: dict = {"score": 0.0, "dot": 0.0}
    for c in ckpts:
        model = _scoring_model(ctx, lora_cfg, c["adapter"], icfg)
        bt = resolve_batch_tokens(icfg.batch_tokens, next(model.parameters()).device)
        target = mean_gradient(model, val_enc, ctx.tok.pad_token_id, bt)
        res = dot_scores(model, pool_enc, ctx.tok.pad_token_id, target, bt,
                         proj_dim=icfg.get("proj_dim"), proj_seed=int(icfg.proj_seed), normalize=icfg.normalize,
                         projection=icfg.get("projection", "rademacher"), proj_nnz=int(icfg.get("proj_nnz", 1)),
                         shard=shard)
        w = float(c["mean_lr"]) if len(ckpts) > 1 else 1.0
        total["score"] = total["score"] + w * res["score"]
        total["dot"] = total["dot"] + w * res["dot"]
        if "loss" not in total:  # the first checkpoint's loss (the base model's when not warmed up)
            total["loss"], total["grad_norm"] = res["loss"], res["grad_norm"]
        del model
    return total, {"n_val": val_info["n"], "val_hash": val_info["hash"], "val_ids": val_info["tasks"],
                   "checkpoints": len(ckpts), "n_tokens": sum(len(e.input_ids) for e in pool_enc)}


def score_influence_shard(ctx: ScoreContext, index: int, count: int) -> dict:
    """One shard (batches index, index+count, … of the global length-sorted plan), cached on its own."""
    if not 0 <= index < count:
        raise DiqError(f"scoring.influence.shard_index={index} with shards={count}\n  fix: use 0 … {count - 1}")
    return ctx.cached(f"influence_shard/{index}-of-{count}", _influence_key(ctx),
                      lambda: _influence_pass(ctx, (index, count)))


def score_influence(ctx: ScoreContext) -> dict:
    from .influence import merge_shards

    icfg = ctx.cfg.scoring.influence
    count = int(icfg.get("shards") or 1)

    def compute():
        if count == 1:
            return _influence_pass(ctx, (0, 1))
        parts = [score_influence_shard(ctx, i, count) for i in range(count)]
        metas = [p.pop("_meta") for p in parts]
        return merge_shards(parts), {**{k: v for k, v in metas[0].items() if k not in ("cache", "reused", "seconds")},
                                     "shards": count, "shard_caches": [m["cache"] for m in metas]}

    return ctx.cached("influence", _influence_key(ctx), compute)


def score_difficulty(ctx: ScoreContext) -> dict:
    dcfg = ctx.cfg.scoring.difficulty
    source = dcfg.source
    if source in ("length", "loss", "ifd", "pass_rate"):
        return score_proxy(ctx, source)
    if source == "judge":
        from .difficulty.judge import judge_records, make_judge

        key = {"judge": _c(dcfg.judge)}

        def compute():
            stage_partial = ctx.cache / "judge_partial" / f"{ctx.pool_hash[:16]}_{StageDir('', '', key).key[:12]}.jsonl"
            judge = make_judge(dcfg.judge, ctx.model_path, ctx.records, len(PERSPECTIVES))
            res = judge_records(judge, ctx.records, PERSPECTIVES, stage_partial, bool(dcfg.judge.get("with_answer", True)),
                                bool(dcfg.judge.get("with_reasoning", True)))
            return res, {"source": "judge", "backend": dcfg.judge.backend, "partial": str(stage_partial)}

        return ctx.cached("difficulty_judge", key, compute)
    if source == "judge_classifier":
        return _judge_classifier(ctx, dcfg)
    if source == "classifier":
        from .difficulty.classifier import predict

        if not dcfg.classifier.get("path"):
            raise DiqError("scoring.difficulty.source=classifier needs scoring.difficulty.classifier.path (a classifier "
                           "trained with `python -m diq.difficulty train`)\n  fix: train one, or use source=judge or a "
                           "proxy (length, loss, ifd, pass_rate)")
        key = {"classifier": _c(dcfg.classifier)}
        return ctx.cached("difficulty_classifier", key, lambda: (
            predict(dcfg.classifier.path, ctx.records, int(dcfg.classifier.max_length)), {"source": "classifier"}))
    raise DiqError(f"scoring.difficulty.source={source!r}\n  fix: choose judge_classifier, judge, classifier, length, loss, ifd or pass_rate")


def _judge_classifier(ctx: ScoreContext, dcfg) -> dict:
    """The paper's recipe: the judge labels a seeded sample of the pool (``label_n``), a sequence classifier is trained
    on those labels (its own cached stage), and the classifier scores the whole pool. D(z) is then model-agnostic."""
    import random

    from .difficulty.classifier import predict, train_classifier
    from .difficulty.judge import judge_records, make_judge

    jc = dcfg.judge_classifier
    n = min(int(jc.label_n), len(ctx.records))
    if n < 10:
        raise DiqError(f"scoring.difficulty.judge_classifier.label_n={jc.label_n}: the classifier needs at least 10 "
                       f"judge-labelled samples\n  fix: raise label_n (the paper's recipe labels thousands)")
    sample = sorted(random.Random(f"judge_labels:{jc.seed}").sample(range(len(ctx.records)), n))
    recs = [ctx.records[i] for i in sample]
    key = {"judge": _c(dcfg.judge), "judge_classifier": _c(jc)}

    def compute():
        part = ctx.cache / "judge_partial" / f"{ctx.pool_hash[:16]}_{StageDir('', '', key).key[:12]}.jsonl"
        judge = make_judge(dcfg.judge, ctx.model_path, recs, len(PERSPECTIVES))
        labels_arr = judge_records(judge, recs, PERSPECTIVES, part, bool(dcfg.judge.get("with_answer", True)),
                                   bool(dcfg.judge.get("with_reasoning", True)))
        labels = {r["id"]: {p: float(labels_arr[p][i]) for p in PERSPECTIVES} for i, r in enumerate(recs)}
        stage = StageDir(ctx.cache, "difficulty_classifier_model", {**ctx.base_key(), **key})
        with stage.lock():
            if stage.done:
                info = stage.meta()["result"]
            else:
                stage.begin()
                info = train_classifier(recs, labels, jc.backbone, stage.path, epochs=int(jc.epochs), lr=float(jc.lr),
                                        max_length=int(jc.max_length), seed=int(jc.seed))
                stage.finish({"result": info})
        res = predict(str(stage.path), ctx.records, int(jc.max_length))
        return res, {"source": "judge_classifier", "labelled": n, "judge_backend": dcfg.judge.backend,
                     "classifier": str(stage.path), "backbone": jc.backbone, "best_val_macro_f1": info.get("best_val_macro_f1")}

    return ctx.cached("difficulty_judge_classifier", key, compute)


def score_proxy(ctx: ScoreContext, name: str) -> dict:
    from .difficulty import proxies
    from .models import load_model

    pcfg = ctx.cfg.scoring.proxies
    if name == "loss" and pcfg.get("loss_from_influence", True) and not ctx.cfg.scoring.influence.warmup.enabled \
            and ctx.cfg.scoring.influence.get("max_response_tokens") is None:
        inf = score_influence(ctx)  # a fresh LoRA (B = 0) leaves the base model's output unchanged
        return {"value": inf["loss"], "_meta": {"source": "loss (by-product of the influence pass)",
                                                "cache": inf["_meta"]["cache"]}}
    key = {"proxy": name, "proxies": _c(pcfg)}

    def compute():
        if name == "length":
            return {"value": proxies.length_tokens(ctx.tok, ctx.records)}, {"source": "length"}
        model = load_model(ctx.model_path, dtype=pcfg.dtype, device=_device(pcfg.device))
        if name == "loss":
            v = proxies.response_losses(model, ctx.tok, ctx.records, int(pcfg.max_length), int(pcfg.batch_tokens))
        elif name == "ifd":
            v = proxies.ifd(model, ctx.tok, ctx.records, int(pcfg.max_length), int(pcfg.batch_tokens))
        else:
            v = proxies.pass_rate_difficulty(model, ctx.tok, ctx.records)
        return {"value": v}, {"source": name}

    return ctx.cached(f"proxy_{name}", key, compute)


def score_similarity(ctx: ScoreContext) -> dict:
    """RDS+-style: cosine of mean-pooled final hidden states to the validation items; mean per task, max over tasks."""
    from .formatting import collate
    from .gradients import token_budget_batches
    from .influence import less_combine
    from .models import load_model

    scfg = ctx.cfg.scoring.similarity
    val_recs, val_info = ctx.val

    def embed(model, recs):
        enc = [encode(ctx.tok, r, int(scfg.max_length)) for r in recs]
        out = torch.zeros(len(enc), model.config.hidden_size, dtype=torch.float64)
        with torch.no_grad():
            for idx in token_budget_batches([len(e.input_ids) for e in enc], int(scfg.batch_tokens)):
                b = collate([enc[i] for i in idx], ctx.tok.pad_token_id)
                h = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                          output_hidden_states=True).hidden_states[-1].double()
                m = b["attention_mask"].unsqueeze(-1).double()
                out[idx] = (h * m).sum(1) / m.sum(1)
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-30)

    def compute():
        model = load_model(ctx.model_path, dtype=scfg.dtype, device=_device(scfg.device)).eval()
        p, v = embed(model, ctx.records), embed(model, val_recs)
        tasks = [r["task"] for r in val_recs]
        return {"value": less_combine([p], [v], [1.0], tasks)}, {"val_hash": val_info["hash"]}

    return ctx.cached("similarity", {"val_hash": val_info["hash"], "similarity": _c(scfg)}, compute)


def score_less(ctx: ScoreContext) -> dict:
    from .influence import less_combine, less_features

    lcfg = ctx.cfg.scoring.less
    val_recs, val_info = ctx.val
    key = {"val_hash": val_info["hash"], "less": _c(lcfg)}

    def compute():
        ckpts = _warmup_checkpoints(ctx, lcfg.warmup, lcfg.lora, "less")
        pool_enc = _encode_all(ctx, ctx.records, lcfg)
        val_enc = _encode_all(ctx, val_recs, lcfg)
        tf, vf, w = [], [], []
        pk = {"projection": lcfg.get("projection", "sjlt"), "proj_nnz": int(lcfg.get("proj_nnz", 1))}
        for c in ckpts:
            model = _scoring_model(ctx, lcfg.lora, c["adapter"], lcfg)
            adam = torch.load(Path(c["adapter"]).parent / "adam.pt", weights_only=True)
            bt = resolve_batch_tokens(lcfg.batch_tokens, next(model.parameters()).device)
            tf.append(less_features(model, pool_enc, ctx.tok.pad_token_id, bt, int(lcfg.proj_dim),
                                    int(lcfg.proj_seed), adam, desc=f"LESS train feats (ckpt {c['epoch']})", **pk))
            vf.append(less_features(model, val_enc, ctx.tok.pad_token_id, bt, int(lcfg.proj_dim),
                                    int(lcfg.proj_seed), None, desc=f"LESS val feats (ckpt {c['epoch']})", **pk))
            w.append(float(c["mean_lr"]))
        return {"value": less_combine(tf, vf, w, [r["task"] for r in val_recs])}, \
            {"checkpoints": len(ckpts), "weights": w, "val_hash": val_info["hash"]}

    return ctx.cached("less", key, compute)


SCORERS = {"influence": score_influence, "difficulty": score_difficulty, "similarity": score_similarity,
           "less": score_less, "length": lambda c: score_proxy(c, "length"), "ifd": lambda c: score_proxy(c, "ifd")}


def compute_scores(needs: list[str], records: list[dict], model_path: str, cfg: DictConfig, out_dir: Path,
                   decontam=None) -> tuple[dict, dict]:
    """Compute (or load) the named scores. Returns (name → array or perspective dict, info for the record)."""
    ctx = ScoreContext(records, model_path, cfg, out_dir, decontam)
    if set(needs) & {"influence", "less", "similarity"}:
        ctx.val  # noqa: B018 - build, check and decontaminate the validation set before any scoring starts
    if "difficulty" in needs:  # fail before any expensive scoring
        check_perspective(cfg.selection.get("perspective") or cfg.scoring.difficulty.perspective)
    scores, info = {}, {}
    for name in needs:
        if name == "influence" and cfg.scoring.influence.get("shard_index") is not None:
            res = score_influence_shard(ctx, int(cfg.scoring.influence.shard_index), int(cfg.scoring.influence.shards))
            info["influence_shard"] = res.pop("_meta")
            continue
        res = SCORERS[name](ctx)
        meta = res.pop("_meta")
        info[name] = meta
        if name == "difficulty":
            persp = check_perspective(cfg.selection.get("perspective") or cfg.scoring.difficulty.perspective)
            arr = res[persp] if persp in res else res["value"]
            info[name]["perspective"] = persp if persp in res else f"n/a (proxy {cfg.scoring.difficulty.source})"
            info[name]["source"] = cfg.scoring.difficulty.source
            scores[name] = arr
        elif name == "influence":
            scores[name] = res["score"]
            scores["loss"] = res["loss"]
        else:
            scores[name] = res["value"]
    if ctx._val is not None:
        v = ctx._val[1]
        info["validation"] = {"n": v["n"], "hash": v["hash"], "ids": v["tasks"], "per_task": v.get("per_task"),
                              "kinds": v.get("kinds")}
    if ctx.val_decontam is not None:
        info["validation_decontamination"] = ctx.val_decontam
    return scores, info
