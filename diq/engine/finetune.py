"""LoRA fine-tuning on the selected subset: response-only loss inside the model's chat template.

The loss of an optimizer step is the mean token cross-entropy over all response tokens of the effective
batch (``effective_batch`` samples, split into micro-batches of similar length, gradients accumulated), so
micro-batching and padding never change the result.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from diq.artifacts import write_json
from diq.engine.formatting import Encoded, collate, encode, response_token_losses
from diq.engine.lora import attach_lora
from diq.engine.models import load_model, load_tokenizer


def plan_steps(encoded: list[Encoded], effective_batch: int, micro_batch: int, epochs: int, seed: int
               ) -> list[list[list[int]]]:
    """Optimizer steps → micro-batches → sample indices. Seeded shuffle per epoch; inside a step, samples
    are sorted by length before micro-batching to waste little on padding."""
    rng = random.Random(seed)
    steps = []
    for _ in range(epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for s in range(0, len(order), effective_batch):
            chunk = sorted(order[s: s + effective_batch], key=lambda i: len(encoded[i].input_ids))
            steps.append([chunk[m: m + micro_batch] for m in range(0, len(chunk), micro_batch)])
    return steps


def _save_checkpoint(model, opt, out: Path, epoch: int, lrs: list[float]) -> dict:
    """Adapter + Adam moments keyed by the LoRA *module* name (the key gradient capture uses) + mean lr."""
    model.save_pretrained(out / "adapter")
    names = {id(p): n[: -len(".weight")] for n, p in model.named_parameters() if p.requires_grad}
    state = {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            if "exp_avg" in st:
                state[names[id(p)]] = (st["exp_avg"].detach().reshape(-1).cpu(), st["exp_avg_sq"].detach().reshape(-1).cpu())
    torch.save(state, out / "adam.pt")
    return {"epoch": epoch, "adapter": str(out / "adapter"), "mean_lr": float(sum(lrs) / max(1, len(lrs)))}


def finetune(model_path: str, records: list[dict], cfg: DictConfig, out_dir: Path,
             on_step: Callable[[dict], None] | None = None, checkpoint_every_epoch: bool = False,
             lora_name: str = "train.lora") -> dict:
    """Train a LoRA adapter on ``records`` and save it to ``out_dir/adapter``. Returns a summary.
    With ``checkpoint_every_epoch`` (warm-up for influence / LESS) each epoch also leaves ``ckpt-<e>/``."""
    import torch.distributed as dist
    from transformers import get_scheduler

    t0 = time.time()
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.manual_seed(int(cfg.seed))
    tok = load_tokenizer(model_path)
    model = load_model(model_path, dtype=cfg.dtype, device=cfg.device)
    model = attach_lora(model, cfg.lora, key=lora_name)
    if cfg.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model.train()
    encoded = [encode(tok, r, int(cfg.max_length)) for r in records]
    eff = int(cfg.effective_batch)
    micro = int(cfg.micro_batch)
    steps = plan_steps(encoded, eff, micro, int(cfg.epochs), int(cfg.seed))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))
    sched = get_scheduler(cfg.scheduler, opt, num_warmup_steps=math.ceil(float(cfg.warmup_ratio) * len(steps)),
                          num_training_steps=len(steps))
    losses, checkpoints, epoch_lrs = [], [], []
    steps_per_epoch = math.ceil(len(encoded) / eff)
    bar = tqdm(steps, desc=f"train ({len(records)} samples, {cfg.epochs} ep, {world} proc)", unit="step",
               dynamic_ncols=True, disable=rank != 0)
    for step, micro_batches in enumerate(bar):
        n_tok = sum(encoded[i].n_response for mb in micro_batches for i in mb)
        total = 0.0
        for mb in micro_batches[rank::world]:
            batch = collate([encoded[i] for i in mb], tok.pad_token_id)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            ce, _ = response_token_losses(model, batch)
            loss = ce.sum() / n_tok
            loss.backward()
            total += float(loss.detach())
        if world > 1:  # sum of the ranks' partial gradients = the gradient of the whole effective batch
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            t = torch.tensor([total], dtype=torch.float64)
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            total = float(t)
        if cfg.get("max_grad_norm"):
            torch.nn.utils.clip_grad_norm_(params, float(cfg.max_grad_norm))
        lr_used = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        epoch_lrs.append(lr_used)
        rec = {"step": step + 1, "loss": total, "lr": lr_used, "tokens": n_tok}
        losses.append(rec)
        bar.set_postfix(loss=f"{total:.4f}")
        if on_step:
            on_step(rec)
        if checkpoint_every_epoch and (step + 1) % steps_per_epoch == 0:
            checkpoints.append(_save_checkpoint(model, opt, out_dir / f"ckpt-{len(checkpoints) + 1}",
                                                len(checkpoints) + 1, epoch_lrs))
            epoch_lrs = []
    adapter = out_dir / "adapter"
    if rank == 0:
        model.save_pretrained(adapter)
        write_json(out_dir / "train_log.json", losses)
    return {"adapter": str(adapter), "steps": len(steps), "final_loss": losses[-1]["loss"] if losses else None,
            "mean_loss_first_step": losses[0]["loss"] if losses else None,
            "n_train": len(records), "checkpoints": checkpoints, "num_processes": world, "n_tokens": sum(e.n_response for e in encoded), "seconds": time.time() - t0}


def finetune_multiprocess(model_path: str, records: list[dict], cfg: DictConfig, out_dir: Path, n: int) -> dict:
    """Run :func:`finetune` in ``n`` processes with torchrun (gloo on CPU, nccl on GPUs); rank 0 saves.
    The arguments travel in a JSON file; no shell is involved."""
    import json
    import subprocess
    import sys

    from omegaconf import OmegaConf

    job = out_dir / "mp_job.json"
    write_json(job, {"model_path": model_path, "records": records, "cfg": OmegaConf.to_container(cfg, resolve=True),
                     "out_dir": str(out_dir)})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(n)}",
           "-m", "diq.engine.finetune", str(job)]
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise RuntimeError(f"multi-process training failed (exit {proc.returncode}): {' '.join(cmd)}")
    return json.loads((out_dir / "mp_result.json").read_text())


def _worker(job_path: str) -> None:
    import json
    import os

    import torch.distributed as dist
    from omegaconf import OmegaConf

    job = json.loads(Path(job_path).read_text())
    cfg = OmegaConf.create(job["cfg"])
    backend = "nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo"
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        cfg.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    try:
        res = finetune(job["model_path"], job["records"], cfg, Path(job["out_dir"]))
        if dist.get_rank() == 0:
            write_json(Path(job["out_dir"]) / "mp_result.json", res)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    import sys

    _worker(sys.argv[1])
