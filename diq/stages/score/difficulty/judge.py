"""An LLM judge rating difficulty 1–5 per perspective with the rubric in ``rubric.py``.

Backends:
- ``local``: a causal LM via transformers. The rating is the expected value Σ_k p_k·k of the next-token
  distribution restricted to the tokens "1".."5" after the chat-templated prompt (fewer ties than an argmax).
- ``openai``: any OpenAI-compatible chat-completions endpoint (vLLM, OpenAI, …). The key is read from the
  environment variable named by ``api_key_env`` and never stored. With ``logprobs`` the same expected value is
  used; otherwise the first digit 1–5 in the reply. Failures are retried with exponential backoff; ratings
  already obtained are appended to a JSONL file as they arrive, so a crash loses nothing.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from diq.config.checks import _int, _num, check_device, check_dtype
from diq.errors import DiqError
from diq.stages.score.difficulty.rubric import judge_prompt

log = logging.getLogger(__name__)


class LocalJudge:
    def __init__(self, model_path: str, device: str = "cpu", dtype: str = "float32", max_length: int = 2048,
                 batch_size: int = 4):
        from diq.engine.models import load_model, load_tokenizer

        self.tok = load_tokenizer(model_path)
        self.model = load_model(model_path, dtype=dtype, device=device).eval()
        self.max_length, self.batch_size = max_length, batch_size
        self.digit_ids = []
        for d in "12345":
            ids = self.tok.encode(d, add_special_tokens=False)
            if len(ids) != 1:
                raise DiqError(f"judge model tokenizer splits the digit {d!r} into {ids}; the local judge needs "
                               f"single-token digits\n  fix: use another judge model or the openai backend")
            self.digit_ids.append(ids[0])

    def rate(self, prompts: list[str]) -> list[float]:
        import torch

        out = []
        for s in range(0, len(prompts), self.batch_size):
            chunk = prompts[s: s + self.batch_size]
            encs = [self.tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                 tokenize=True, return_dict=True)["input_ids"][-self.max_length:]
                    for p in chunk]
            n = max(len(e) for e in encs)
            pad = self.tok.pad_token_id
            ids = torch.tensor([[pad] * (n - len(e)) + e for e in encs])  # left pad: last position = next token
            mask = torch.tensor([[0] * (n - len(e)) + [1] * len(e) for e in encs])
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device)).logits
            p = torch.softmax(logits[:, -1, self.digit_ids].float(), dim=-1)
            out.extend((p * torch.arange(1, 6, dtype=torch.float32, device=p.device)).sum(-1).tolist())
        return out


RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}  # worth retrying; any other HTTP error is the request's fault


class JudgeError(DiqError):
    """The endpoint gave up (retries spent) or refused the request (a status that retrying cannot fix)."""


def retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date), capped; None without one."""
    if not value:
        return None
    try:
        wait = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            wait = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(wait, 0.0), cap)


