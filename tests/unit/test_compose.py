"""What docker-compose.yml and the Dockerfile say, checked against the code without a Docker engine (the compose
file is run for real by tests/deploy)."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from gateway.settings import GatewaySettings
from pinner.settings import PinnerSettings
from renderer.settings import RendererSettings
from status.settings import StatusSettings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
MINTPIPE = {"gateway": (GatewaySettings, "GATEWAY_GRPC_PORT"), "renderer": (RendererSettings, "RENDERER_HEALTH_PORT"),
            "pinner": (PinnerSettings, "PINNER_HEALTH_PORT"), "status": (StatusSettings, "STATUS_GRPC_PORT")}


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_every_service_module_runs_on_the_shared_engines(services):
    assert {"postgres", "seaweedfs", "rabbitmq", "gateway", "renderer", "pinner", "status", "bridge"} <= set(services)
    for name in MINTPIPE:
        command = services[name]["command"]
        assert command[:2] == ["python", "-m"]
        assert importlib.util.find_spec(command[2]) is not None, f"{name}: no module {command[2]}"
        env = services[name]["environment"]
        assert env["MINTPIPE_AMQP_URL"].startswith("amqp://") and "@rabbitmq:5672" in env["MINTPIPE_AMQP_URL"]
        assert env["MINTPIPE_DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env[
            "MINTPIPE_DATABASE_URL"]
        assert env["MINTPIPE_ARTIFACTS_URL"].startswith("s3://")
        assert env["AWS_ENDPOINT_URL"] == "http://seaweedfs:8333" and env["AWS_ACCESS_KEY_ID"]
        for engine in ("rabbitmq", "postgres", "seaweedfs"):
            assert services[name]["depends_on"][engine]["condition"] == "service_healthy", (name, engine)
    assert services["gateway"]["environment"]["GATEWAY_STATUS_TARGET"] == "dns:///status:50052"
    assert services["status"]["environment"]["STATUS_GATEWAY_TARGET"] == "gateway:50051"
    assert services["status"]["deploy"]["replicas"] == 2
    assert services["bridge"]["depends_on"]["status"]["condition"] == "service_healthy"
    assert any(p.endswith(":8080") for p in services["bridge"]["ports"])
    assert not any("ports" in services[name] for name in MINTPIPE), "only the bridge is published"


def test_each_healthcheck_asks_the_services_grpc_health_on_its_port(services):
    for name, (settings, variable) in MINTPIPE.items():
        env = services[name]["environment"]
        port = int(env[variable])
        field = variable.split("_", 1)[1].lower()
        assert field in settings.model_fields, f"{name}: {variable} is not one of its settings"
        host = [v for k, v in env.items() if k.endswith(("_GRPC_HOST", "_HEALTH_HOST"))]
        assert host == ["0.0.0.0"], f"{name}: its gRPC port must listen beyond the container's loopback"
        check = services[name]["healthcheck"]["test"]
        assert check == ["CMD", "mintpipe", "health", f"127.0.0.1:{port}"], (name, check)


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", text)
    assert match, text
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_stop_grace_outlasts_the_drain(services):
    for name in MINTPIPE:
        drain = float(services[name]["environment"]["MINTPIPE_GRACE_SECONDS"])
        assert _seconds(services[name]["stop_grace_period"]) >= drain + 10, name


def test_no_volume_or_path_is_shared_between_services(services):
    users: dict[str, list[str]] = {}
    for name, spec in services.items():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert not source.startswith(("/", ".", "~")), f"{name}: a host path {source}"
            users.setdefault(source, []).append(name)
    assert {v: s for v, s in users.items() if len(s) > 1} == {}
    assert set(users) == {"postgres", "seaweedfs", "rabbitmq"}
    assert all("volumes" not in services[name] for name in MINTPIPE)


def test_every_image_is_built_by_the_script_and_never_pulled(services):
    script = (ROOT / "scripts" / "build_images.sh").read_text()
    for name, spec in services.items():
        assert spec.get("pull_policy") == "never", name
        repository, tag = spec["image"].split(":", 1)
        assert tag == "${MINTPIPE_IMAGE_TAG:-dev}", name
        if repository != "mintpipe":
            infra = repository.removeprefix("mintpipe-")
            assert (ROOT / "deploy/docker" / infra / "Dockerfile").exists(), name
            assert re.search(rf"(for infra in [^\n]*\b{infra}\b|mintpipe-{infra}:\$TAG)", script), name
    base = re.search(r"^BASE=(\S+)$", script, re.M).group(1)
    for dockerfile in [ROOT / "Dockerfile", *ROOT.glob("deploy/docker/*/Dockerfile")]:
        assert f"ARG BASE={base}\nFROM ${{BASE}}" in dockerfile.read_text(), dockerfile


def test_the_project_wheel_ships_every_package_and_its_c_extensions(tmp_path):
    """The image installs the wheel scripts/build_images.sh builds from the tracked sources: build it the same
    way (no build left in this checkout may stand in), install it apart, and import every service and the codec."""
    import os
    import shutil
    import subprocess
    import sys
    import zipfile

    context = tmp_path / "context"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", "pyproject.toml", "setup.py",
                             "README.md", "protos", "libs", "services", "tools"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split("\n")
    for name in filter(None, listed):
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, context / name)
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
    modules = ("renderer.__main__, renderer.render, renderer.encoders._gifcodec, gateway.service, pinner.consumer, "
               "launcher.health_cli")
    imported = subprocess.run(
        [sys.executable, "-c", f"import {modules}, renderer.render as r; print(r.__file__)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert imported.stdout.strip().startswith(str(target)), imported.stdout
    assert "mintpipe/v1/gateway_pb2.py" in names
