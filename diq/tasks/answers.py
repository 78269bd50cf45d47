"""Answer extraction for diq's generative MCQ tasks: diq's strict-first matcher and HuatuoGPT-o1's, with the rule
that decided each item, and per-task scoring from stored generations (``score_items``), so that a change of
``eval.matcher`` re-scores the cached generations instead of generating again.

``huatuo`` re-implements the behaviour of HuatuoGPT-o1's ``evaluation/scorer.py`` (``match_choice`` and ``score``)
from its documented rules; ``tests/data/huatuo_replies.jsonl`` holds 400+ replies with the labels those rules give,
and the tests assert 100 % agreement. Its rules, in order (docs/evaluation.md states them with examples):

1. keep only what follows the last ``"## Final Response\\n\\n"``, if present;
2. ``answer_is``: every ``answer is`` (case-sensitive) followed, after optional whitespace, by a capital A–N —
   *any* of those letters, even one that is not an option ("The answer is Hepatitis B" gives H);
3. ``letter``: every standalone option letter (the first ``len(options)`` of A–N): one character before it that is
   not a word character, a CJK character, or the start of the text (``is `` too); then the letter, not an "A "
   article; then one character that is not a word character, a CJK character, or the end. Python's Unicode ``\\W``:
   ``_`` and letters like ``é`` are word characters, so "B_" and "Bé" are not standalone. The surrounding characters
   are consumed, so in "A,B" only A is found;
4. ``option_text`` (lower-cased): the options whose text occurs in the reply; *last* = the option whose last
   occurrence starts latest, *first* = the option whose first occurrence starts latest (sic); ties go to the
   earlier option;
5. ``most_similar``: the option with the highest ``difflib`` ratio to the reply, ties to the *later* option (an
   empty reply therefore picks the last option).

Each rule gives a first and a last match; a source scores max(first-match accuracy, last-match accuracy) (first
only when strictly higher), and the record keeps both and which was taken.
"""

from __future__ import annotations

import difflib
import re

RULES = ("answer_is", "label", "option_text", "thinking_answer_is", "none")  # diq's order; recorded per item
HUATUO_RULES = ("answer_is", "letter", "option_text", "most_similar")
FINAL = "## Final Response"


# ------------------------------------------------------------------------------------------------ diq (strict)
def _answer_is(text: str, cls: str) -> list[str]:
    return re.findall(rf"\b(?:[Tt]he\s+)?(?:correct\s+|final\s+|best\s+|right\s+)?(?:[Aa]nswer|[Cc]hoice|[Oo]ption)"
                      rf"\s*(?:is|would be|:)\s*:?\s*\**\s*\(?([{cls}])\)?(?![A-Za-z0-9])", text)


def match_answer(text, letters: list[str], options: list[str]) -> tuple[str, str]:
    """diq's matcher, strict first → ``(letter or "[invalid]", rule)``. A reply with a "## Final Response" section
    is read there first (its thinking may say "The answer is B? No."):

    1. ``answer_is``: the last "the (correct|final|best) answer/choice/option is (X)" in the final response (the
       whole reply when it has no such section);
    2. ``label``: the final response opens with one option label ("B.", "(B)", "B)", "**B**") and no other label
       opens a line (a reply that repeats the option list is not an answer);
    3. ``option_text``: the final response *is* one option's text (optionally after its label);
    4. ``thinking_answer_is``: only when the final response decides nothing, the last "the answer is X" of the
       thinking before it;
    5. ``none``: nothing else is guessed — a letter inside a sentence ("lacks vitamin D."), a trailing word that
       happens to be an option ("There is no") or a hedge ("(B) is unlikely") decides nothing.
    """
    if not isinstance(text, str):
        return "[invalid]", "none"
    cls = "".join(letters)
    head, has_final, tail = text.rpartition(FINAL)
    tail = tail if has_final else text
    m = _answer_is(tail, cls)
    if m:
        return m[-1], "answer_is"
    tail = tail.strip()
    label = re.compile(rf"^\s*(?:\*\*)?\(?([{cls}])(?:\)|\.|:|\*\*|\s*$)", flags=re.M)
    first = label.match(tail)
    if first and set(label.findall(tail)) == {first.group(1)}:
        return first.group(1), "label"
    norm = lambda x: re.sub(r"[\s.*:()]+", " ", x).strip()  # noqa: E731
    t = norm(tail)
    if t:  # case-insensitive unless that is ambiguous (options "bb bb" and "Bb Bb" are different genotypes)
        for fold in (str.lower, lambda x: x):
            hits = [l for l, o in zip(letters, options) if fold(t) in (fold(norm(o)), fold(norm(f"{l} {o}")))]
            if len(hits) == 1:
                return hits[0], "option_text"
    m = _answer_is(head, cls) if has_final else []
    if m:
        return m[-1], "thinking_answer_is"
    return "[invalid]", "none"


