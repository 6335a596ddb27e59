"""The layer contract (pyproject's [tool.importlinter]): the tree keeps it, and a tree that
breaks it fails, naming the import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from helpers import REPO

CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
# the engine importing a node family: what the contract exists to refuse
VIOLATION = ("swapgraph.runtime.errors", "swapgraph.nodes.photos")

# The linter's graph comes from wherever `swapgraph.<layer>` imports from, so the copy is
# linted in an interpreter without site (-S: no editable finder for the installed tree) that
# sees only the copy and the linter's own packages.
LINT = """
import sys
src, site_packages, config = sys.argv[1:]
sys.path[:0] = [src, site_packages]
import swapgraph.runtime
assert swapgraph.runtime.__file__.startswith(src), swapgraph.runtime.__file__
from importlinter.cli import lint_imports
sys.exit(lint_imports(config_filename=config, no_cache=True, no_logo=True))
"""


def assignments(table: dict) -> list[str]:
    # JSON spells strings, lists of strings and booleans as TOML does
    return [f"{key} = {json.dumps(value)}" for key, value in table.items()]


def config_file(folder: Path) -> Path:
    """pyproject's [tool.importlinter], written out again for the copy."""
    lines = ["[tool.importlinter]", *assignments({k: v for k, v in CONFIG.items() if k != "contracts"})]
    for contract in CONFIG["contracts"]:
        lines += ["[[tool.importlinter.contracts]]", *assignments(contract)]
    path = folder / "pyproject.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def copy_layers(src: Path) -> None:
    """Every layer's .py files into ``src/swapgraph/<layer>/`` (``swapgraph`` a namespace, as installed)."""
    for package in CONFIG["root_packages"]:
        folder = REPO / package.removeprefix("swapgraph.")
        for path in folder.rglob("*.py"):
            target = src / "swapgraph" / path.parent.relative_to(REPO) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def lint_copy(tmp_path: Path, src: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-S", "-c", LINT, str(src), sysconfig.get_path("purelib"),
                           str(config_file(tmp_path))], cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("tree") / "src"
    copy_layers(src)
    return src


def test_the_tree_keeps_the_layers():
    r = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout


def test_a_copy_of_the_tree_keeps_them(tmp_path, src):
    r = lint_copy(tmp_path, src)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout


def test_the_engine_importing_a_node_family_breaks_them(tmp_path, src):
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    importer, imported = VIOLATION
    module = bad / Path(*importer.split(".")).with_suffix(".py")
    module.write_text(module.read_text() + f"\nimport {imported}\n")
    r = lint_copy(tmp_path, bad)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "0 kept, 1 broken" in r.stdout
    assert f"{importer} -> {imported}" in r.stdout, r.stdout
