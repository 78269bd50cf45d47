"""``diq``: one command for every entry point. ``diq run …`` takes Hydra's overrides exactly as ``python -m diq.run``
does (which keeps working, as does every ``python -m diq.<tool>``)."""

from __future__ import annotations

import importlib
import sys

# subcommand → (module:function taking argv, one line of help)
COMMANDS = {
    "run": ("diq.run:main", "one run or a sweep (-m): pool → score → select → train → evaluate → record (Hydra overrides)"),
    "report": ("diq.report.command:main", "tables, provenance and plots from the records (results/)"),
    "bench": ("diq.tools.bench:main", "measured performance of the influence engine and its peers (benchmarks/)"),
    "diagnose": ("diq.tools.diagnose:main", "what this machine can run: models, data, devices, the cache"),
    "difficulty": ("diq.stages.score.difficulty.__main__:main", "difficulty ratings from a judge, and the difficulty classifier"),
    "practice": ("diq.practice.__main__:main", "expert practice: samples and generations for physicians to rate"),
    "fixtures": ("diq.tools.fixtures:main", "write the hub-shaped fixtures the offline configuration reads"),
    "knowledge": ("diq.stages.pool.knowledge:main", "the planted-knowledge domain's files, and its wrong-fact analysis"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: diq <command> [arguments]   (diq <command> --help for its own)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        print(f"diq: unknown command {name!r}" + (f"; did you mean {close[0]!r}?" if close else "") + "\n\n" + usage(),
              file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module, func = target.split(":")
    if name == "run":  # exactly `python -m diq.run …`: Hydra reads sys.argv and finds conf/ from the script's file
        import runpy

        sys.argv = [f"{sys.argv[0]} run", *rest]
        runpy.run_module(module, run_name="__main__", alter_sys=True)  # exits itself on error (2: a named error)
        return 0
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
