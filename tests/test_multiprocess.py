"""Two-process training (torchrun, gloo) equals one process on the same global batch."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from diq.run import run


def test_two_processes_match_one(run_cfg):
    base = ["selection=random", "budget.fraction=0.1", "stop_after=train", "train.lora.dropout=0.0",
            "train.max_length=256"]
    one = run(run_cfg(*base, out="one"))
    two = run(run_cfg(*base, "train.num_processes=2", out="two"))
    assert two["train"]["num_processes"] == 2 and one["train"]["num_processes"] == 1
    assert two["train"]["cache"] != one["train"]["cache"]
    a = load_file(f"{one['train']['adapter']}/adapter_model.safetensors")
    b = load_file(f"{two['train']['adapter']}/adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    assert two["train"]["final_loss"] == pytest.approx(one["train"]["final_loss"], rel=1e-5)
    # and training did move the adapter away from its initialisation
    assert max(float(v.abs().max()) for k, v in a.items() if "lora_B" in k) > 0
