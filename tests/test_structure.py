"""The layout's rules, checked: the import contracts of setup.cfg (lint-imports), no import circle anywhere, no
module longer than a sitting, no module reaching into another's underscore names, and each shared protocol
(torch.load, atomic rename, file hashing, device parsing) written once."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.datasets import REPO_ROOT

PACKAGES = ("labelers", "pipeline", "train")
MAX_LINES = 400


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO_ROOT / folder).rglob("*.py"))


def _calls(path: Path, dotted: str) -> list[int]:
    """Lines of ``path`` that call ``dotted`` (e.g. ``torch.load``, ``os.replace``)."""
    owner, name = dotted.rsplit(".", 1)
    return [node.lineno for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name
            and isinstance(node.func.value, ast.Name) and node.func.value.id == owner]


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--config", str(REPO_ROOT / "setup.cfg")], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "4 kept, 0 broken" in proc.stdout


def test_the_import_graph_has_no_circle():
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def visit(module: str) -> None:                      # Tarjan's strongly connected components
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert circles == []


def test_no_module_is_longer_than_a_sitting():
    long = {str(p.relative_to(REPO_ROOT)): n for p in _modules(*PACKAGES, "bench")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_module_imports_another_modules_underscore_names():
    found = []
    for path in _modules(*PACKAGES, "bench"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                found += [f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.module}.{a.name}"
                          for a in node.names if a.name.startswith("_")]
    assert found == []


@pytest.mark.parametrize("call, home", [
    ("torch.load", {"train/common/checkpoints.py", "labelers/ultralytics/checkpoints.py", "labelers/gma/weights.py"}),
    ("os.replace", {"pipeline/core/files.py"}),
    ("os.fsync", {"pipeline/core/files.py"}),
    ("hashlib.sha256", {"labelers/weights.py", "pipeline/core/files.py", "train/common/seeding.py"}),
    ("torch.device", {"labelers/device.py"}),
])
def test_each_protocol_is_written_once(call, home):
    """torch.load: the trainers' one checkpoint reader, and the two teachers' weights readers (labelers may import
    nothing of ours); atomic writes; hashing (files and folders, and the seeds mixed from integers); devices."""
    where = {str(p.relative_to(REPO_ROOT)) for p in _modules(*PACKAGES) if _calls(p, call)}
    assert where <= home and where, f"{call} is called in {sorted(where - home)}"


CHOICE_HOMES = ("train/common/choices.py", "pipeline/core/choices.py")


def _word_lists(path: Path) -> list[tuple[int, frozenset[str]]]:
    """(line, words) of every tuple or list of two or more string literals in ``path``."""
    return [(node.lineno, frozenset(e.value for e in node.elts)) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) >= 2
            and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)]


def test_each_options_choices_are_declared_in_one_place():
    """Every option's words are spelled out once, in the choices modules: no other module of the project (nor the
    bench) writes the same set of words again, and no ``click.Choice`` lists literal words of its own."""
    declared = {words: f"{home}:{line}" for home in CHOICE_HOMES for line, words in _word_lists(REPO_ROOT / home)}
    assert len(declared) >= 12
    again, literal = [], []
    for path in _modules(*PACKAGES, "bench"):
        where = str(path.relative_to(REPO_ROOT))
        if where in CHOICE_HOMES:
            continue
        again += [f"{where}:{line} repeats {declared[words]}" for line, words in _word_lists(path) if words in declared]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Choice" \
                    and node.args and isinstance(node.args[0], (ast.List, ast.Tuple)) \
                    and all(isinstance(e, ast.Constant) for e in node.args[0].elts):
                literal.append(f"{where}:{node.lineno}")
    assert again == [] and literal == []
