"""The engine: what every stage computes with. ``models`` (loading, the offline SmolLM2 and tiny models via ``hub``
and ``tiny``), ``lora``, ``formatting`` (the SFT prompt and its response-token mask), ``gradients`` (per-sample
LoRA gradients), ``projection`` (Rademacher and sparse JL), ``influence`` (Dot and LESS scores over gradients) and
``finetune`` (the LoRA SFT loop; also the LESS warm-up)."""
