"""The import rules the layout rests on, read from the source with ast (no import-linter).

- mintpipe.config is a leaf, and the shared library never imports a service;
- status's rooms (jobs, workers, replicas, bridge, ops) import only what they may: jobs imports no web framework,
  gRPC or broker client, bridge and ops never import each other and meet in status.app, nothing but the entry
  point imports status.app or status.__main__, and no private name crosses a package;
- every package is in pyproject.toml's explicit list, so a wheel (the Docker image) holds it.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
PACKAGE_DIRS = {name: ROOT / folder for name, folder in SETUPTOOLS["package-dir"].items()}
LIBS = PACKAGE_DIRS["mintpipe"]
STATUS = PACKAGE_DIRS["status"]
LOG = "mintpipe.runtime.log"  # the one mintpipe module mintpipe.config imports


def module_of(path: Path) -> str:
    """The dotted name a file imports as: status/jobs/store.py -> status.jobs.store (a package's __init__: itself)."""
    for name, folder in PACKAGE_DIRS.items():
        if path.is_relative_to(folder):
            parts = [name, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return path.stem


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file: top level, inside functions, under TYPE_CHECKING.
    `from a.b import c` yields a.b and a.b.c (c may be a module)."""
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            yield node.lineno, source
            for alias in node.names:
                yield node.lineno, f"{source}.{alias.name}"


def test_config_is_a_leaf():
    found = {m for _, m in imported_modules(LIBS / "config.py") if m == "mintpipe" or m.startswith("mintpipe.")}
    # `from mintpipe.runtime.log import redact_url` also yields "mintpipe.runtime.log.redact_url"
    assert {m for m in found if not (m == LOG or m.startswith(LOG + "."))} == set()
    assert LOG in found
    # importing the log module runs its package's __init__ first: that one imports nothing
    assert [m for _, m in imported_modules(LIBS / "runtime" / "__init__.py")] == []


def test_the_shared_library_imports_no_service():
    services = set(PACKAGE_DIRS) - {"mintpipe"}
    assert {"status", "minter", "gateway", "renderer", "pinner"} <= services
    offences = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                for path in sorted(LIBS.rglob("*.py"))
                for line, module in imported_modules(path)
                if module.split(".")[0] in services]
    assert offences == []


def test_the_checks_see_imports_inside_functions_and_relative_ones(tmp_path):
    names = [module for _, module in imported_modules(LIBS / "config.py")]
    assert "pydantic" in names and LOG in names
    nested = tmp_path / "nested.py"
    nested.write_text("def f():\n    from status.jobs.store import JobStore\n    import gateway.service\n")
    assert [m for _, m in imported_modules(nested)] == ["status.jobs.store", "status.jobs.store.JobStore",
                                                        "gateway.service"]


# status: which room may import which. A room is a sub-package (jobs, workers, ...) or a top-level module.
LEAVES = {"settings", "metrics", "errors"}
MAY_IMPORT = {
    "settings": set(), "metrics": set(), "errors": set(),
    "jobs": {"jobs", "settings", "metrics"},
    "clients": {"jobs"},
    "minting": {"jobs", "clients", *LEAVES},
    "workers": {"workers", "jobs", *LEAVES},
    "replicas": {"replicas", "jobs", *LEAVES},
    "grpc_api": {"jobs", *LEAVES},
    "bridge": {"bridge", "jobs", "clients", "minting", *LEAVES},
    "ops": {"ops", "jobs", "clients", "minting", *LEAVES},
    "app": {"bridge", "ops", "jobs", "clients", "minting", *LEAVES},
}
# What jobs/ never imports: it is the domain, under the HTTP, gRPC and broker edges.
EDGES = ("fastapi", "starlette", "sse_starlette", "uvicorn", "grpc", "aio_pika", "aiormq", "prometheus_client")


def room_of(module: str) -> str:
    """status.jobs.store -> jobs; status.app -> app; status -> '' (the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def status_imports() -> Iterator[tuple[Path, int, str, str]]:
    """(file, line, importing module, imported status module) for every status import inside status."""
    for path in sorted(STATUS.rglob("*.py")):
        importer = module_of(path)
        for line, module in imported_modules(path):
            if module.startswith("status."):
                yield path, line, importer, module


def is_module(name: str) -> bool:
    parts = name.split(".")[1:]
    folder = STATUS.joinpath(*parts)
    return folder.with_suffix(".py").exists() or (folder / "__init__.py").exists()


def test_status_rooms_import_only_what_they_may():
    assert set(MAY_IMPORT) | {"__main__", ""} >= {room_of(module_of(p)) for p in STATUS.rglob("*.py")}
    offences = []
    for path, line, importer, module in status_imports():
        if not is_module(module):  # `from status.jobs.store import JobStore` also yields ...store.JobStore
            continue
        room, target = room_of(importer), room_of(module)
        if room in ("__main__", "") or target == "":
            continue
        if target != room and target not in MAY_IMPORT[room]:
            offences.append(f"{path.relative_to(ROOT)}:{line} ({room}) imports {module}")
    assert offences == []


def test_nothing_but_the_entry_point_imports_the_app():
    offences = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                for folder in (*PACKAGE_DIRS.values(),)
                for path in sorted(folder.rglob("*.py"))
                for line, module in imported_modules(path)
                if module in ("status.app", "status.__main__") and module_of(path) != "status.__main__"]
    assert offences == []


def test_jobs_imports_no_web_framework_grpc_or_broker_client():
    offences = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                for path in sorted((STATUS / "jobs").rglob("*.py"))
                for line, module in imported_modules(path)
                if module.split(".")[0] in EDGES]
    assert offences == []


def test_no_private_name_crosses_a_package():
    offences = []
    for folder in PACKAGE_DIRS.values():
        for path in sorted(folder.rglob("*.py")):
            importer = module_of(path)
            own = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                source_package = node.module if is_package(node.module) else node.module.rpartition(".")[0]
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__") and source_package != own:
                        offences.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{alias.name}")
    assert offences == []


def is_package(module: str) -> bool:
    top, _, rest = module.partition(".")
    folder = PACKAGE_DIRS.get(top)
    return folder is not None and (folder.joinpath(*rest.split(".")) if rest else folder).joinpath(
        "__init__.py").exists()


def test_every_package_is_listed_for_the_wheel():
    found = {module_of(init.parent / "__init__.py")
             for name, folder in PACKAGE_DIRS.items()
             for init in folder.rglob("__init__.py")
             if "__pycache__" not in init.parts}
    listed = set(SETUPTOOLS["packages"])
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "listed but not a package folder"


# libs/mintpipe, leaf first (arq's order): a room imports only rooms listed before it here, and v1 (generated).
LIBS_MAY_IMPORT = {
    "runtime": set(),
    "core": set(),
    "config": {"runtime"},
    "rpc": {"runtime"},
    "db": {"runtime"},
    "limits": {"db", "runtime"},
    "objects": {"config", "core", "runtime"},
    "messaging": {"config", "core", "rpc", "runtime"},
    "bootstrap": {"config", "db", "objects"},
    "pin_ledger": {"db"},
    "chain": set(),
    "dev_keys": set(),
}


def test_the_shared_library_imports_leaf_first():
    rooms = {module_of(p).split(".")[1] for p in LIBS.rglob("*.py") if module_of(p) != "mintpipe"}
    assert rooms - {"v1"} == set(LIBS_MAY_IMPORT), "a new room or module: say what it may import"
    offences = []
    for path in sorted(LIBS.rglob("*.py")):
        room = module_of(path).partition(".")[2].partition(".")[0]
        if room in ("", "v1"):
            continue
        for line, module in imported_modules(path):
            target = module.split(".")[1] if module.startswith("mintpipe.") else None
            if target not in (None, room, "v1") and target not in LIBS_MAY_IMPORT[room]:
                offences.append(f"{path.relative_to(ROOT)}:{line} ({room}) imports {module}")
    assert offences == []
