"""Answer extraction for diq's lm-eval tasks: diq's strict-first matcher and HuatuoGPT-o1's order, with the rule that
decided each item (recorded per item by ``diq.evaluate``)."""

from __future__ import annotations

import re

RULES = ("answer_is", "label", "option_text", "none")  # diq's strict-first order; each item's rule is recorded
HUATUO_RULES = ("answer_is", "letter", "option_text", "most_similar")


def _final(text: str) -> str:
    return text.split("## Final Response")[-1]


def match_answer(text, letters: list[str], options: list[str]) -> tuple[str, str]:
    """diq's matcher, strict first → ``(letter or "[invalid]", rule)``:

    1. ``answer_is``: the last "the (correct|final|best) answer/choice/option is (X)" anywhere;
    2. ``label``: the final-response section opens with one option label ("B.", "(B)", "B)", "**B**") and no
       other label opens a line (a reply that repeats the option list is not an answer);
    3. ``option_text``: the final-response section *is* one option's text (optionally after its label);
    4. ``none``: nothing else is guessed — a letter inside a sentence ("lacks vitamin D."), a trailing word that
       happens to be an option ("There is no") or a hedge ("(B) is unlikely") decides nothing.
    """
    if not isinstance(text, str):
        return "[invalid]", "none"
    cls = "".join(letters)
    m = re.findall(rf"\b(?:[Tt]he\s+)?(?:correct\s+|final\s+|best\s+|right\s+)?(?:[Aa]nswer|[Cc]hoice|[Oo]ption)"
                   rf"\s*(?:is|would be|:)\s*:?\s*\**\s*\(?([{cls}])\)?(?![A-Za-z0-9])", text)
    if m:
        return m[-1], "answer_is"
    tail = _final(text).strip()
    label = re.compile(rf"^\s*(?:\*\*)?\(?([{cls}])(?:\)|\.|:|\*\*|\s*$)", flags=re.M)
    first = label.match(tail)
    if first:
        all_labels = {x for x in label.findall(tail)}
        if all_labels == {first.group(1)}:
            return first.group(1), "label"
    norm = lambda x: re.sub(r"[\s.*:()]+", " ", x).strip().lower()  # noqa: E731
    t = norm(tail)
    for l, o in zip(letters, options):
        if t and (t == norm(o) or t == norm(f"{l} {o}")):
            return l, "option_text"
    return "[invalid]", "none"


def match_huatuo(text, letters: list[str], options: list[str]) -> tuple[str, str]:
    """HuatuoGPT-o1's answer-matching order (re-implemented from its description, for comparability with its
    tables and m1's): the final-response section; the last "answer is X"; else the last standalone option letter;
    else the option whose text occurs last; else the option most similar to the reply (always answers)."""
    import difflib

    if not isinstance(text, str):
        return "[invalid]", "none"
    if "## Final Response\n\n" in text:
        text = text.split("## Final Response\n\n")[-1]
    cls = "".join(letters)
    m = re.findall(rf"answer is\s*?([{cls}])", text, flags=re.S)
    if m:
        return m[-1], "answer_is"
    m = re.findall(rf"(?:^|[^A-Za-z0-9])(?![aA] )([{cls}])(?:[^A-Za-z0-9]|$)", text, flags=re.S)
    if m:
        return m[-1], "letter"
    low = text.lower()
    pos = [(low.rindex(o.lower()), l) for l, o in zip(letters, options) if o and o.lower() in low]
    if pos:
        return max(pos)[1], "option_text"
    sims = [difflib.SequenceMatcher(None, o.lower(), low).ratio() for o in options]
    return letters[max(range(len(options)), key=lambda i: sims[i])], "most_similar"


MATCHERS = {"diq": match_answer, "huatuo": match_huatuo}


def extract_letter(text: str, letters: list[str], options: list[str], matcher: str = "diq") -> str:
    return MATCHERS[matcher](text, letters, options)[0]


def extract_filter(resps, docs, matcher: str = "diq"):
    return [[extract_letter(r, d["letters"], d["options"], matcher) for r in rs] for rs, d in zip(resps, docs)]
