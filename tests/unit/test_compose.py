"""What docker-compose.yml and the Dockerfile say, checked against the code without a Docker engine (the compose
file is run for real by tests/deploy)."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from gateway.settings import GatewaySettings
from launcher import deploy_cli
from minter.settings import MinterSettings
from mintpipe.dev_keys import DEV_ADDRESSES
from pinner.settings import PinnerSettings
from renderer.settings import RendererSettings
from status.settings import StatusSettings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
MINTPIPE = {"gateway": (GatewaySettings, "GATEWAY_GRPC_PORT"), "renderer": (RendererSettings, "RENDERER_HEALTH_PORT"),
            "pinner": (PinnerSettings, "PINNER_HEALTH_PORT"), "status": (StatusSettings, "STATUS_GRPC_PORT"),
            "minter": (MinterSettings, "MINTER_GRPC_PORT")}
KEY = re.compile(r"0x[0-9a-fA-F]{64}")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_every_service_module_runs_on_the_shared_engines(services):
    assert {"postgres", "seaweedfs", "rabbitmq", "gateway", "renderer", "pinner", "status", "minter", "bridge", "anvil",
            "chain-deploy"} <= set(services)
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
    assert services["status"]["environment"]["STATUS_MINTER_TARGET"] == "dns:///minter:50081"
    assert services["status"]["deploy"]["replicas"] == 2
    assert services["bridge"]["depends_on"]["status"]["condition"] == "service_healthy"
    assert any(p.endswith(":8080") for p in services["bridge"]["ports"])
    assert not any("ports" in services[name] for name in MINTPIPE), "only the bridge (and the dev chain) is published"


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
    assert set(users) == {"postgres", "seaweedfs", "rabbitmq", "anvil"}
    assert all("volumes" not in services[name] for name in MINTPIPE)


def test_only_the_minter_is_given_the_chain_keys(services):
    """Status holds no key and speaks to no node; the keys reach the minter only, and only from the environment
    (no key is written in the compose file, not even anvil's public dev keys: the minter's entrypoint derives
    those, for the dev chain only)."""
    for name, spec in services.items():
        env = spec.get("environment") or {}
        keys = {k for k in env if k.endswith("_KEY") and "CHAIN" in k}
        if name == "minter":
            assert keys == {"MINTPIPE_CHAIN_SIGNER_KEY", "MINTPIPE_CHAIN_RELAYER_KEY"}
            assert all(env[k] == f"${{{k}:-}}" for k in keys), {k: env[k] for k in keys}
        else:
            assert not keys, (name, keys)
    assert not [k for k in services["status"]["environment"] if "CHAIN" in k]
    assert not KEY.search((ROOT / "docker-compose.yml").read_text()), "a private key in docker-compose.yml"


def test_the_minter_scales_drains_and_reports_health(services):
    minter = services["minter"]
    assert minter["command"] == ["python", "-m", "minter"]
    entry = minter["entrypoint"]
    assert entry[:4] == ["python", "-m", "launcher.deploy_cli", "minter-env"] and entry[-1] == "--"
    assert importlib.util.find_spec(entry[2]) is not None
    # --scale minter=N: nothing in it may be one per host or one per project.
    assert not {"ports", "container_name", "hostname", "volumes"} & set(minter), sorted(minter)
    assert minter["restart"] == "unless-stopped"
    assert minter["depends_on"]["chain-deploy"]["condition"] == "service_completed_successfully"
    env = minter["environment"]
    assert env["MINTER_METRICS_HOST"] == "0.0.0.0" and int(env["MINTER_METRICS_PORT"]) > 0
    for variable in ("MINTPIPE_CHAIN_RPC_URL", "MINTPIPE_CHAIN_CONTRACT", "MINTPIPE_CHAIN_PUBLIC_RPC_URL",
                     "MINTER_CHAIN_CONFIRMATIONS"):  # yours, from the environment or an .env, else the dev chain
        assert env[variable] == f"${{{variable}:-}}", variable


def test_the_dev_chain_is_anvil_and_a_one_shot_deploy(services):
    anvil, deploy, minter = services["anvil"], services["chain-deploy"], services["minter"]
    assert anvil["image"].startswith("mintpipe-anvil:")
    assert anvil["healthcheck"]["test"] == ["CMD", "/usr/local/bin/healthcheck.sh"]
    assert anvil["volumes"] == ["anvil:/var/lib/anvil"]
    (published,) = anvil["ports"]
    assert published.startswith("127.0.0.1:") and published.endswith(":8545"), "the dev chain: this host only"
    host_port = published.removeprefix("127.0.0.1:").removesuffix(":8545")
    assert minter["environment"]["MINTPIPE_DEV_CHAIN_PUBLIC_URL"] == f"http://127.0.0.1:{host_port}"
    assert minter["environment"]["MINTPIPE_DEV_CHAIN_URL"] == deploy["environment"]["MINTPIPE_DEV_CHAIN_URL"] \
        == deploy_cli.DEV_CHAIN_URL == "http://anvil:8545"
    dockerfile = (ROOT / "deploy/docker/anvil/Dockerfile").read_text()
    assert '"--host", "0.0.0.0", "--port", "8545"' in dockerfile and '"--chain-id", "31337"' in dockerfile
    assert '"--state", "/var/lib/anvil/state.json"' in dockerfile
    assert deploy["restart"] == "no" and deploy["image"] == "mintpipe:${MINTPIPE_IMAGE_TAG:-dev}"
    assert deploy["command"] == ["python", "-m", "launcher.deploy_cli", "deploy-chain"]
    assert deploy["depends_on"] == {"anvil": {"condition": "service_healthy"}}
    assert not [k for k in deploy["environment"] if k.endswith("_KEY")]
    # The minter and chain-deploy load the collection's artifact from the image.
    assert "MINTPIPE_CHAIN_ARTIFACT=/app/contracts/MintpipeCollection.json" in (ROOT / "Dockerfile").read_text()
    assert "contracts/build/MintpipeCollection.json" in (ROOT / "scripts/build_images.sh").read_text()


def test_minter_env_fills_the_dev_chain_only_without_an_rpc_url():
    keys = deploy_cli.dev_keys()
    from eth_account import Account

    assert [Account.from_key(k).address for k in keys] == list(DEV_ADDRESSES)
    # anvil's first account, first transaction: the address every anvil-based tutorial knows.
    assert deploy_cli.dev_collection_address() == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    unset = {"MINTPIPE_CHAIN_RPC_URL": "", "MINTPIPE_CHAIN_CONTRACT": "", "MINTPIPE_CHAIN_SIGNER_KEY": "",
             "MINTPIPE_CHAIN_RELAYER_KEY": "", "MINTPIPE_CHAIN_PUBLIC_RPC_URL": "", "MINTER_CHAIN_CONFIRMATIONS": "",
             "MINTPIPE_DEV_CHAIN_URL": "http://anvil:8545", "MINTPIPE_DEV_CHAIN_PUBLIC_URL": "http://127.0.0.1:8545",
             "OTHER": ""}
    dev = deploy_cli.minter_env(unset)
    assert dev["MINTPIPE_CHAIN_RPC_URL"] == "http://anvil:8545"
    assert dev["MINTPIPE_CHAIN_PUBLIC_RPC_URL"] == "http://127.0.0.1:8545"
    assert dev["MINTPIPE_CHAIN_CONTRACT"] == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert (dev["MINTPIPE_CHAIN_SIGNER_KEY"], dev["MINTPIPE_CHAIN_RELAYER_KEY"]) == (keys[1], keys[2])
    assert dev["MINTER_CHAIN_LOCAL_DEV"] == "true" and dev["MINTER_CHAIN_CONFIRMATIONS"] == "0"
    assert dev["OTHER"] == ""  # only the chain's empty variables are dropped

    yours = {**unset, "MINTPIPE_CHAIN_RPC_URL": "https://node.example/v2/k", "MINTPIPE_CHAIN_CONTRACT": "0x" + "1" * 40,
             "MINTPIPE_CHAIN_SIGNER_KEY": "0x" + "2" * 64}
    given = deploy_cli.minter_env(yours)
    assert given["MINTPIPE_CHAIN_SIGNER_KEY"] == "0x" + "2" * 64
    assert "MINTPIPE_CHAIN_RELAYER_KEY" not in given and "MINTPIPE_CHAIN_PUBLIC_RPC_URL" not in given
    assert "MINTER_CHAIN_LOCAL_DEV" not in given and "MINTER_CHAIN_CONFIRMATIONS" not in given
    assert not set(keys) & set(given.values()), "a dev key next to a real chain"
    # Yours, half given: refused rather than quietly the dev chain.
    for name in ("MINTPIPE_CHAIN_CONTRACT", "MINTPIPE_CHAIN_SIGNER_KEY", "MINTPIPE_CHAIN_RELAYER_KEY"):
        with pytest.raises(deploy_cli.Refused, match="MINTPIPE_CHAIN_RPC_URL is required"):
            deploy_cli.minter_env({**unset, name: "0x" + "3" * 64})


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
