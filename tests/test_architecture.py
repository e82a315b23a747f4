"""The shape every view follows (issue 31), checked on the source: a core view is a Spec, a Report and a
`build`; every pane derives from the one Pane base and stays small; no import circles among core/ and tui/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PANE_MAX_LINES = 350


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def test_each_core_view_defines_a_spec_a_report_and_build():
    views = sorted(p for p in (ROOT / "core" / "views").glob("*.py") if p.name != "__init__.py")
    assert views
    for path in views:
        top = _tree(path).body
        classes = [n.name for n in top if isinstance(n, ast.ClassDef)]
        functions = [n.name for n in top if isinstance(n, ast.FunctionDef)]
        assert any(c.endswith("Spec") for c in classes), f"{path.name}: no …Spec class"
        assert any(c.endswith("Report") for c in classes), f"{path.name}: no …Report class"
        assert "build" in functions, f"{path.name}: no build()"


def test_every_registered_pane_derives_from_the_base_and_stays_small():
    from spectrascope.tui.panes import PANES
    from spectrascope.tui.panes.base import Pane

    for entry in PANES:
        assert issubclass(entry.pane_class(), Pane), entry.cls
    for path in (ROOT / "tui" / "panes").glob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= PANE_MAX_LINES, f"{path.name} has {lines} lines (at most {PANE_MAX_LINES})"


def test_the_app_names_no_pane_class():
    app = (ROOT / "tui" / "app.py").read_text()
    assert not re.search(r"\b(Logits|Spectrum|Pairing|Steering|Layers|Anchor)Pane\b", app)


def _imports(path: Path, module: str, package: str) -> set[str]:
    """Every module this file imports (function-local and type-only imports included)."""
    names = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def test_no_import_circles_among_core_and_tui():
    files = [p for root in ("core", "tui") for p in (ROOT / root).rglob("*.py")]
    mods = {"spectrascope." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in files}
    graph = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        graph[mod] = {n for n in _imports(path, mod, package) if n in mods and n != mod}
    # a circle = a module that reaches itself
    circles = []
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            m = stack.pop()
            if m == start:
                circles.append(start)
                break
            if m not in seen:
                seen.add(m)
                stack.extend(graph[m])
    assert circles == []