class OpenAIJudge:
    """Chat completions over urllib. Retried, with exponential backoff capped at ``max_wait`` seconds per wait (or the
    server's ``Retry-After``, capped alike): 408/409/425/429/5xx, timeouts, refused or dropped connections, a reply
    that is not JSON or has no rating. Any other HTTP status (400, 401, 403, 404, 422…) stops at once with the fix."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 max_retries: int = 5, backoff: float = 1.0, logprobs: bool = True, max_wait: float = 60.0):
        if max_retries < 0 or timeout <= 0 or backoff < 0 or max_wait < 0:
            raise DiqError(f"judge: max_retries={max_retries}, timeout={timeout}, backoff={backoff}, "
                           f"max_wait={max_wait}\n  fix: max_retries >= 0, timeout > 0, backoff >= 0, max_wait >= 0")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.timeout, self.max_retries, self.backoff, self.logprobs = model, timeout, max_retries, backoff, logprobs
        self.api_key_env, self.max_wait = api_key_env, max_wait
        self.waited = 0.0  # seconds spent in backoff (reported when the judge gives up)

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url, data=json.dumps(payload).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310 - URL comes from config
            body = r.read().decode("utf-8", errors="replace")
        try:
            return json.loads(body)
        except ValueError:
            raise ValueError(f"the reply is not JSON: {body[:80]!r}") from None

    @staticmethod
    def parse(resp: dict) -> float:
        choice = resp["choices"][0]
        lp = (choice.get("logprobs") or {}).get("content") or []
        if lp:
            tops = {t["token"].strip(): t["logprob"] for t in lp[0].get("top_logprobs", [])}
            ps = {int(d): math.exp(tops[d]) for d in "12345" if d in tops}
            if ps:
                z = sum(ps.values())
                return sum(k * v for k, v in ps.items()) / z
        m = re.search(r"[1-5]", choice["message"]["content"] or "")
        if not m:
            raise ValueError(f"no rating 1-5 in reply {choice['message']['content']!r}")
        return float(m.group(0))

    def _refused(self, e: urllib.error.HTTPError) -> JudgeError:
        fix = {401: f"set the key in ${self.api_key_env} (judge.api_key_env names the variable)",
               403: f"the key in ${self.api_key_env} may not use this model or endpoint",
               404: f"check judge.base_url (it ends in /v1: {self.url}) and judge.model_name={self.model!r}"}
        return JudgeError(f"judge endpoint {self.url} refused the request: HTTP {e.code} {e.reason}; retrying "
                          f"cannot fix this\n  fix: {fix.get(e.code, 'check judge.model_name and the request the server expects')}")

    def rate_one(self, prompt: str) -> float:
        payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 4,
                   "temperature": 0.0}
        if self.logprobs:
            payload.update(logprobs=True, top_logprobs=10)
        last, attempts = None, self.max_retries + 1
        for attempt in range(attempts):
            wait = None
            try:
                return self.parse(self._post(payload))
            except urllib.error.HTTPError as e:
                if e.code not in RETRY_STATUS:
                    raise self._refused(e) from None
                last, wait = e, retry_after(e.headers.get("Retry-After") if e.headers else None, self.max_wait)
            except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException, ValueError, KeyError,
                    IndexError, TypeError) as e:  # refused, timed out, dropped mid-reply, not JSON, no rating
                last = e
            if attempt + 1 < attempts:
                wait = min(self.backoff * (2 ** attempt), self.max_wait) if wait is None else wait
                self.waited += wait
                time.sleep(wait)
        raise JudgeError(f"judge endpoint {self.url} failed {attempts} times ({self.max_retries} retries, "
                         f"{self.waited:.1f} s of backoff in this run); last error: "
                         f"{type(last).__name__}: {last}\n  fix: check that the server is up and returns chat "
                         f"completions (judge.max_retries, judge.backoff and judge.max_wait set the patience)")

    def rate(self, prompts: list[str]) -> list[float]:
        return [self.rate_one(p) for p in prompts]


PEAK_FLOPS = {"cpu": 1.0e11, "cuda": 2.0e14}  # achieved FLOP/s assumed for the estimate (CPU: measured ~116 GFLOP/s)


def model_params(path: str) -> int:
    """Parameters of a local model folder, from its weight files' sizes and dtype (no loading)."""
    import json as _json

    p = Path(path)
    size = sum(f.stat().st_size for f in p.glob("*.safetensors")) or sum(f.stat().st_size for f in p.glob("*.bin"))
    try:
        dt = _json.loads((p / "config.json").read_text()).get("torch_dtype") or \
            _json.loads((p / "config.json").read_text()).get("dtype") or "float32"
    except (OSError, ValueError):
        dt = "float32"
    return int(size / (2 if "16" in str(dt) else 4))


def estimate(records: list[dict], n_perspectives: int, params: int, device: str, with_answer: bool = True,
             with_reasoning: bool = True) -> dict:
    """Prompts × tokens and a time estimate, printed before a judge starts."""
    from diq.stages.score.difficulty.rubric import judge_prompt

    chars = sum(len(judge_prompt(r, "overall", with_answer, with_reasoning)) for r in records)
    tokens = int(chars / 4) * n_perspectives  # ~4 characters per token
    flops = 2.0 * params * tokens
    dev = "cuda" if str(device).startswith("cuda") else "cpu"
    return {"prompts": len(records) * n_perspectives, "tokens": tokens, "params": params,
            "hours": flops / PEAK_FLOPS[dev] / 3600, "device": dev}


