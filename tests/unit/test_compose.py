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
    """`pip install .` in the image sees only the Dockerfile's COPY sources: build the wheel from exactly those
    (no Docker engine here) and check every package the services run is in it."""
    import shutil
    import subprocess
    import sys
    import zipfile

    context = tmp_path / "context"
    context.mkdir()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _dest = line.split()[1:]
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, context / source)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(context)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("gateway", "renderer", "pinner", "status", "launcher", "pinata_emulator"):
        assert f"{module}/__main__.py" in names or f"{module}/__init__.py" in names, module
    assert "mintpipe/v1/gateway_pb2.py" in names
