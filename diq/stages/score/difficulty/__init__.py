"""Difficulty D(z): LLM judge (rubric, 1–5 per perspective), a sequence classifier trained on judge labels,
and cheap proxies (reasoning length, response loss, IFD, base-model pass rate). Higher = harder."""

PERSPECTIVES = ("knowledge", "reasoning", "overall")


def check_perspective(p: str) -> str:
    from diq.errors import DiqError

    if p not in PERSPECTIVES:
        raise DiqError(f"unknown difficulty perspective {p!r}\n  fix: choose one of {', '.join(PERSPECTIVES)}")
    return p
