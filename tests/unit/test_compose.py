"""docker-compose.yml cannot be run here (no Docker engine), so check what it says against the code."""

import importlib.util
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_every_service_module_against_rabbitmq():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"rabbitmq", "gateway", "renderer", "pinner", "status"} <= set(services)
    for name in ("gateway", "renderer", "pinner", "status"):
        command = services[name]["command"]
        assert command[:2] == ["python", "-m"]
        assert importlib.util.find_spec(command[2]) is not None, f"{name}: no module {command[2]}"
        env = services[name]["environment"]
        assert env["MINTPIPE_AMQP_URL"].startswith("amqp://") and "@rabbitmq:5672" in env["MINTPIPE_AMQP_URL"]
        assert "data:/data" in services[name]["volumes"]
        assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert services["gateway"]["environment"]["GATEWAY_STATUS_TARGET"] == "status:50052"
    assert services["status"]["environment"]["STATUS_GATEWAY_TARGET"] == "gateway:50051"
    assert any(p.endswith(":8080") for p in services["status"]["ports"])


def test_the_image_builds_from_what_the_dockerfile_copies(tmp_path):
    """The image's wheel is built from the Dockerfile's COPY sources only: build it from exactly those (no Docker
    engine here), install it apart from this checkout, and import every service and the compiled GIF codec."""
    import os
    import shutil
    import subprocess
    import sys
    import zipfile

    context = tmp_path / "context"
    context.mkdir()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _dest = line.split()[1:]
            for source in sources:
                path = ROOT / source
                if path.is_dir():  # sources only: a build left in the checkout must not stand in for one
                    shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
                else:
                    shutil.copy(path, context / source)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(context)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every package of the source tree is shipped (renderer.encoders and renderer.scenes once were not).
    for init in sorted([*ROOT.glob("services/**/__init__.py"), *ROOT.glob("tools/**/__init__.py")]):
        shipped = init.relative_to(ROOT).as_posix().split("/", 1)[1]
        assert shipped in names, shipped
    assert any(n.startswith("renderer/encoders/_gifcodec") and n.endswith(".so") for n in names), sorted(names)

    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    modules = "renderer.__main__, renderer.render, renderer.encoders._gifcodec, gateway.service, pinner.consumer"
    imported = subprocess.run(
        [sys.executable, "-c", f"import {modules}, renderer.render as r; print(r.__file__)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert imported.stdout.strip().startswith(str(target)), imported.stdout
    assert "mintpipe/v1/gateway_pb2.py" in names
