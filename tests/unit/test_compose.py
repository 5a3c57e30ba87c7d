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