def check_local_judge(cfg, path: str, records: list[dict], n_perspectives: int) -> dict:
    """Print the judge's cost; refuse a > 1B-parameter local judge on CPU unless ``judge.force=true``."""
    est = estimate(records, n_perspectives, model_params(path), cfg.get("device", "cpu"),
                   bool(cfg.get("with_answer", True)), bool(cfg.get("with_reasoning", True)))
    log.info(f"judge {path}: {est['prompts']} prompts × ~{est['tokens'] // max(1, est['prompts'])} tokens "
             f"({est['params'] / 1e9:.2f} B parameters) ≈ {est['hours']:.2f} h on {est['device']}")
    if est["params"] > 1e9 and est["device"] == "cpu" and not cfg.get("force", False):
        raise DiqError(f"a {est['params'] / 1e9:.1f} B-parameter local judge on CPU: {est['prompts']} prompts, about "
                       f"{est['hours']:.0f} h\n  fix: use a GPU (judge.device=cuda), an endpoint "
                       f"(judge=openai), scoring/difficulty=judge_classifier with a smaller label_n, or "
                       f"judge.force=true")
    return est


def local_judge(cfg, model_path: str | None = None, records: list[dict] | None = None, n_perspectives: int = 3):
    """``conf/judge/local.yaml``: a transformers model (``judge.model``, or the run's model); with ``records`` its cost
    is printed first and a > 1B judge on CPU is refused unless forced."""
    from diq.engine.models import resolve_model

    path = resolve_model(cfg.model) if cfg.get("model") else model_path
    if path is None:
        raise DiqError("judge=local needs judge.model (a conf/model config) when there is no run model\n"
                       "  fix: +model@judge.model=<name>, or judge=openai")
    if records is not None:
        check_local_judge(cfg, path, records, n_perspectives)
    return LocalJudge(path, device=cfg.get("device", "cpu"), dtype=cfg.get("dtype", "float32"),
                      max_length=int(cfg.get("max_length", 2048)), batch_size=int(cfg.get("batch_size", 4)))


def openai_judge(cfg, model_path: str | None = None, records: list[dict] | None = None, n_perspectives: int = 3):
    """``conf/judge/openai.yaml``: an OpenAI-compatible endpoint; the key comes from ``$<api_key_env>`` only."""
    if not cfg.get("base_url") or not cfg.get("model_name"):
        raise DiqError("judge=openai needs judge.base_url and judge.model_name\n"
                       "  fix: judge.base_url=http://host:8000/v1 judge.model_name=<served model>")
    return OpenAIJudge(cfg.base_url, cfg.model_name, api_key_env=cfg.get("api_key_env", "OPENAI_API_KEY"),
                       timeout=float(cfg.get("timeout", 60)), max_retries=int(cfg.get("max_retries", 5)),
                       backoff=float(cfg.get("backoff", 1.0)), logprobs=bool(cfg.get("logprobs", True)),
                       max_wait=float(cfg.get("max_wait", 60.0)))


BACKENDS = {"local": "diq.stages.score.difficulty.judge.local_judge", "openai": "diq.stages.score.difficulty.judge.openai_judge"}


def make_judge(cfg, model_path: str | None = None, records: list[dict] | None = None, n_perspectives: int = 3):
    """The judge that ``cfg._target_`` names (conf/judge/<backend>.yaml), built by Hydra's ``instantiate``."""
    from diq.config.components import component

    target = cfg.get("_target_") or BACKENDS.get(str(cfg.get("backend")))
    if target is None:
        raise DiqError(f"judge.backend={cfg.get('backend')!r} and no judge._target_\n  fix: judge=local or judge=openai "
                       f"(conf/judge/)")
    return component(target, "judge._target_")(cfg, model_path, records, n_perspectives)


