"""The package's layout (docs/DESIGN.md, section 5 "Layout"): subpackages by
job with no import cycle among rfp's modules (imports inside functions
included), no module past ~600 lines, every subpackage saying its job, and
the design document's map matching the tree."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python" / "rfp"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def targets(name: str, path: Path) -> set:
    """The rfp modules that ``name`` imports, anywhere in its file.  Importing
    ``rfp.a.b`` also runs the package ``rfp.a``'s ``__init__``; the root
    ``rfp`` is the entry point and is never a target (``from rfp import
    alerts`` imports the submodule ``rfp.alerts``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            mods = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for m in mods:
            if m in MODULES:
                parts = m.split(".")
                found.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    found.discard(name)
    return {m for m in found if m in MODULES and m != "rfp"}


GRAPH = {name: targets(name, path) for name, path in MODULES.items()}


def test_the_graph_sees_imports_inside_functions():
    # persist.write is imported inside FittedModel.save only
    assert "rfp.persist.write" in GRAPH["rfp.training.fitted"]
    assert "rfp.core.bilevel" in GRAPH["rfp.training.train"]


def test_no_import_cycle_among_rfp_modules():
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_names_from_the_root_package():
    # `from rfp import fit` inside the package would be a cycle through the
    # root's __init__ that the graph above does not draw
    bad = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "rfp" and name != "rfp":
                bad += [f"{name}: {a.name}" for a in node.names if f"rfp.{a.name}" not in MODULES]
    assert not bad


def test_modules_stay_small():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert max(sizes.values()) <= 600, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_every_subpackage_says_its_job():
    for path in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc) > 60, path


def test_the_design_map_matches_the_tree():
    design = (ROOT / "docs/DESIGN.md").read_text()
    section = design[design.index("## 5. Layout"):]
    section = section[: section.index("\n## ", 5)]
    listed = set(re.findall(r"`(python/rfp/[\w/]+\.py)`", design))
    files = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
             if p.name != "__init__.py" or p.parent == PACKAGE}
    assert files - listed == set(), "modules missing from docs/DESIGN.md's map"
    assert listed - files == set(), "docs/DESIGN.md names modules that do not exist"
    r_listed = set(re.findall(r"`(R/[\w.-]+\.R)`", section))
    r_files = {str(p.relative_to(ROOT)) for p in (ROOT / "R").glob("*.R")}
    assert r_files - r_listed == set(), "R files missing from the map"
    assert r_listed - r_files == set(), "the map names R files that do not exist"


def resolve(dotted: str):
    """Import the longest module prefix of ``dotted``, then walk attributes."""
    import importlib
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_python_name_in_the_docs_resolves():
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "vignettes").glob("*.Rmd")]
    names = set()
    for path in texts:
        text = re.sub(r"options\(rfp\.\w+", "", path.read_text())   # R options are not Python
        names |= set(re.findall(r"(?<![\w/])rfp(?:\.[A-Za-z_]\w*)+", text))
    names = {n.rstrip(".") for n in names if not n.endswith((".py", ".md", ".R"))}
    assert len(names) > 10
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"names in the docs that do not resolve: {missing}"