# ------------------------------------------------------------------------------------------------ HuatuoGPT-o1
_CJK = "\u4e00-\u9fff"


def _standalone(letters: str) -> re.Pattern:
    # before: start of text, "is ", a CJK character or any non-word character; the letter (not an "A " article);
    # after: a non-word character, a CJK character or the end. Both neighbours are consumed (non-overlapping).
    return re.compile(rf"(?:^|is |[{_CJK}]|\W)(?![aA] )([{letters}])(?:\W|[{_CJK}]|$)")


def huatuo_choice(text: str, letters: list[str], options: list[str]) -> tuple[str, str, str]:
    """HuatuoGPT-o1's extraction → ``(first, last, rule)``; always answers (see the module docstring)."""
    if FINAL + "\n\n" in text:
        text = text.split(FINAL + "\n\n")[-1]
    hits = re.findall(r"answer is\s*([A-N])", text)
    if hits:
        return hits[0], hits[-1], "answer_is"
    hits = _standalone("ABCDEFGHIJKLMN"[: len(options)]).findall(text)
    if hits:
        return hits[0], hits[-1], "letter"
    low = text.lower()
    present = [(l, o.lower()) for l, o in zip(letters, options) if o.lower() in low]
    if present:
        latest = lambda pos: max(present, key=lambda x: pos(x[1]))[0]  # noqa: E731 - max keeps the earlier on ties
        return latest(low.index), latest(low.rindex), "option_text"
    best, best_i = 0.0, 0
    for i, o in enumerate(options):
        r = difflib.SequenceMatcher(None, o.lower(), low).ratio()
        if r >= best:
            best, best_i = r, i
    return letters[best_i], letters[best_i], "most_similar"


def huatuo_output(text) -> str:
    """The reply as HuatuoGPT-o1's ``eval.py`` hands it to the scorer: ``</s>`` removed, one leading space off."""
    text = "" if text is None else str(text)
    text = text.replace("</s>", "")
    return text[1:] if text.startswith(" ") else text


def match_huatuo(text, letters: list[str], options: list[str]) -> tuple[str, str]:
    """HuatuoGPT-o1's last match → ``(letter, rule)``."""
    _first, last, rule = huatuo_choice(huatuo_output(text), letters, options)
    return last, rule


MATCHERS = {"diq": match_answer, "huatuo": match_huatuo}


def extract_letter(text: str, letters: list[str], options: list[str], matcher: str = "diq") -> str:
    return MATCHERS[matcher](text, letters, options)[0]


def extract_filter(resps, docs, matcher: str = "diq"):
    return [[extract_letter(r, d["letters"], d["options"], matcher) for r in rs] for rs, d in zip(resps, docs)]


# ------------------------------------------------------------------------------------------------ scoring
def score_items(items: list[dict], matcher: str) -> tuple[dict, list[dict]]:
    """Score one task's stored generations ``{resp, letters, options, options_raw?, gold}`` with ``matcher``.

    Returns ``(summary, outcomes)``. ``summary['value']`` is the task's score: accuracy of diq's matcher, or for
    ``huatuo`` max(first-match, last-match accuracy) as HuatuoGPT-o1 computes it, with both accuracies and which
    one was taken under ``summary['huatuo']``. ``summary['strict']`` is always diq's strict accuracy."""
    outcomes = []
    for it in items:
        strict, rule = match_answer(it["resp"], it["letters"], it["options"])
        o = {"gold": it["gold"], "strict_pred": strict, "strict_rule": rule}
        if matcher == "huatuo":
            first, last, hrule = huatuo_choice(huatuo_output(it["resp"]), it["letters"],
                                               it.get("options_raw") or it["options"])
            o.update(pred=last, first=first, rule=hrule)
        else:
            o.update(pred=strict, rule=rule)
        outcomes.append(o)
    n = len(outcomes)
    acc = (lambda key: sum(o[key].lower() == str(o["gold"]).lower() for o in outcomes) / n if n else 0.0)  # noqa: E731
    summary = {"strict": acc("strict_pred"), "n": n,
               "n_empty": sum(1 for it in items if not str(it["resp"] or "").strip())}
    if matcher == "huatuo":
        first, last = acc("first"), acc("pred")
        summary["huatuo"] = {"first_match_acc": first, "last_match_acc": last,
                             "taken": "first" if first > last else "last"}
        for o in outcomes:
            o["taken"] = summary["huatuo"]["taken"]
        summary["value"] = first if first > last else last
    else:
        summary["value"] = summary["strict"]
    return summary, outcomes
