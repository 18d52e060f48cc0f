"""The layering of docs/architecture.md, read off the source: numerics → fit → adapters.

* the ground floor (scores, options, argparsing, device) imports no other module of the package
  but each other;
* numerics (registry, options, scores, bounds, nce, nce_kernels, critics, copula, tasks, arrays, ksg,
  device) import neither the fit layer nor the adapters;
* the fit layer (fit, estimation, training, the validation suites) imports no adapter (cli, io,
  the report writer) and the core never imports ``mi_estimators.validation`` outside that package
  and the command line;
* no function in ``mi_estimators/`` or ``plugins/`` is longer than 60 lines or takes more than 8
  parameters (``self``/``cls`` and ``*args``/``**kwargs`` aside), no class is longer than 250 lines
  and no module longer than 450;
* no file of the repository cites a path outside it;
* no module imports another module's private (``_name``) name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "mi_estimators"

GROUND = ["scores", "options", "argparsing", "device", "process"]
NUMERICS = ["registry", "options", "argparsing", "scores", "bounds", "nce", "nce_kernels", "jackknife", "critics",
            "copula", "tasks", "arrays", "ksg", "device", "process"]
FIT = ["fit", "estimation", "training", "validation"]
ADAPTERS = ["cli", "io", "validation.report", "validation.consistency_report"]


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``mi_estimators...`` module a file imports, at any depth (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("mi_estimators")}


def _in(module: str, layer: list[str]) -> bool:
    return any(module == f"mi_estimators.{p}" or module.startswith(f"mi_estimators.{p}.") for p in layer)


def _files(layer: list[str]) -> list[Path]:
    return [p for p in sorted(CORE.rglob("*.py")) if _in(_module(p), layer) and not _in(_module(p), ADAPTERS)]


@pytest.mark.parametrize("path", _files(NUMERICS), ids=lambda p: _module(p))
def test_numerics_import_no_fit_layer_and_no_adapter(path):
    bad = {m for m in _imports(path) if _in(m, FIT) or _in(m, ADAPTERS)}
    assert not bad, f"{_module(path)} (numerics) imports {sorted(bad)}"


@pytest.mark.parametrize("path", _files(FIT), ids=lambda p: _module(p))
def test_fit_layer_imports_no_adapter(path):
    module = _module(path)
    bad = {m for m in _imports(path) if _in(m, ADAPTERS)}
    if not module.startswith("mi_estimators.validation"):
        bad |= {m for m in _imports(path) if _in(m, ["validation"])}
    if module == "mi_estimators.validation":  # the suites may hand their results to the report writer
        bad -= {"mi_estimators.validation.report", "mi_estimators.validation.report.write_report"}
    assert not bad, f"{module} (fit layer) imports {sorted(bad)}"


@pytest.mark.parametrize("path", _files(GROUND), ids=lambda p: _module(p))
def test_ground_floor_imports_only_the_ground_floor(path):
    bad = {m for m in _imports(path) if not _in(m, GROUND) and m != "mi_estimators"}
    assert not bad, f"{_module(path)} (ground floor) imports {sorted(bad)}"


def _private_imports(path: Path) -> list[str]:
    """Every ``from X import _name`` of the file (a private module such as ``torch.utils._pytree`` may
    be imported from; a private name may not)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def _python_files():
    for sub in ("mi_estimators", "plugins", "tests", "benchmarks", "studies"):
        for path in sorted((ROOT / sub).rglob("*.py")):
            if ".venv" not in path.parts:
                yield path


def test_no_module_imports_a_private_name():
    bad = [f"{path.relative_to(ROOT)}: {name}" for path in _python_files() for name in _private_imports(path)]
    assert not bad, "imports of private names:\n" + "\n".join(bad)


def _functions():
    for sub in ("mi_estimators", "plugins"):
        for path in sorted((ROOT / sub).rglob("*.py")):
            if "tests" in path.parts or ".venv" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield path.relative_to(ROOT), node


def test_no_function_is_longer_than_60_lines():
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node in _functions() if node.end_lineno - node.lineno + 1 > 60]
    assert not long, "functions over 60 lines:\n" + "\n".join(long)


def test_no_function_takes_more_than_8_parameters():
    def count(node) -> int:
        a = node.args
        names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
        return len([n for n in names if n not in ("self", "cls")])
    wide = [f"{path}:{node.lineno} {node.name} ({count(node)} parameters)"
            for path, node in _functions() if count(node) > 8]
    assert not wide, "functions with more than 8 parameters:\n" + "\n".join(wide)


def _sources():
    for sub in ("mi_estimators", "plugins"):
        for path in sorted((ROOT / sub).rglob("*.py")):
            if "tests" not in path.parts and ".venv" not in path.parts:
                yield path


def test_no_class_over_250_lines_and_no_module_over_450():
    big = []
    for path in _sources():
        text = path.read_text()
        if len(text.splitlines()) > 450:
            big.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        big += [f"{path.relative_to(ROOT)}:{node.lineno} class {node.name} ({node.end_lineno - node.lineno + 1} lines)"
                for node in ast.walk(ast.parse(text))
                if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 250]
    assert not big, "too long:\n" + "\n".join(big)


def test_no_file_cites_a_path_outside_the_repository():
    """The project explains itself: no reference to the notes kept beside the repository."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    needle = "../" + "shared"
    bad = [f for f in tracked if f.endswith((".py", ".md", ".toml", ".txt", ".cfg")) and (ROOT / f).is_file()
           and needle in (ROOT / f).read_text(errors="ignore")]
    assert not bad, f"files citing {needle}: {bad}"
