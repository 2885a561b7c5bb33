"""Every dvc.yaml stage lists the project code it imports, and the import resolver behind that check."""
from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from cdemi.tools.stage_deps import (covered, entry_points, import_closure, main, minimal_deps, missing_deps,
                              notebook_code, stage_needs, stale_deps)

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_lists_the_project_modules_it_imports():
    missing = missing_deps(ROOT / "dvc.yaml")
    assert not missing, "dvc.yaml deps miss imported code (python -m cdemi.tools.stage_deps --suggest STAGE):\n" + "\n".join(
        f"{stage}: {', '.join(sorted(files))}" for stage, files in missing.items())


def test_no_stage_imports_a_module_that_does_not_exist():
    unresolved = {name: needs.unresolved for name, needs in stage_needs(ROOT / "dvc.yaml").items() if needs.unresolved}
    assert not unresolved


def test_no_stage_depends_on_code_that_moved_away():
    assert not stale_deps(ROOT / "dvc.yaml")


# --- the resolver, on a tiny fake project ---------------------------------------------------------

FAKE = {
    "cdemi/__init__.py": "",
    "cdemi/a.py": "from .b import helper\n",
    "cdemi/b.py": "import os\n\ndef helper():\n    from .lazy import value  # only when called\n    return value\n",
    "cdemi/lazy.py": "value = 1\n",
    "cdemi/unused.py": "",
    "cdemi/pkg/__init__.py": "from .inner import X\n",
    "cdemi/pkg/inner.py": "from .deeper import X\n",
    "cdemi/pkg/deeper.py": "from .. import a\nX = 1\n",
    "cdemi/pkg/other.py": "",
    "cdemi/pkg/sub/__init__.py": "",
    "cdemi/pkg/sub/leaf.py": "import cdemi.lazy\n",
    "cdemi/tool/__init__.py": "",
    "cdemi/tool/__main__.py": "from cdemi.pkg.sub import leaf\n",
}
NOTEBOOK_CELLS = [
    ("markdown", "# title\nfrom cdemi import unused\n"),
    ("code", "%matplotlib inline\n!pip list\nimport numpy as np\nfrom cdemi.pkg import X\n"),
    ("code", "%%bash\necho not python\n"),
]
DVC_YAML = """\
stages:
  plain:
    cmd: python -m cdemi.tool --flag
    deps:
      - cdemi/tool
      - cdemi/pkg
  looped:
    foreach: ${runs}
    do:
      cmd: papermill notebooks/nb.ipynb reports/${key}.ipynb -p run ${key}
      deps:
        - notebooks/nb.ipynb
        - cdemi/pkg
        - ${data.root}/${item.dataset}
"""


@pytest.fixture
def fake(tmp_path) -> Path:
    for path, text in FAKE.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    cells = [{"cell_type": kind, "metadata": {}, "source": src.splitlines(keepends=True),
              **({"outputs": [], "execution_count": None} if kind == "code" else {})} for kind, src in NOTEBOOK_CELLS]
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks/nb.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                                             "nbformat_minor": 5}))
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    return tmp_path


def files_of(root, modules=(), notebooks=()):
    needs = import_closure(root, set(modules), set(notebooks))
    assert not needs.unresolved
    return needs.files


def test_relative_and_lazy_imports_are_followed(fake):
    assert files_of(fake, ["cdemi.a"]) == {"cdemi/__init__.py", "cdemi/a.py", "cdemi/b.py", "cdemi/lazy.py"}


def test_a_package_init_re_export_chain_is_followed(fake):
    # pkg/__init__ -> .inner -> .deeper -> `from .. import a` (a submodule named by from-import) -> b -> lazy
    assert files_of(fake, ["cdemi.pkg"]) == {
        "cdemi/__init__.py", "cdemi/pkg/__init__.py", "cdemi/pkg/inner.py", "cdemi/pkg/deeper.py",
        "cdemi/a.py", "cdemi/b.py", "cdemi/lazy.py"}


