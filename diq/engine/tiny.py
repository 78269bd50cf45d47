"""A tiny random Llama with a locally trained byte-level BPE tokenizer (< 1 MB, ~5 s), for tests.

It is a real ``transformers`` model and tokenizer saved with ``save_pretrained``: every code path that
runs on it (chat template, LoRA, lm-eval, hooks) is the one real models take.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from diq import DATA

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<pad>", "<s>", "<|im_start|>", "<|im_end|>"]


def _corpus() -> list[str]:
    data = DATA
    lines: list[str] = []
    for rec in json.loads((data / "medical_o1_demo.json").read_text(encoding="utf-8")):
        for key in ("Question", "Complex_CoT", "Response"):
            lines.extend(x for x in rec[key].split("\n") if x.strip())
    pq = json.loads((data / "pubmedqa_pqal.json").read_text(encoding="utf-8"))
    for i, rec in enumerate(pq.values()):
        if i >= 300:
            break
        lines.append(rec["QUESTION"])
        lines.extend(rec["CONTEXTS"])
    lines.extend(["## Thinking", "## Final Response", "The answer is A", "yes no maybe", "A. B. C. D. E."])
    return lines


def build_tiny(dest: str | os.PathLike, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
               vocab: int = 512, seed: int = 0) -> Path:
    dest = Path(dest)
    if (dest / "_BUILT").exists():
        return dest
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="<|im_end|>",
                                  unk_token=None)
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=4096, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".tiny-"))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "_BUILT").write_text("ok\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest
