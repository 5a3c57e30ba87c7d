"""The chain side, side by side in one run on a local anvil (the collection deployed):

  gas        gas used by one mint (the contract's mint() with a fresh voucher), wallet-sent and relayed
  mint obj   building a pinned job's `mint` object (EIP-712 signature + calldata): first read vs cached read
  report     POST /v1/jobs/{id}/mint until the job is `minted` (0 confirmations; anvil mines at once), and the
             same mint left unreported until the watcher marks it (poll interval as configured)
  relay      20 relayed mints requested at once: wall time until all are minted

The status side runs in process as `python -m status` wires it (store, chain, watcher, relayer, HTTP app).

Run: .venv/bin/python bench/chain.py [--mints 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402

from tests.support.chain import running_chain  # noqa: E402
from tests.support.chain_status import running_status, send_tx  # noqa: E402


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.2f} ms  max {max(values) * 1000:7.2f} ms"


async def main(mints: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, running_chain(Path(tmp) / "anvil") as chain:
        async with running_status(chain, Path(tmp) / "status", chain_poll_seconds=0.5,
                                  relay_per_wallet_daily=mints + 1, relay_daily=10 * mints) as status:
            wallet = chain.address_of(chain.collector_keys[0])
            jobs = [await status.pinned_job(wallet) for _ in range(mints)]

            first, cached = [], []
            for job_id in jobs:
                record = await status.store.get(job_id)
                started = time.perf_counter()
                status.runtime.deps.chain.mint_object(record)
                first.append(time.perf_counter() - started)
                started = time.perf_counter()
                status.runtime.deps.chain.mint_object(record)
                cached.append(time.perf_counter() - started)
            print(f"mint object, first read : {ms(first)}")
            ratio = statistics.median(first) / statistics.median(cached)
            print(f"mint object, cached     : {ms(cached)}   ({ratio:.0f}x faster)")

            reported, gas = [], []
            for job_id in jobs[: mints // 2]:
                tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[0])
                gas.append(chain.w3.eth.wait_for_transaction_receipt(tx_hash, 30)["gasUsed"])
                started = time.perf_counter()
                reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})
                assert reply.json()["stage"] == "minted", reply.text
                reported.append(time.perf_counter() - started)
            print(f"gas per mint (wallet)   : {statistics.median(gas):,.0f}")
            print(f"report -> minted        : {ms(reported)}")

            unreported = []
            for job_id in jobs[mints // 2:]:
                send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[0])
                started = time.perf_counter()
                await status.wait_stage(job_id, "minted")
                unreported.append(time.perf_counter() - started)
            print(f"unreported -> minted    : {ms(unreported)}   (watcher polling every 0.5 s)")

            relayed = [await status.pinned_job(Account.create().address) for _ in range(mints)]
            started = time.perf_counter()
            replies = await asyncio.gather(*(status.client.post(f"/v1/jobs/{j}/mint", json={"relay": True})
                                             for j in relayed))
            for job_id in relayed:
                await status.wait_stage(job_id, "minted")
            wall = time.perf_counter() - started
            relay_gas = [chain.w3.eth.wait_for_transaction_receipt(r.json()["tx_hash"], 30)["gasUsed"] for r in replies]
            print(f"{mints} relays at once      : {wall:.2f} s until all minted "
                  f"({wall / mints * 1000:.0f} ms each), gas per relayed mint {statistics.median(relay_gas):,.0f}")
            assert len({r.json()["tx_hash"] for r in replies}) == mints


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mints", type=int, default=20)
    asyncio.run(main(parser.parse_args().mints))
