"""The structure the package keeps: no module reaches into another's private names, only the
command line reads the environment, and the package is pure Python. (The layers themselves are
import-linter contracts in pyproject.toml, checked by `make lint`.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.run_helpers import REPO

PACKAGE = REPO / "orchestrator"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_private_name_of_another(path: Path) -> None:
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("orchestrator"):
            private = [
                alias.name
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
            assert not private, f"{path}:{node.lineno} imports {private} from {node.module}"
            assert not any(
                part.startswith("_") and not part.startswith("__")
                for part in (node.module or "").split(".")
            ), f"{path}:{node.lineno} imports the private module {node.module}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_command_line_reads_the_environment(path: Path) -> None:
    if PACKAGE / "cli" in path.parents:
        return
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            raise AssertionError(f"{path}:{node.lineno} reads the environment")


def test_the_package_is_pure_python() -> None:
    native = [p for p in PACKAGE.rglob("*") if p.suffix in (".c", ".pyx", ".cpp", ".pyi")]
    assert not native
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert "ext-modules" not in pyproject


def test_the_version_is_the_one_pyproject_declares() -> None:
    from orchestrator.version import __version__

    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert f'\nversion = "{__version__}"\n' in pyproject


def test_the_library_face_exports_what_it_lists() -> None:
    import orchestrator

    for name in orchestrator.__all__:
        assert getattr(orchestrator, name) is not None
