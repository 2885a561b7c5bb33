"""Check that each ``dvc.yaml`` stage lists, under ``deps``, the project code it runs.

A stage's entry points are the notebooks its ``cmd`` names (``notebooks/*.ipynb``) and the
modules it runs with ``python -m cdemi.xxx``.  From those, the ``cdemi`` modules they import are
followed statically with :mod:`ast`: absolute and relative imports, ``from pkg import submodule``,
imports inside functions (lazy imports count), and, as Python does, the ``__init__.py`` of every
package on the way to a module.  A file needs no entry of its own when a dep names it or a folder
above it.

``python -m cdemi.tools.stage_deps [dvc.yaml]`` prints, per stage, the files it needs that no dep covers,
deps naming project code that no longer exists, and imports of ``cdemi`` modules that do not
exist; it exits 1 if it printed any.  ``--suggest STAGE`` prints a deps list to paste instead.
"""
from __future__ import annotations

import argparse
import ast
import functools
import json
import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PACKAGE = "cdemi"
NOTEBOOK = re.compile(r"(?<![\w/.-])(notebooks/[\w./-]+\.ipynb)")
RUN_MODULE = re.compile(r"\bpython[\d.]*(?:\s+-[A-Za-z]+)*\s+-m\s+(" + PACKAGE + r"(?:\.\w+)*)")


@dataclass
class Needs:
    """What a set of entry points uses: ``files`` (repo-relative paths of the notebooks and
    project modules) and ``unresolved`` (dotted ``cdemi`` names imported but found nowhere)."""

    files: set[str] = field(default_factory=set)
    unresolved: set[str] = field(default_factory=set)


def module_file(root: Path, name: str) -> str | None:
    """The repo-relative file of dotted module ``name`` under ``root`` (``pkg/x.py`` or
    ``pkg/x/__init__.py``), or None when there is none."""
    base = Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / candidate).is_file():
            return candidate.as_posix()
    return None


