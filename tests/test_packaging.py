"""The wheel ships every package folder of the checkout, and nothing that is not one.

The repository root is the ``mirograph`` package and ``pyproject.toml`` lists its
subpackages by hand, so a new subpackage would import in an editable install yet
be missing from the wheel. This builds the wheel from a copy of the tree with the
environment's own setuptools (no network) and compares it with the folders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Folders of the checkout that hold code but are not part of the package.
NOT_SHIPPED = {"tests", "benchmarks", "examples"}
#: What a build, a virtualenv or a tool leaves in a checkout.
LEFTOVERS = {".git", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}


def _leftover(folder: Path) -> bool:
    name = folder.name
    return name in LEFTOVERS or name.endswith(".egg-info") or (folder / "pyvenv.cfg").exists()


def _source_copy(dest: Path) -> Path:
    """The checkout's files, without what builds and tools left in it."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {name for name in names if _leftover(Path(folder, name))}

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _package_folders() -> set[str]:
    """Dotted names of the folders holding an ``__init__.py`` that should ship."""
    found = {"mirograph"}
    for init in ROOT.rglob("__init__.py"):
        parts = init.parent.relative_to(ROOT).parts
        if not parts or parts[0] in NOT_SHIPPED:
            continue
        if any(_leftover(ROOT.joinpath(*parts[: i + 1])) for i in range(len(parts))):
            continue
        found.add(".".join(("mirograph", *parts)))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    work = tmp_path_factory.mktemp("wheel")
    src = _source_copy(work / "src")
    out = work / "dist"
    build = (
        "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", build, str(out)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return zipfile.ZipFile(out / done.stdout.strip().splitlines()[-1])


def _wheel_packages(names: list[str]) -> set[str]:
    return {
        name.removesuffix("/__init__.py").replace("/", ".")
        for name in names
        if name.endswith("/__init__.py")
    }


def test_every_package_folder_ships_and_nothing_else(wheel: zipfile.ZipFile) -> None:
    shipped = _wheel_packages(wheel.namelist())
    missing = sorted(_package_folders() - shipped)
    assert not missing, (
        f"{missing} hold an __init__.py but are not in the wheel;"
        " add them to [tool.setuptools] packages in pyproject.toml"
    )
    extra = sorted(shipped - _package_folders())
    assert not extra, f"the wheel ships {extra}, which are not package folders of the checkout"


def test_every_module_of_a_shipped_folder_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for package in _package_folders():
        folder = ROOT.joinpath(*package.split(".")[1:])
        for module in folder.glob("*.py"):
            where = "/".join((*package.split("."), module.name))
            assert where in names, f"{where} is missing from the wheel"


def test_tests_benchmarks_examples_and_build_outputs_stay_out(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[1] for name in wheel.namelist() if name.startswith("mirograph/")}
    assert not tops & (NOT_SHIPPED | LEFTOVERS), sorted(tops & (NOT_SHIPPED | LEFTOVERS))
    assert not [name for name in wheel.namelist() if ".egg-info" in name]


def test_the_data_the_package_reads_ships(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for flow in (ROOT / "flows").glob("*.yaml"):
        assert f"mirograph/flows/{flow.name}" in names
    corpus = [p for p in (ROOT / "flows" / "demo_corpus").iterdir() if p.is_file()]
    assert corpus
    for path in corpus:
        assert f"mirograph/flows/demo_corpus/{path.name}" in names
    assets = [p for p in (ROOT / "flows" / "ui" / "static").iterdir() if p.is_file()]
    assert {p.name for p in assets} >= {"index.html", "app.js", "app.css"}
    for path in assets:  # the web view's page: no build step, so it must ship as it is
        assert f"mirograph/flows/ui/static/{path.name}" in names
    assert "mirograph/py.typed" in names


@pytest.mark.parametrize("folder", sorted(NOT_SHIPPED))
def test_folders_beside_the_package_do_not_import_as_part_of_it(folder: str) -> None:
    """An editable install maps the whole checkout to ``mirograph``: the helper packages
    in it refuse to load a second time under that name."""
    package = {"tests": "tests.support", "benchmarks": "benchmarks"}.get(folder)
    if package is None:  # examples/ are files a flow names by path, not a package
        assert not (ROOT / folder / "__init__.py").exists()
        return
    probe = f"import mirograph.{package}"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "not part of the mirograph package" in done.stderr


@pytest.mark.parametrize("layer", ["state", "agents", "graphs", "flows"])
def test_a_layer_imported_by_its_plain_name_is_refused(layer: str) -> None:
    """From the checkout's root ``import state`` would load a second copy of every
    module of ``mirograph.state``, with state of its own."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {layer}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"import mirograph.{layer}, not {layer}" in done.stderr
