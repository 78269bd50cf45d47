#!/usr/bin/env bash
# The GPU rows of the influence benchmarks, one prepared run (≤ 10 min on one H100/H200), most important first:
#   1. the 8B-architecture MFU row: engine + one LoRA epoch, bf16, all 32 layers, 64 × 2048 tokens, 16k-token batches;
#   2. engine vs the batch-size-1 loop in fp32 (the H200 fp32 disagreement) and the side by side with dattri-llm on
#      SmolLM2 (Dot and LESS) in fp32 — the third opinion — then the same two in bf16;
#   3. the 8B epoch with gradient checkpointing, if time is left.
# Usage on the device, from the repository root with the project installed (make setup, or the image's stack
# plus `pip install -e '.[bench]'`):   bash benchmarks/gpu.sh [OUT_DIR]
# Each command writes its JSON (device, stack versions and the command inside) to OUT_DIR (default: benchmarks).
# One failing or hanging row does not cost the others: each command has its own time limit, all of them share
# DIQ_GPU_BUDGET_S (default 570 s), a failure is written to OUT_DIR/gpu_failures.txt (exit status and command) and
# the script goes on; it exits 1 if any row failed or was skipped for lack of time.
set -uo pipefail
OUT=${1:-benchmarks}
PY=${PY:-python}
GPU=$($PY -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())") || exit 1
mkdir -p "$OUT"
END=$((SECONDS + ${DIQ_GPU_BUDGET_S:-570}))
FAILED=0
run() {  # run LIMIT_S CMD...
  local limit=$1 left=$((END - SECONDS)); shift
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 20 ]; then echo "skipped (no time left): $*" >> "$OUT/gpu_failures.txt"; FAILED=1; return; fi
  echo "== (≤ ${limit} s) $*"
  timeout -k 10 "$limit" "$@"; local rc=$?  # signals the whole process group (spawned engines too)
  if [ $rc -ne 0 ]; then echo "rc=$rc: $*" >> "$OUT/gpu_failures.txt"; FAILED=1; fi
}
B8="--model llama31_8b_arch --n 64 --seq-len 2048 --batch-tokens 16384 --dtype bfloat16 --device cuda"
SM="--model smollm2_135m --n 64 --max-len 768 --device cuda"
run 150 $PY -m diq.bench throughput $B8 --out "$OUT/throughput_llama31_8b_arch_${GPU}_bf16.json"
for dt in float32 bfloat16; do
  # engine vs the batch-size-1 loop: max_abs_err_over_scale, max_abs_err_over_norms, loop_spearman
  run 60 $PY -m diq.bench influence $SM --dtype $dt --modes seed_vs_seed --out "$OUT/influence_${GPU}_${dt}_loop.json"
  run 150 $PY -m diq.bench influence $SM --dtype $dt --against dattri --less-r 128 \
    --out "$OUT/peer_dattri_${GPU}_${dt}.json"
done
run 120 $PY -m diq.bench throughput $B8 --checkpointing --out "$OUT/throughput_llama31_8b_arch_${GPU}_bf16_ckpt.json"
exit $FAILED
