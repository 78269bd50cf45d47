"""RDS+-style representation similarity: cosine of mean-pooled final hidden states to the validation items; mean
per task, max over tasks."""

from __future__ import annotations

import torch

from diq.engine.formatting import collate, encode
from diq.stages.score.context import ScoreContext, device, plain
from diq.stages.score.result import Score


def score_similarity(ctx: ScoreContext) -> Score:
    from diq.engine.gradients import token_budget_batches
    from diq.engine.influence import l2_normalize, less_combine
    from diq.engine.models import load_model

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
        return l2_normalize(out)

    def compute():
        model = load_model(ctx.model_path, dtype=scfg.dtype, device=device(scfg.device)).eval()
        p, v = embed(model, ctx.records), embed(model, val_recs)
        tasks = [r["task"] for r in val_recs]
        return {"value": less_combine([p], [v], [1.0], tasks)}, {"val_hash": val_info["hash"]}

    key = {"val_hash": val_info["hash"], "similarity": plain(scfg)}
    return Score.cached(ctx.cached("similarity", key, compute))
