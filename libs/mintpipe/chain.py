"""The chain pieces shared by status (signing, verifying, watching), the launcher (a local node, deploying) and
the tests: the collection's compiled artifact, job ids as bytes32, EIP-712 mint vouchers, and a local anvil.

contracts/ is the one source for the chain; its build (contracts/build.mjs) writes the artifact read here.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_NAME = "MintpipeCollection"
# The EVM version contracts/build.mjs compiles for; a local anvil runs the same hardfork.
HARDFORK = "cancun"
DOMAIN_VERSION = "1"
VOUCHER_TYPES = {
    "MintVoucher": [
        {"name": "to", "type": "address"},
        {"name": "tokenURI", "type": "string"},
        {"name": "jobId", "type": "bytes32"},
        {"name": "deadline", "type": "uint256"},
    ]
}
ZERO_ADDRESS = "0x" + "0" * 40


def artifact_path() -> Path:
    return Path(os.environ.get("MINTPIPE_CHAIN_ARTIFACT") or ROOT / "contracts" / "build" / f"{CONTRACT_NAME}.json")


@lru_cache(maxsize=1)
def artifact() -> dict[str, Any]:
    """{"abi", "bytecode", "deployedBytecode", "compiler", "evmVersion", ...} of the collection."""
    return json.loads(artifact_path().read_text())


def job_id_to_bytes32(job_id: str) -> bytes:
    """A job id (32 hex digits, 16 bytes) as the contract's bytes32 jobId: left-padded with zeros, so the
    job id can be read back from an event."""
    raw = bytes.fromhex(job_id)
    if len(raw) != 16:
        raise ValueError("job_id: must be 32 hex digits")
    return raw.rjust(32, b"\0")


def bytes32_to_job_id(value: bytes) -> str | None:
    """The job id a bytes32 jobId carries, or None when it was not made by job_id_to_bytes32."""
    if len(value) != 32 or any(value[:16]):
        return None
    return value[16:].hex()


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain of one deployed collection."""

    name: str
    chain_id: int
    contract: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": DOMAIN_VERSION, "chainId": self.chain_id,
                "verifyingContract": self.contract}


@dataclass(frozen=True)
class Voucher:
    to: str
    token_uri: str
    job_id: str
    deadline: int

    def message(self) -> dict[str, Any]:
        return {"to": self.to, "tokenURI": self.token_uri, "jobId": job_id_to_bytes32(self.job_id),
                "deadline": self.deadline}

    def mint_args(self, signature: bytes) -> tuple[str, str, bytes, int, bytes]:
        """The arguments of MintpipeCollection.mint, in order."""
        return (self.to, self.token_uri, job_id_to_bytes32(self.job_id), self.deadline, signature)


def sign_voucher(private_key: str | bytes, domain: Domain, voucher: Voucher) -> bytes:
    """The 65-byte EIP-712 signature (r, s, v) of a voucher under a collection's domain."""
    signable = encode_typed_data(domain.as_dict(), VOUCHER_TYPES, voucher.message())
    return bytes(Account.sign_message(signable, private_key).signature)


def recover_voucher_signer(domain: Domain, voucher: Voucher, signature: bytes) -> str:
    signable = encode_typed_data(domain.as_dict(), VOUCHER_TYPES, voucher.message())
    return Account.recover_message(signable, signature=signature)


def collection(w3: Web3, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact()["abi"])


def deploy_collection(w3: Web3, deployer_key: str, *, signer: str, name: str = "mintpipe", symbol: str = "MINTPIPE",
                      royalty_receiver: str | None = None, royalty_bps: int = 500, timeout: float = 60) -> str:
    """Deploys the collection (the deployer is its admin) and returns its address."""
    deployer = Account.from_key(deployer_key)
    factory = w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
    tx = factory.constructor(name, symbol, deployer.address, signer, royalty_receiver or deployer.address,
                             royalty_bps).build_transaction({
                                 "from": deployer.address, "nonce": w3.eth.get_transaction_count(deployer.address)})
    signed = deployer.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), timeout)
    if receipt["status"] != 1:
        raise RuntimeError(f"deploying {CONTRACT_NAME} reverted (tx {receipt['transactionHash'].to_0x_hex()})")
    return receipt["contractAddress"]


def anvil_binary() -> str:
    """anvil from npm @foundry-rs/anvil (installed by scripts/bootstrap.sh), $MINTPIPE_ANVIL_BIN, or PATH."""
    candidates = [os.environ.get("MINTPIPE_ANVIL_BIN", "")]
    candidates += sorted(glob.glob(str(ROOT / "node_modules" / "@foundry-rs" / "anvil-*" / "bin" / "anvil")))
    candidates.append(shutil.which("anvil") or "")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("anvil not found: run `bash scripts/bootstrap.sh` (npm ci installs @foundry-rs/anvil) "
                            "or set MINTPIPE_ANVIL_BIN")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies, however it dies (a SIGKILLed
    launcher or test run must not leave a node behind). Linux only; elsewhere stop() is the only way."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Anvil:
    """A local anvil node on a free port (port 0: anvil picks one and says which), killed by stop().

    Its funded dev accounts' keys are in `private_keys` (anvil's well-known test mnemonic: never for real value).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, chain_id: int = 31337, accounts: int = 10,
                 block_time: float | None = None, log_path: Path | None = None, state_path: Path | None = None,
                 startup_timeout: float = 30) -> None:
        self.host, self.port, self.chain_id = host, port, chain_id
        self.accounts, self.block_time = accounts, block_time
        self.startup_timeout = startup_timeout
        self.state_path = state_path  # loaded at start if it exists, written at exit (anvil --state)
        self._workdir = Path(tempfile.mkdtemp(prefix="mintpipe-anvil-"))
        self.log_path = log_path or self._workdir / "anvil.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.private_keys: list[str] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Anvil:
        config = self._workdir / "config.json"
        args = [anvil_binary(), "--host", self.host, "--port", str(self.port), "--chain-id", str(self.chain_id),
                "--hardfork", HARDFORK, "--accounts", str(self.accounts), "--config-out", str(config)]
        if self.block_time:
            args += ["--block-time", str(self.block_time)]
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(self.state_path)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            # Its own session: a Ctrl-C meant for the launcher must not stop the chain before the services drain.
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.startup_timeout
        marker = f"Listening on {self.host}:"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited with {self.process.returncode}: {self._log_tail()}")
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith(marker) and config.exists():
                    self.port = int(line[len(marker):].strip())
                    self.private_keys = json.loads(config.read_text())["private_keys"]
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"anvil did not listen within {self.startup_timeout} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-500:]
        return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)  # it writes its state file on the way out
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
