"""The DPO stage after SFT (``dpo=trl``): TRL's ``DPOTrainer`` on the SFT adapter; the reference is the SFT model.

- ``dpo.adapter: continue`` keeps training the SFT LoRA. TRL copies it into a frozen ``ref`` adapter, so the
  reference is exactly the SFT model; the result is one adapter, evaluated like an SFT adapter.
- ``dpo.adapter: stack`` merges the SFT adapter into the base and trains a new LoRA (``dpo.lora``) on top; the
  reference is the merged model with the new adapter disabled. The merged model is saved with the new adapter
  merged in (one full copy of the model on disk), and evaluated as a model.
- No SFT adapter (``selection=none``): a fresh LoRA on the base model; the reference is the base.

The held-out margin — mean over held-out pairs of log π(chosen | prompt) − log π(rejected | prompt), summed over
the response tokens — is measured before and after training, with the same chat template TRL applies.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from diq.engine.models import load_model, load_tokenizer
from diq.errors import DiqError


def _ids(tok, prompt: str, response: str, max_length: int) -> tuple[list[int], int]:
    user = [{"role": "user", "content": prompt}]
    p = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full = tok.apply_chat_template(user + [{"role": "assistant", "content": response}], tokenize=True,
                                   return_dict=True)["input_ids"]
    return list(full)[:max_length], min(len(p), max_length)


@torch.no_grad()
def heldout_margin(model, tok, pairs: list[dict], max_length: int) -> dict:
    """Mean chosen-minus-rejected response log-probability, and the share of pairs where chosen wins."""
    if not pairs:
        return {"n": 0, "margin": None, "accuracy": None}
    model.eval()
    dev = next(model.parameters()).device
    from tqdm import tqdm

    margins = []
    for pr in tqdm(pairs, desc="held-out margin", unit="pair", dynamic_ncols=True):
        lp = []
        for resp in (pr["chosen"], pr["rejected"]):
            ids, n_prompt = _ids(tok, pr["prompt"], resp, max_length)
            x = torch.tensor([ids], device=dev)
            logits = model(input_ids=x).logits[0, :-1].float()
            tgt = x[0, 1:]
            logp = torch.log_softmax(logits, -1).gather(1, tgt[:, None])[:, 0]
            lp.append(float(logp[max(n_prompt - 1, 0):].sum()))
        margins.append(lp[0] - lp[1])
    return {"n": len(pairs), "margin": sum(margins) / len(margins),
            "accuracy": sum(m > 0 for m in margins) / len(margins)}


def _dataset(pairs: list[dict]):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": [{"role": "user", "content": p["prompt"]}],
                               "chosen": [{"role": "assistant", "content": p["chosen"]}],
                               "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs])


def _lora_config(cfg):
    from peft import LoraConfig

    c = OmegaConf.to_container(cfg, resolve=True)
    return LoraConfig(r=int(c["r"]), lora_alpha=float(c["alpha"]), lora_dropout=float(c["dropout"]),
                      target_modules=list(c["target_modules"]), bias="none", task_type="CAUSAL_LM")


def run_dpo(model_path: str, sft_adapter: str | None, pairs: list[dict], heldout: list[dict], dcfg: DictConfig,
            out_dir: Path, on_log=None) -> dict:
    from peft import PeftModel
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    t0 = time.time()
    torch.manual_seed(int(dcfg.seed))
    tok = load_tokenizer(model_path)
    max_len = int(dcfg.max_length)
    fits = [p for p in pairs if _ids(tok, p["prompt"], "", 10**9)[1] < max_len]
    if not fits:
        raise DiqError(f"dpo.max_length={max_len}: every one of the {len(pairs)} preference pairs has a longer prompt, "
                       f"so TRL would drop them all\n  fix: raise dpo.max_length (the longest prompt has "
                       f"{max(_ids(tok, p['prompt'], '', 10**9)[1] for p in pairs)} tokens)")
    model = load_model(model_path, dtype=str(dcfg.dtype), device=str(dcfg.device))
    peft_config = None
    if sft_adapter and dcfg.adapter == "continue":
        model = PeftModel.from_pretrained(model, sft_adapter, is_trainable=True)
    elif sft_adapter:  # stack
        model = PeftModel.from_pretrained(model, sft_adapter).merge_and_unload()
        peft_config = _lora_config(dcfg.lora)
    else:
        peft_config = _lora_config(dcfg.lora)
    before = heldout_margin(model, tok, heldout, int(dcfg.max_length))

    class Forward(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if on_log and logs:
                on_log({f"dpo/{k}": v for k, v in logs.items() if isinstance(v, (int, float))}, state.global_step)

    args = DPOConfig(output_dir=str(out_dir / "trainer"), learning_rate=float(dcfg.lr),
                     num_train_epochs=float(dcfg.epochs), per_device_train_batch_size=int(dcfg.per_device_batch),
                     gradient_accumulation_steps=int(dcfg.grad_accum), beta=float(dcfg.beta),
                     loss_type=[str(dcfg.loss_type)], max_length=int(dcfg.max_length),
                     lr_scheduler_type=str(dcfg.scheduler), warmup_steps=float(dcfg.warmup_ratio), logging_steps=1,
                     save_strategy="no", report_to="none", seed=int(dcfg.seed), data_seed=int(dcfg.seed),
                     bf16=str(dcfg.dtype) == "bfloat16", use_cpu=str(dcfg.device) == "cpu",
                     gradient_checkpointing=bool(dcfg.gradient_checkpointing), disable_tqdm=False)
    trainer = DPOTrainer(model=model, args=args, train_dataset=_dataset(pairs), processing_class=tok,
                         peft_config=peft_config, callbacks=[Forward()])
    trainer.train()
    model = trainer.model
    after = heldout_margin(model, tok, heldout, int(dcfg.max_length))
    logs = [h for h in trainer.state.log_history if "loss" in h]
    last = logs[-1] if logs else {}
    info = {"steps": int(trainer.state.global_step), "n_pairs": len(pairs), "n_pairs_used": len(trainer.train_dataset),
            "n_dropped_prompt_too_long": len(pairs) - len(fits), "adapter_mode": str(dcfg.adapter),
            "first_loss": logs[0].get("loss") if logs else None, "final_loss": last.get("loss"),
            "rewards_margins": last.get("rewards/margins"), "rewards_accuracies": last.get("rewards/accuracies"),
            "heldout_before": before, "heldout_after": after, "seconds": time.time() - t0,
            "log_history": [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in logs]}
    if sft_adapter and dcfg.adapter == "stack":
        merged = model.merge_and_unload()
        merged.save_pretrained(out_dir / "model")
        tok.save_pretrained(out_dir / "model")
        info.update(adapter=None, model=str(out_dir / "model"))
    else:
        model.save_pretrained(out_dir / "adapter", selected_adapters=["default"])
        info.update(adapter=str(out_dir / "adapter"), model=None)
    import shutil

    shutil.rmtree(out_dir / "trainer", ignore_errors=True)
    return info