def test_importing_a_submodule_runs_its_packages(fake):
    assert {"cdemi/pkg/__init__.py", "cdemi/pkg/inner.py", "cdemi/pkg/other.py"} <= files_of(fake, ["cdemi.pkg.other"])


def test_python_m_on_a_package_runs_its_main_and_from_pkg_import_submodule(fake):
    files = files_of(fake, ["cdemi.tool"])
    assert {"cdemi/tool/__init__.py", "cdemi/tool/__main__.py", "cdemi/pkg/sub/__init__.py",
            "cdemi/pkg/sub/leaf.py", "cdemi/lazy.py"} <= files
    assert "cdemi/pkg/other.py" not in files and "cdemi/unused.py" not in files


def test_a_notebook_with_magics_is_read_as_its_code_cells(fake):
    code = notebook_code(fake / "notebooks/nb.ipynb")
    assert "matplotlib" not in code and "pip" not in code and "unused" not in code
    files = files_of(fake, notebooks=["notebooks/nb.ipynb"])
    assert "notebooks/nb.ipynb" in files and "cdemi/pkg/deeper.py" in files and "cdemi/unused.py" not in files


def test_an_import_of_a_missing_module_is_reported(fake):
    (fake / "cdemi/broken.py").write_text("from cdemi.gone import thing\nfrom cdemi.pkg import not_a_module\n")
    assert import_closure(fake, {"cdemi.broken"}).unresolved == {"cdemi.gone"}


def test_entry_points_are_notebooks_and_python_m_modules():
    cmd = ["mkdir -p reports/x && papermill --log-output notebooks/train.ipynb reports/x/${key}.ipynb -p out a.pt",
           ".venv/bin/python -m cdemi.data fashion_mnist data/fashion_mnist && python -m pip list"]
    assert entry_points(cmd) == ({"notebooks/train.ipynb"}, {"cdemi.data"})


def test_a_dep_covers_itself_and_what_is_below_it():
    assert covered("cdemi/pkg/x.py", ["cdemi/pkg"]) and covered("cdemi/pkg/x.py", ["cdemi/pkg/x.py"])
    assert not covered("cdemi/pkg/x.py", ["cdemi/pk"]) and not covered("cdemi/pkg/x.py", ["cdemi/pkg/x"])


def test_missing_deps_per_stage_including_foreach_templates(fake, capsys):
    assert missing_deps(fake / "dvc.yaml") == {
        "plain": {"cdemi/__init__.py", "cdemi/a.py", "cdemi/b.py", "cdemi/lazy.py"},
        "looped": {"cdemi/__init__.py", "cdemi/a.py", "cdemi/b.py", "cdemi/lazy.py"},
    }
    assert main([str(fake / "dvc.yaml")]) == 1
    assert "looped:\n  missing: cdemi/__init__.py" in capsys.readouterr().out


def test_minimal_deps_name_a_folder_only_when_every_file_is_needed(fake):
    assert minimal_deps(fake / "dvc.yaml", "plain") == [
        "cdemi/__init__.py", "cdemi/a.py", "cdemi/b.py", "cdemi/lazy.py", "cdemi/pkg/__init__.py",
        "cdemi/pkg/deeper.py", "cdemi/pkg/inner.py", "cdemi/pkg/sub", "cdemi/tool"]
    assert minimal_deps(fake / "dvc.yaml", "looped") == [
        "notebooks/nb.ipynb", "cdemi/__init__.py", "cdemi/a.py", "cdemi/b.py", "cdemi/lazy.py",
        "cdemi/pkg/__init__.py", "cdemi/pkg/deeper.py", "cdemi/pkg/inner.py", "${data.root}/${item.dataset}"]


def test_stale_deps_are_reported(fake):
    assert stale_deps(fake / "dvc.yaml") == {}
    (fake / "dvc.yaml").write_text(DVC_YAML.replace("- cdemi/tool", "- cdemi/moved.py"))
    assert stale_deps(fake / "dvc.yaml") == {"plain": ["cdemi/moved.py"]}
