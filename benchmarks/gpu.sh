#!/usr/bin/env bash
# The GPU rows of the influence benchmarks, one prepared run (≤ 10 min on one H100/H200):
#   1. the 8B-architecture MFU row: engine + one LoRA epoch, bf16, all 32 layers, 64 × 2048 tokens, 16k-token
#      batches (and the same epoch with gradient checkpointing);
#   2. the side by side with dattri-llm on SmolLM2 (Dot and LESS), bf16 and fp32.
# Usage on the device, from the repository root with the project installed (make setup, or the image's stack
# plus `pip install -e '.[bench]'`):   bash benchmarks/gpu.sh [OUT_DIR]
# Each command writes its JSON (device, stack versions and the command inside) to OUT_DIR (default: benchmarks).
set -euo pipefail
OUT=${1:-benchmarks}
PY=${PY:-python}
GPU=$($PY -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())")
mkdir -p "$OUT"
$PY -m diq.bench throughput --model llama31_8b_arch --n 64 --seq-len 2048 --batch-tokens 16384 --dtype bfloat16 \
  --device cuda --out "$OUT/throughput_llama31_8b_arch_${GPU}_bf16.json"
$PY -m diq.bench throughput --model llama31_8b_arch --n 64 --seq-len 2048 --batch-tokens 16384 --dtype bfloat16 \
  --device cuda --checkpointing --out "$OUT/throughput_llama31_8b_arch_${GPU}_bf16_ckpt.json"
for dt in bfloat16 float32; do  # engine vs the batch-size-1 loop: max_abs_err_over_scale and loop_spearman
  $PY -m diq.bench influence --model smollm2_135m --n 64 --max-len 768 --device cuda --dtype $dt --modes seed_vs_seed \
    --out "$OUT/influence_${GPU}_${dt}_loop.json"
done
for dt in bfloat16 float32; do
  $PY -m diq.bench influence --model smollm2_135m --n 64 --max-len 768 --against dattri --device cuda --dtype $dt \
    --less-r 128 --out "$OUT/peer_dattri_${GPU}_${dt}.json"
done
