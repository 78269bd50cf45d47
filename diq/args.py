"""One argument parser and one argument check for every ``diq <command>`` beside ``diq run`` (which takes Hydra's
overrides): the help names the command users type, and counts out of range are named errors (exit 2) with the flag
and the fix, the same way in every tool."""

from __future__ import annotations

import argparse

from diq.errors import DiqError


def parser(command: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``diq <command>`` (also ``python -m <its module>``): its docstring as the description."""
    return argparse.ArgumentParser(prog=f"diq {command}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def check_minimums(args: argparse.Namespace, lows: dict[str, int]) -> None:
    """A command line's counts: ``--<name>`` ≥ its minimum, for the arguments the (sub)command has."""
    for name, lo in lows.items():
        v = getattr(args, name, None)
        if v is not None and v < lo:
            raise DiqError(f"--{name.replace('_', '-')}={v} is out of range: use a value ≥ {lo}")