def notebook_code(path: Path) -> str:
    """The Python source of the code cells of notebook ``path``, without IPython magic and shell
    lines (those starting with ``%`` or ``!``); a ``%%`` cell magic whose body is not Python is
    left out."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    chunks = []
    for number, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            ast.parse(code)
        except SyntaxError as err:
            if source.lstrip().startswith("%%"):
                continue
            raise SyntaxError(f"{path}, code cell {number}: {err.msg}") from err
        chunks.append(code)
    return "\n".join(chunks)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> dict[str, bool]:
    """Dotted names that the code ``tree`` of ``module`` may import, anywhere in it (function
    bodies included), each mapped to whether it must be a module: ``import a.b`` and ``from a
    import b`` need ``a.b`` / ``a``, while the ``a.b`` of ``from a import b`` may be a plain name.
    Relative imports are made absolute; names outside :data:`PACKAGE` are kept (dropped later)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((alias.name, True) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level <= len(package) else []
                if not base:
                    continue  # beyond the top package, or in a notebook: Python refuses it too
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                if alias.name != "*":
                    names.setdefault(f"{source}.{alias.name}", False)
            names[source] = True
    return names


def with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b", "a.b.c"]``: importing a module imports its packages first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(root: Path, modules=(), notebooks=()) -> Needs:
    """Every project file that running ``notebooks`` (repo-relative paths) and ``modules``
    (dotted names, as ``python -m`` runs them) imports, directly or not.

    :param root: the folder holding the :data:`PACKAGE` folder (the repo root).
    :returns: :class:`Needs` with the notebooks, the modules' files, and the names not found.
    """
    needs = Needs(files=set(notebooks))
    todo: list[tuple[str, bool]] = []
    for name in modules:
        todo.append((name, True))
        todo.append((f"{name}.__main__", False))  # ``python -m pkg`` runs pkg/__main__.py
    for notebook in notebooks:
        tree = ast.parse(notebook_code(root / notebook), filename=notebook)
        todo.extend(imported_names(tree, "__main__", is_package=False).items())
    seen: set[str] = set()
    while todo:
        name, required = todo.pop()
        if name.split(".")[0] != PACKAGE or name in seen:
            continue
        path = module_file(root, name)
        if path is None:
            if required:
                needs.unresolved.add(name)
            continue
        seen.add(name)
        needs.files.add(path)
        todo.extend((parent, True) for parent in with_parents(name)[:-1])
        todo.extend(_module_imports(root / path, name, (root / path).stat().st_mtime_ns))
    return needs


@functools.lru_cache(maxsize=4096)
def _module_imports(path: Path, name: str, mtime_ns: int) -> tuple[tuple[str, bool], ...]:
    """:func:`imported_names` of the module file ``path`` (cached while its ``mtime_ns`` holds)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return tuple(imported_names(tree, name, is_package=path.name == "__init__.py").items())


def _in_wdir(wdir: str, path: str) -> str:
    """``path`` as written in a stage whose ``wdir`` is ``wdir``, made repo-relative."""
    return posixpath.normpath(posixpath.join(wdir, str(path))).rstrip("/")


def _dep_path(dep) -> str:
    """The path of a ``deps`` entry (a string, or a one-key mapping with options)."""
    return next(iter(dep)) if isinstance(dep, dict) else str(dep)


def load_stages(dvc_yaml: Path) -> dict[str, dict]:
    """The stages of ``dvc_yaml`` by name; a ``foreach``/``matrix`` stage gives its ``do``
    template (``${...}`` left as written).  Each value has ``cmd`` (list of str) and ``deps``
    (repo-relative paths)."""
    stages = {}
    for name, stage in (yaml.safe_load(Path(dvc_yaml).read_text()) or {}).get("stages", {}).items():
        body = stage.get("do", stage)
        wdir = body.get("wdir", ".")
        cmd = body.get("cmd", [])
        stages[name] = {
            "cmd": [cmd] if isinstance(cmd, str) else list(cmd),
            "deps": [_in_wdir(wdir, _dep_path(dep)) for dep in body.get("deps", [])],
        }
    return stages


def entry_points(cmd: list[str]) -> tuple[set[str], set[str]]:
    """The ``(notebooks, modules)`` that the commands ``cmd`` run: ``notebooks/*.ipynb`` paths and
    the dotted names after ``python -m`` (``cdemi`` modules only)."""
    text = "\n".join(cmd)
    return set(NOTEBOOK.findall(text)), set(RUN_MODULE.findall(text))


def covered(path: str, deps: list[str]) -> bool:
    """Whether a dep is ``path`` itself or a folder above it."""
    return any(path == dep or path.startswith(dep + "/") for dep in deps)


def stage_needs(dvc_yaml: Path) -> dict[str, Needs]:
    """Per stage of ``dvc_yaml``: the project files its entry points use (:class:`Needs`)."""
    root = Path(dvc_yaml).resolve().parent
    result = {}
    for name, stage in load_stages(dvc_yaml).items():
        notebooks, modules = entry_points(stage["cmd"])
        result[name] = import_closure(root, modules, notebooks)
    return result


def missing_deps(dvc_yaml: Path) -> dict[str, set[str]]:
    """Per stage of ``dvc_yaml``, the files (repo-relative) it needs that no dep covers;
    stages missing nothing are left out."""
    stages = load_stages(dvc_yaml)
    missing = {}
    for name, needs in stage_needs(dvc_yaml).items():
        gap = {path for path in needs.files if not covered(path, stages[name]["deps"])}
        if gap:
            missing[name] = gap
    return missing


def stale_deps(dvc_yaml: Path) -> dict[str, list[str]]:
    """Per stage, the deps under ``cdemi/`` or ``notebooks/`` that name nothing on disk
    (a module moved away); stages with none are left out."""
    root = Path(dvc_yaml).resolve().parent
    stale = {}
    for name, stage in load_stages(dvc_yaml).items():
        gone = [dep for dep in stage["deps"]
                if dep.split("/")[0] in (PACKAGE, "notebooks") and "${" not in dep and not (root / dep).exists()]
        if gone:
            stale[name] = gone
    return stale


def _sources(root: Path, folder: str) -> set[str]:
    """The ``.py`` files under repo-relative ``folder``, as repo-relative paths."""
    return {p.relative_to(root).as_posix() for p in (root / folder).rglob("*.py") if "__pycache__" not in p.parts}


def _ancestors(folder: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]`` (the folders above it, within the repo)."""
    parts = folder.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def minimal_deps(dvc_yaml: Path, stage: str) -> list[str]:
    """A deps list for ``stage``: the notebooks, then the project files it needs, a package folder
    standing for its files when the stage needs every ``.py`` file under it, then the stage's other
    (non-code) deps as written.  Nothing is rewritten."""
    root = Path(dvc_yaml).resolve().parent
    needs = stage_needs(dvc_yaml)[stage].files
    code = sorted(path for path in needs if not path.endswith(".ipynb"))
    folders = {posixpath.dirname(path) for path in code}
    folders |= {parent for folder in folders for parent in _ancestors(folder)}
    whole = {folder for folder in folders if _sources(root, folder) <= needs}
    whole = {f for f in whole if not any(a in whole for a in _ancestors(f))}  # outermost only
    listed = sorted(whole | {path for path in code if not covered(path, whole)})
    notebooks = sorted(path for path in needs if path.endswith(".ipynb"))
    others = [dep for dep in load_stages(dvc_yaml)[stage]["deps"]
              if dep.split("/")[0] not in (PACKAGE, "notebooks") or "${" in dep]
    return notebooks + listed + others


def print_minimal_deps(dvc_yaml: Path, stage: str, file=None) -> None:
    """Print ``stage``'s :func:`minimal_deps` as YAML list lines, ready to paste under ``deps:``."""
    for dep in minimal_deps(dvc_yaml, stage):
        print(f"- {dep}", file=file or sys.stdout)


def main(argv: list[str] | None = None) -> int:
    """CLI: report every stage's uncovered files, stale deps and unknown imports; :returns: 1 if
    any, else 0.  With ``--suggest STAGE``, print that stage's deps list instead (returns 0)."""
    parser = argparse.ArgumentParser(prog="python -m cdemi.tools.stage_deps", description=__doc__.split("\n\n")[0])
    parser.add_argument("dvc_yaml", nargs="?", default="dvc.yaml", type=Path)
    parser.add_argument("--suggest", metavar="STAGE", help="print a deps list for STAGE to paste")
    args = parser.parse_args(argv)
    if args.suggest:
        print_minimal_deps(args.dvc_yaml, args.suggest)
        return 0
    problems = 0
    stale = stale_deps(args.dvc_yaml)
    missing = missing_deps(args.dvc_yaml)
    for name, needs in stage_needs(args.dvc_yaml).items():
        lines = [f"  missing: {path}" for path in sorted(missing.get(name, ()))]
        lines += [f"  stale dep: {path}" for path in stale.get(name, [])]
        lines += [f"  unknown import: {module}" for module in sorted(needs.unresolved)]
        if lines:
            print(f"{name}:", *lines, sep="\n")
            problems += len(lines)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