def rate_cached(judge, tasks: list[tuple[dict, str]], prompt_fn, partial_path: Path, key: str = "id",
                desc: str = "judge") -> dict[tuple[str, str], float]:
    """Rate (item, aspect) pairs with ``judge``; every rating is appended to ``partial_path`` (JSONL) as it arrives and
    reused from it, so a crash or a failed endpoint loses nothing. An endpoint judge (one with ``rate_one``) is asked
    one prompt at a time; a local one in chunks of 8. When the judge gives up, the error says how many ratings are
    done, where they are kept, and that rerunning the same command asks only for the rest.
    Returns {(item[key], aspect): rating}."""
    done: dict[tuple[str, str], float] = {}
    if partial_path.exists():
        for line in partial_path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                done[(r["id"], r["perspective"])] = float(r["rating"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a torn last line from a crash
    partial_path.parent.mkdir(parents=True, exist_ok=True)
    todo = [(it, a) for it, a in tasks if (it[key], a) not in done]
    bar = tqdm(total=len(todo), desc=desc, unit="rating", disable=not todo)
    one = getattr(judge, "rate_one", None)
    step = 1 if one else 8
    before = len(done)
    try:
        with open(partial_path, "a", encoding="utf-8") as f:
            if partial_path.stat().st_size and not partial_path.read_bytes().endswith(b"\n"):
                f.write("\n")  # a torn last line: the next rating starts a line of its own
            for s in range(0, len(todo), step):
                chunk = todo[s: s + step]
                ratings = [one(prompt_fn(*chunk[0]))] if one else judge.rate([prompt_fn(it, a) for it, a in chunk])
                for (it, a), v in zip(chunk, ratings):
                    done[(it[key], a)] = float(v)
                    f.write(json.dumps({"id": it[key], "perspective": a, "rating": float(v)}) + "\n")
                f.flush()
                bar.update(len(chunk))
    except DiqError as e:
        n = len({(it[key], a) for it, a in tasks} & set(done))
        raise type(e)(f"{e}\n  {n} of {len(tasks)} ratings are done ({len(done) - before} in this run), kept in "
                      f"{partial_path}\n  resume: rerun the same command; only the {len(tasks) - n} missing ratings "
                      f"are asked") from None
    finally:
        bar.close()
    return done


def judge_records(judge, records: list[dict], perspectives, partial_path: Path, with_answer: bool = True,
                  with_reasoning: bool = True) -> dict[str, np.ndarray]:
    """Rate every record for every perspective; resume from ``partial_path`` (JSONL of finished ratings)."""
    tasks = [(r, p) for p in perspectives for r in records]
    done = rate_cached(judge, tasks, lambda r, p: judge_prompt(r, p, with_answer, with_reasoning), partial_path)
    return {p: np.array([done[(r["id"], p)] for r in records]) for p in perspectives}


def check_judge(cfg, judged: bool) -> None:
    """The LLM judge block (conf/judge/): its backend names its ``_target_`` (the record reports the backend), and
    the local judge's sizes, dtype and device; the device must exist when a judge-based difficulty will be scored."""
    j = cfg.get("judge")
    if j is None:
        return
    backend, target = j.get("backend"), j.get("_target_")
    if target in BACKENDS.values() and BACKENDS.get(str(backend)) != target:
        raise DiqError(f"judge.backend={backend!r} but judge._target_={target} is the "
                       f"{next(k for k, v in BACKENDS.items() if v == target)!r} backend (the record would name the "
                       f"wrong one)\n  fix: choose the backend with its config group: judge=local or judge=openai")
    if target == BACKENDS["local"]:
        _int(j.get("batch_size", 4), "judge.batch_size", 1, fix="prompts per forward pass, e.g. 4")
        _int(j.get("max_length", 2048), "judge.max_length", 64, fix="tokens of rubric + sample the judge reads "
                                                                    "(longer prompts keep their end), e.g. 2048")
        check_dtype(j.get("dtype", "float32"), "judge.dtype")
        check_device(j.get("device", "cpu"), "judge.device", used=judged)
    if target == BACKENDS["openai"]:
        _num(j.get("timeout", 60), "judge.timeout", 1e-3, 86400.0, "seconds per request, e.g. 60")
        _int(j.get("max_retries", 5), "judge.max_retries", 0, fix="retries per request, e.g. 5")
        _num(j.get("backoff", 1.0), "judge.backoff", 0.0, 3600.0, "seconds of the first retry's wait, e.g. 1")
        _num(j.get("max_wait", 60.0), "judge.max_wait", 0.0, 86400.0, "the longest wait between two tries "
                                                                        "(Retry-After included), e.g. 60")
