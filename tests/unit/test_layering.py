"""The import rules the layout rests on, read from the source with ast (no import-linter): mintpipe.config is a
leaf, and the shared library never imports a service."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBS = ROOT / "libs" / "mintpipe"


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file: top level, inside functions, under TYPE_CHECKING."""
    package = ".".join(("mintpipe", *path.relative_to(LIBS).parent.parts)) if path.is_relative_to(LIBS) else ""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from mintpipe import db` imports mintpipe.db
                yield node.lineno, f"{module}.{alias.name}"


def service_packages() -> set[str]:
    """Every top-level package pyproject.toml maps to a folder, but the shared library."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(tool["package-dir"]) - {"mintpipe"}


def test_config_is_a_leaf():
    found = {module for _, module in imported_modules(LIBS / "config.py")
             if module == "mintpipe" or module.startswith("mintpipe.")}
    # `from mintpipe.log import redact_url` also yields "mintpipe.log.redact_url"
    assert {m for m in found if not (m == "mintpipe.log" or m.startswith("mintpipe.log."))} == set()
    assert "mintpipe.log" in found


def test_the_shared_library_imports_no_service():
    services = service_packages()
    assert {"status", "minter", "gateway", "renderer", "pinner"} <= services
    offences = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                for path in sorted(LIBS.rglob("*.py"))
                for line, module in imported_modules(path)
                if module.split(".")[0] in services]
    assert offences == []


def test_the_checks_see_imports_inside_functions(tmp_path):
    probe = LIBS / "config.py"
    names = [module for _, module in imported_modules(probe)]
    assert "pydantic" in names and "mintpipe.log" in names
    nested = tmp_path / "nested.py"
    nested.write_text("def f():\n    from status.jobs.store import JobStore\n    import gateway.service\n")
    assert [m for _, m in imported_modules(nested)] == ["status.jobs.store", "status.jobs.store.JobStore",
                                                        "gateway.service"]
