"""The package's shape, checked from its source (docs/architecture.md): layers that import only downwards, no import
cycles, a short package root, no module name used twice, and every ``_target_`` in ``conf/`` one import away."""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "diq"

# lowest first: a module may import from its own layer or a lower one, never from a higher one
LAYERS = ["diq", "diq.errors", "diq.logs", "diq.artifacts", "diq.record", "diq.args", "diq.engine", "diq.config", "diq.tasks",
          "diq.stages.base",
          "diq.stages.pool", "diq.stages.score", "diq.stages.select", "diq.stages.train", "diq.stages.dpo",
          "diq.stages.evaluate", "diq.stages", "diq.run", "diq.practice", "diq.report", "diq.tools", "diq.cli"]
SAME_FLOOR = {"diq.errors": "diq.logs"}  # two base modules that import neither each other nor anything above


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        if "data" in p.relative_to(PKG).parts[:1]:
            continue
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Every diq module each module imports, at module level or inside a function."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                if base != "diq" and not base.startswith("diq."):
                    continue
                for a in node.names:
                    full = f"{base}.{a.name}"
                    edges[name].add(full if full in mods else base)
            elif isinstance(node, ast.Import):
                edges[name].update(a.name for a in node.names if a.name.split(".")[0] == "diq")
    return edges


def _layer(mod: str) -> int:
    best = max((x for x in LAYERS if mod == x or mod.startswith(x + ".")), key=len)
    return LAYERS.index(SAME_FLOOR.get(best, best))


MODS = _modules()
EDGES = _imports(MODS)


def test_every_module_has_a_layer():
    assert all(_layer(m) >= 0 for m in MODS)
    assert set(MODS) >= {"diq.run.frame", "diq.stages.score", "diq.engine.influence", "diq.config.checks"}


def test_no_import_runs_back_up():
    upward = sorted(f"{a} → {b}" for a, bs in EDGES.items() for b in bs if _layer(b) > _layer(a))
    assert not upward, "imports from a higher layer (move the shared code down, or the importer up):\n" + "\n".join(upward)


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: every component is one module."""
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in EDGES.get(v, ()):
            if w not in MODS or w == v:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(MODS):
        if m not in index:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"


def test_short_package_root_and_no_name_used_twice():
    root = sorted(p.name for p in PKG.glob("*.py"))
    assert len(root) <= 12, root
    names = defaultdict(list)
    for m in MODS:
        leaf = m.rsplit(".", 1)[-1]
        if leaf != "__main__" and m != "diq":
            names[leaf].append(m)
    twice = {k: v for k, v in names.items() if len(v) > 1}
    assert not twice, f"one name, several modules: {twice}"


def test_the_layer_rule_can_fail():
    """The checks above see a real upward import and a real cycle (so a passing run means something)."""
    assert _layer("diq.stages.score.context") > _layer("diq.stages.pool.load")
    assert _layer("diq.config.checks") < _layer("diq.run.validate")
    assert "diq.stages.pool.load" in EDGES["diq.stages.score.context"]  # the score context reads the pool's loader
    assert "diq.engine.projection" in EDGES["diq.stages.score"]  # function-level imports are seen too (check)
    assert "diq.run.pipeline" in EDGES["diq.run.validate"]


def _targets():
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        def walk(x, where):
            if isinstance(x, dict):
                for k, v in x.items():
                    if k == "_target_" and isinstance(v, str) and v.startswith("diq."):
                        yield where, v
                    else:
                        yield from walk(v, where)
            elif isinstance(x, list):
                for v in x:
                    yield from walk(v, where)
        yield from walk(yaml.safe_load(path.read_text()) or {}, str(path.relative_to(ROOT)))


@pytest.mark.parametrize("where,target", list(_targets()))
def test_every_conf_target_is_one_import_away(where, target):
    """From a config name to its code in one hop: conf/<group>/<name>.yaml's ``_target_`` imports."""
    module, _, attr = target.rpartition(".")
    assert callable(getattr(importlib.import_module(module), attr)), f"{where}: {target}"


def test_each_stage_checks_its_own_block_and_validate_keeps_the_cross_group_rules():
    """``diq/run/validate.py`` names no stage's keys: each stage's ``check`` does (``Stage.check``), a strategy checks
    its own keys when built. A block moved back into validate fails here."""
    from diq.run.pipeline import PLAN
    from diq.stages.base import Stage

    src = (PKG / "run" / "validate.py").read_text()
    for key in ("train.", "eval.", "dpo.", "preference.", "scoring.influence.", "scoring.less.", "scoring.validation",
                "pool.limit", "selection.tau_d", "selection.quadrants", "budget.fraction"):
        assert f'"{key}' not in src and f"f\"{key}" not in src, f"{key} is checked in run/validate.py"
    own = {s.name for s in PLAN if type(s).check is not Stage.check}
    assert own == {"pool", "score", "select", "train", "dpo", "eval"}, own
