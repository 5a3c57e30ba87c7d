"""The chain stage (services/minter), side by side in one run on a local anvil (the collection deployed; automine:
each transaction is mined as it arrives) and the local RabbitMQ, with the minter and status in process as
`python -m minter` and `python -m status` wire them (tests/support/chain_status.py):

  gas        gasUsed of one mint (receipts, median): sent by the job's own wallet (a fresh one, its own job) vs
             relayed by the minter (to a fresh wallet); and a reported tx_hash -> `minted` at the bridge
  relays     N relays (fresh wallets) asked for at once through the bridge, one sender: first request -> last
             relay sent (stored with its nonce and handed to the node) and -> last job `minted` at status
  rpc        JSON-RPC calls counted at the wire (tests/support/rpc_proxy.py), one proxy for the watcher and one for
             the sender (the relayer gets its own node connection for this; same calls as when they share one):
             the sender's per relay until every relay is done (swept); the watcher's per round with M mints not
             yet final (M = 0, 10, 100, each M packed into one block), by method, with the round's time and the
             bytes answered; amortised per mint at 1,000 mints a minute with the default 2 s poll
  takeover   two minters on one PostgreSQL database, both consuming the relay queue (single active consumer):
             the active sender's broker connection closed while relays wait (the broker sees its consumer go,
             as when its process is killed); cut -> the other one's first relay handled and first relay sent,
             K times, a fresh standby minter each time
  vouchers   a page of 100 pinned jobs (GET /v1/jobs?stage=pinned&limit=100, one SignVouchers gRPC call): first
             read (status's and the minter's voucher caches emptied) vs cached read

Everything runs in one process and one event loop (bridge, 100 waiting requests, events consumer, minter): the
sender shares a core with the rest, as it would not in a deployment. Warnings and errors logged during the run
are summarised at the end.

Needs the local RabbitMQ (MINTPIPE_AMQP_URL; a broker prefix of its own per part, deleted afterwards) and, for the
takeover, PostgreSQL (MINTPIPE_BENCH_POSTGRES_URL, default postgresql://root@127.0.0.1:5432/postgres; a database
of its own, dropped afterwards).

Run: .venv/bin/python bench/chain.py [--relays 100] [--wallet-mints 10] [--m 0 10 100] [--rounds 20]
                                     [--takeovers 5] [--pages 5] [--log services.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs"), str(ROOT / "services")]

import aio_pika  # noqa: E402
import asyncpg  # noqa: E402
from eth_account import Account  # noqa: E402

from minter.chain import Chain, JobRef  # noqa: E402
from minter.relayer import Relayer  # noqa: E402
from minter.watcher import ChainWatcher  # noqa: E402
from mintpipe.chain import job_id_to_bytes32  # noqa: E402
from mintpipe.messaging.broker import Topology, delete_topology  # noqa: E402
from mintpipe.runtime.log import configure_logging  # noqa: E402
from mintpipe.v1 import jobs_pb2  # noqa: E402
from status.jobs.bus import JobBus  # noqa: E402
from tests.support.chain import TestChain, running_chain  # noqa: E402
from tests.support.chain_status import Minter, Status, running_minter, running_status, send_tx  # noqa: E402
from tests.support.rpc_proxy import RpcProxy  # noqa: E402

SERVER = os.environ.get("MINTPIPE_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")
AMQP = os.environ.get("MINTPIPE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# Caps out of the way (fresh wallets, one relay each) and the default 2 s poll scaled down. anvil answers a
# `finalized` block 64 behind its head: the watcher takes that, so the not-yet-final window is its last 64 blocks.
MINTER = {"relay_daily": 100_000, "relay_per_wallet_daily": 5, "relay_daily_budget_eth": 1000.0,
          "chain_poll_seconds": 0.2, "chain_confirmations": 0}
STATUS = {"relay_wait_seconds": 60}
DEFAULT_POLL, RATE = 2.0, 1000  # the amortised figure: the default poll, 1,000 mints a minute


# --- measuring helpers ------------------------------------------------------------------------------------------
def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:7.2f} ms  max {max(values) * 1e3:7.2f} ms  (n={len(values)})"


def spread(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f} s"


def per(calls: Counter[str], n: float) -> str:
    return ", ".join(f"{method} {count / n:.2f}" for method, count in calls.most_common()) or "none"


class SizedProxy(RpcProxy):
    """The counting proxy, also summing the bytes of the node's answers by method."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.bytes: Counter[str] = Counter()

    async def _handle(self, request: Any) -> Any:
        body = json.loads(await request.read())  # aiohttp keeps the body: the proxy reads it again
        reply = await super()._handle(request)
        self.bytes[body.get("method", "?") if isinstance(body, dict) else "batch"] += len(reply.body)
        return reply


def stamp_sends(relayer: Relayer) -> list[float]:
    """perf_counter() of each transaction this relayer hands to the node (a relay stored with its nonce, sent)."""
    times: list[float] = []
    broadcast = relayer._broadcast

    async def stamped(raw_tx: str) -> str | None:
        refused = await broadcast(raw_tx)
        times.append(time.perf_counter())
        return refused

    relayer._broadcast = stamped  # type: ignore[method-assign]
    return times


def stamp_handled(relayer: Relayer) -> list[float]:
    """perf_counter() of each relay request this relayer starts on (it is the relay queue's active consumer)."""
    times: list[float] = []
    request = relayer.request

    async def stamped(job: JobRef) -> None:
        times.append(time.perf_counter())
        await request(job)

    relayer.request = stamped  # type: ignore[method-assign]
    return times


def stamp_minted(bus: JobBus) -> dict[str, float]:
    """perf_counter() at which status applied each job's `minted` (the bus hears every change it applies)."""
    seen: dict[str, float] = {}
    publish = bus.publish

    def stamped(record: Any) -> None:
        if record.stage == jobs_pb2.STAGE_MINTED and record.job_id not in seen:
            seen[record.job_id] = time.perf_counter()
        publish(record)

    bus.publish = stamped  # type: ignore[method-assign]
    return seen


def time_rounds(watcher: ChainWatcher) -> list[float]:
    """Seconds of each finished watcher round (appended when it ends: the count is also the round boundary)."""
    durations: list[float] = []
    round_ = watcher.round

    async def timed() -> None:
        started = time.perf_counter()
        try:
            await round_()
        finally:
            durations.append(time.perf_counter() - started)

    watcher.round = timed  # type: ignore[method-assign]
    return durations


async def until(predicate: Callable[[], Any], what: str, timeout: float = 60, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def fund(chain: TestChain, to: str, wei: int) -> None:
    funder = Account.from_key(chain.collector_keys[0])
    tx = {"to": to, "value": wei, "from": funder.address, "chainId": chain.chain_id, "gas": 21_000,
          "nonce": chain.w3.eth.get_transaction_count(funder.address, "pending"), "gasPrice": chain.w3.eth.gas_price}
    chain.w3.eth.wait_for_transaction_receipt(
        chain.w3.eth.send_raw_transaction(funder.sign_transaction(tx).raw_transaction), 30)


async def own_line(minter: Minter, url: str) -> Chain:
    """The relayer's own node connection (through the sender's proxy), so its calls are counted apart from the
    watcher's; the calls are the same ones as on the shared connection."""
    assert minter.relayer is not None
    line = Chain(minter.settings.model_copy(update={"chain_rpc_url": url}))
    await line.connect()
    minter.relayer.chain = line
    return line


# --- the parts ----------------------------------------------------------------------------------------------------
async def wallet_mints(chain: TestChain, status: Status, n: int) -> dict[str, Any]:
    """n fresh wallets, each funded and minting its own job's `mint.tx`; each mint reported (POST tx_hash)."""
    gas, reported = [], []
    for _ in range(n):
        wallet = Account.create()
        fund(chain, wallet.address, 10**16)
        job_id = await status.pinned_job(wallet.address)
        tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], wallet.key.to_0x_hex())
        gas.append(chain.w3.eth.wait_for_transaction_receipt(tx_hash, 30)["gasUsed"])
        started = time.perf_counter()
        reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})
        assert reply.status_code == 200 and reply.json()["stage"] == "minted", reply.text
        reported.append(time.perf_counter() - started)
    return {"gas": gas, "reported": reported}


async def packed_mints(chain: TestChain, status: Status, n: int, minted: dict[str, float]) -> None:
    """n jobs (fresh wallets) minted in one block (automine paused; sent by a collector: the token still goes to
    each job's wallet), then every one `minted` at status: n more mints in the not-yet-final window."""
    if n <= 0:
        return
    jobs = [await status.pinned_job(Account.create().address) for _ in range(n)]
    txs = [(await status.job(j))["mint"]["tx"] for j in jobs]
    chain.rpc("evm_setAutomine", False)
    try:
        hashes = [send_tx(chain, tx, chain.collector_keys[1], gas=300_000) for tx in txs]
        chain.mine(1)
    finally:
        chain.rpc("evm_setAutomine", True)
    receipts = [chain.w3.eth.wait_for_transaction_receipt(h, 30) for h in hashes]
    assert all(r["status"] == 1 for r in receipts) and len({r["blockNumber"] for r in receipts}) == 1
    await until(lambda: all(j in minted for j in jobs), f"{n} packed mints minted", interval=0.05)


async def watcher_calls(chain: TestChain, minter: Minter, proxy: SizedProxy, durations: list[float],
                        rounds: int) -> dict[str, Any]:
    """R whole rounds of the watcher, counted at its proxy from the end of one round to the end of the R-th after."""
    mark = len(durations)
    await until(lambda: len(durations) > mark, "a watcher round")
    start, before, size = len(durations), Counter(proxy.calls), Counter(proxy.bytes)
    await until(lambda: len(durations) >= start + rounds, f"{rounds} watcher rounds", timeout=rounds * 5 + 30)
    calls, size = Counter(proxy.calls) - before, Counter(proxy.bytes) - size
    open_mints = len(await minter.store.open_mints())  # unchanged over the rounds (checked by the caller)
    # Of a round's time: decoding the range's VoucherRedeemed logs (the node read apart, not through the proxy).
    lo = min([m.block for m in await minter.store.open_mints()] or [minter.watcher.head])
    entries = list(chain.w3.eth.get_logs({"address": minter.chain.address, "topics": [minter.chain.redeemed_topic],
                                          "fromBlock": lo, "toBlock": minter.watcher.head}))
    decode = []
    for _ in range(5):
        started = time.perf_counter()
        minter.chain.redeemed(entries)
        decode.append(time.perf_counter() - started)
    done = len(durations) - start
    assert done == rounds, done
    return {"m": open_mints, "rounds": done, "calls": calls, "per_round": sum(calls.values()) / done,
            "round_ms": statistics.median(durations[start:]) * 1e3, "kb": sum(size.values()) / done / 1024,
            "logs_kb": size["eth_getLogs"] / done / 1024, "decode_ms": statistics.median(decode) * 1e3}


async def relays(chain: TestChain, status: Status, n: int, sends: list[float], minted: dict[str, float],
                 sender: RpcProxy, watcher: RpcProxy, durations: list[float]) -> dict[str, Any]:
    jobs = [await status.pinned_job(Account.create().address) for _ in range(n)]
    answered: dict[str, float] = {}

    async def ask(job_id: str) -> Any:
        reply = await status.relay(job_id)
        answered[job_id] = time.perf_counter()
        return reply

    sends.clear()
    s0, w0, r0 = Counter(sender.calls), Counter(watcher.calls), len(durations)
    t0 = time.perf_counter()
    replies = await asyncio.gather(*(ask(j) for j in jobs))
    bad = [r.text for r in replies if r.status_code != 202 or not r.json().get("tx_hash")]
    assert not bad, bad[:3]
    await until(lambda: all(j in minted for j in jobs), "every relayed job minted", timeout=120, interval=0.05)
    t_minted = max(minted[j] for j in jobs)
    s1, w1, r1 = Counter(sender.calls), Counter(watcher.calls), len(durations)
    store = status.minter.store

    async def all_done() -> bool:
        return await store.db.fetchval("SELECT COUNT(*) FROM minter_relays WHERE state = 'sent'") == 0

    await until(all_done, "every relay swept to done", timeout=60, interval=0.1)
    s2 = Counter(sender.calls)
    rows = await store.db.fetchval("SELECT COUNT(*) FROM minter_relays")  # this store's only relays
    assert rows == n and len(sends) == n, (rows, len(sends))
    gas = [chain.w3.eth.get_transaction_receipt(r.json()["tx_hash"])["gasUsed"] for r in replies]
    gaps = [b - a for a, b in zip(sorted(sends), sorted(sends)[1:], strict=False)]
    return {"n": n, "sent": max(sends) - t0, "first_sent": min(sends) - t0, "answered": max(answered.values()) - t0,
            "minted": t_minted - t0, "gap": statistics.median(gaps), "gas": gas,
            "sender_sent": s1 - s0, "sender_all": s2 - s0, "sweep": s2 - s1,
            "watcher_window": w1 - w0, "window_rounds": r1 - r0}


async def voucher_page(status: Status, pages: int) -> dict[str, Any]:
    """A page of 100 pinned jobs, first read (both voucher caches emptied) and cached read, `pages` times."""
    jobs = {await status.pinned_job(Account.create().address) for _ in range(100)}
    client = status.deps.minter
    calls = Counter[str]()
    sign = client.stub.SignVouchers

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["SignVouchers"] += 1
        return sign(*args, **kwargs)

    client.stub.SignVouchers = counted  # type: ignore[method-assign]
    first, cached, first_calls, cached_calls = [], [], [], []
    params = {"stage": "pinned", "limit": 100}
    for _ in range(pages):
        client._mints.clear()
        status.minter.chain._mints.clear()
        before = calls["SignVouchers"]
        started = time.perf_counter()
        reply = await status.client.get("/v1/jobs", params=params)
        first.append(time.perf_counter() - started)
        first_calls.append(calls["SignVouchers"] - before)
        page = reply.json()["jobs"]
        assert {j["job_id"] for j in page} == jobs and all(j["mint"] for j in page), reply.text[:300]
        before = calls["SignVouchers"]
        started = time.perf_counter()
        reply = await status.client.get("/v1/jobs", params=params)
        cached.append(time.perf_counter() - started)
        cached_calls.append(calls["SignVouchers"] - before)
        assert all(j["mint"] for j in reply.json()["jobs"])
    client.stub.SignVouchers = sign  # type: ignore[method-assign]
    # The minter's part of a first read: signing and encoding 100 vouchers, no cache.
    chain = status.minter.chain
    records = [await status.store.get(j) for j in jobs]
    refs = [JobRef(r.job_id, r.wallet, r.state.token_uri) for r in records if r is not None]
    signing = []
    for _ in range(pages):
        chain._mints.clear()
        started = time.perf_counter()
        for ref in refs:
            chain.mint_ready(ref)
        signing.append(time.perf_counter() - started)
    return {"first": first, "cached": cached, "first_calls": first_calls, "cached_calls": cached_calls,
            "signing": signing}


Marks = dict[int, tuple[list[float], list[float]]]  # id(minter) -> (relays handled at, relays sent at)


async def cut_once(bridge: Status, live: list[Minter], marks: Marks) -> tuple[Minter, list[str], dict[str, float]]:
    """Relays waiting, the active sender's broker connection closed, more relays asked for: the standby's first
    relay handled and first relay sent, in seconds after the cut. (the cut minter, the jobs, the figures)"""
    waiting = [await bridge.pinned_job(Account.create().address) for _ in range(6)]
    later = [await bridge.pinned_job(Account.create().address) for _ in range(4)]
    before = {id(m): m.relayer.counts["sent"] for m in live}  # type: ignore[union-attr]

    def grown(m: Minter) -> int:
        return m.relayer.counts["sent"] - before[id(m)]  # type: ignore[union-attr]

    asking = asyncio.gather(*(bridge.relay(j) for j in waiting))
    await until(lambda: sum(grown(m) for m in live) >= 2, "two relays sent")
    active = next(m for m in live if grown(m))
    standby = next(m for m in live if m is not active)
    handled_at, sent_at = marks[id(standby)]
    cut = time.perf_counter()
    await active.broker._connection.close()  # type: ignore[union-attr]
    closed = time.perf_counter() - cut
    more = asyncio.gather(*(bridge.relay(j) for j in later))
    await until(lambda: any(t > cut for t in sent_at), "the standby's first relay", timeout=60, interval=0.001)
    figures = {"handed": min(t for t in handled_at if t > cut) - cut, "sent": min(t for t in sent_at if t > cut) - cut,
               "close": closed}
    replies = [*(await asking), *(await more)]
    bad = [r.text for r in replies if r.status_code != 202 or not r.json().get("tx_hash")]
    assert not bad, bad[:3]
    return active, waiting + later, figures


async def takeovers(chain: TestChain, tmp: Path, dsn: str, prefix: str, reps: int) -> dict[str, Any]:
    """Two minters on one PostgreSQL database; K times a cut of the active sender (cut_once), then a fresh
    standby joins (the cut one stays closed: an explicit close is not reconnected; it is stopped at the end)."""
    settings = {**MINTER, "database_url": dsn, "chain_start_block": chain.w3.eth.block_number + 1}
    amqp = (AMQP, prefix)
    relayer = chain.address_of(chain.relayer_key)
    start_nonce = chain.w3.eth.get_transaction_count(relayer)
    figures: dict[str, list[float]] = {"handed": [], "sent": [], "close": []}
    jobs: list[str] = []
    marks: Marks = {}
    cut_minters: list[Minter] = []
    async with AsyncExitStack() as stack:
        async def minter(i: int) -> Minter:
            one = await stack.enter_async_context(running_minter(chain, tmp / f"m{i}", amqp, **settings))
            assert one.relayer is not None
            marks[id(one)] = (stamp_handled(one.relayer), stamp_sends(one.relayer))
            return one

        live = [await minter(0), await minter(1)]
        bridge = await stack.enter_async_context(
            running_status(chain, tmp / "status", amqp=amqp, minter=live[0], database_url=dsn, **STATUS))
        for k in range(reps):
            cut, asked, one = await cut_once(bridge, live, marks)
            jobs += asked
            for key, value in one.items():
                figures[key].append(value)
            live.remove(cut)
            cut_minters.append(cut)
            live.append(await minter(k + 2))
        await asyncio.gather(*(bridge.wait_stage(j, "minted", timeout=60) for j in jobs))
        nonces = [r["nonce"] for r in await bridge.store.db.fetch("SELECT nonce FROM minter_relays ORDER BY nonce")]
        tokens = {j: chain.contract.functions.tokenOfJob(job_id_to_bytes32(j)).call() for j in jobs}
        # The cut minters stop together (each waits out its broker calls, ~8 s), not one after another.
        await asyncio.gather(*(m.stop() for m in cut_minters))
        for limiter in (bridge.deps.relay_limiter, bridge.deps.report_limiter):  # their pools: running_status
            close = getattr(limiter, "close", None)                               # leaves them open
            if close is not None:
                await close()
    return {**figures, "jobs": len(jobs),
            "nonces_ok": nonces == list(range(start_nonce, start_nonce + len(jobs)))
            and chain.w3.eth.get_transaction_count(relayer) == start_nonce + len(jobs),
            "minted_once": len(set(tokens.values())) == len(jobs) and 0 not in tokens.values()}


# --- the run ------------------------------------------------------------------------------------------------------
async def drop_prefixes(*prefixes: str) -> None:
    try:
        connection = await aio_pika.connect(AMQP, timeout=10)
        async with connection:
            channel = await connection.channel()
            for prefix in prefixes:
                await asyncio.wait_for(delete_topology(channel, Topology(prefix)), 60)
    except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
        print(f"warning: could not delete broker prefixes {', '.join(prefixes)} ({type(exc).__name__}); delete them "
              "by hand", file=sys.stderr)


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def log_summary(path: Path) -> list[str]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            counts[("?", "?", line[:120])] += 1
            continue
        level = str(entry.get("level", "")).lower()
        if level in ("warning", "error", "critical", "exception"):
            counts[(level, str(entry.get("logger") or entry.get("module") or ""), str(entry.get("event"))[:160])] += 1
    return [f"{n:4d} x {level} {where}: {event}" for (level, where, event), n in counts.most_common()]


async def main(args: argparse.Namespace) -> None:
    p1, p2 = f"benchchain{uuid.uuid4().hex[:8]}", f"benchchain{uuid.uuid4().hex[:8]}"
    db_name = f"mintpipe_bench_{uuid.uuid4().hex[:8]}"
    dsn = SERVER.rsplit("/", 1)[0] + f"/{db_name}"
    with tempfile.TemporaryDirectory() as tmp_name, running_chain(Path(tmp_name) / "anvil") as chain:
        tmp = Path(tmp_name)
        log_path = args.log or tmp / "services.log"
        log_file = log_path.open("w")
        configure_logging("bench", "INFO")
        logging.getLogger().handlers[0].setStream(log_file)  # type: ignore[attr-defined]
        try:
            async with SizedProxy(chain.url) as watch_proxy, SizedProxy(chain.url) as send_proxy, \
                    running_minter(chain, tmp / "minter", (AMQP, p1), chain_rpc_url=watch_proxy.url, **MINTER) as m, \
                    running_status(chain, tmp / "status", amqp=(AMQP, p1), minter=m, **STATUS) as status:
                line = await own_line(m, send_proxy.url)
                assert m.relayer is not None
                sends = stamp_sends(m.relayer)
                minted = stamp_minted(status.deps.bus)
                durations = time_rounds(m.watcher)

                print(f"gas: {args.wallet_mints} wallet-sent mints (fresh funded wallets, each its own job) ...",
                      flush=True)
                wallet = await wallet_mints(chain, status, args.wallet_mints)
                print(f"relays: {args.relays} at once through the bridge ...", flush=True)
                relayed = await relays(chain, status, args.relays, sends, minted, send_proxy, watch_proxy, durations)
                print(f"vouchers: a page of 100 pinned jobs, {args.pages} times ...", flush=True)
                vouchers = await voucher_page(status, args.pages)
                # Every mint so far final (65 blocks on top, and the watcher's next read of `finalized`), then M
                # mints not yet final for each M, packed into one block each.
                chain.mine(70)

                async def none_open() -> bool:
                    return not await m.store.open_mints()

                await until(none_open, "every mint so far final", interval=0.05)
                watched = []
                for target in sorted(set(args.m)):
                    await packed_mints(chain, status, target - len(await m.store.open_mints()), minted)
                    print(f"watcher: M={target}, {args.rounds} rounds ...", flush=True)
                    watched.append(await watcher_calls(chain, m, watch_proxy, durations, args.rounds))
                    assert watched[-1]["m"] == target, (watched[-1]["m"], target)
                counts = dict(m.relayer.counts)
                await line.close()
            take: dict[str, Any] | None = None
            if args.takeovers:
                print(f"takeover: two minters on PostgreSQL, {args.takeovers} cuts ...", flush=True)
                await admin(f'CREATE DATABASE "{db_name}"')
                try:
                    take = await takeovers(chain, tmp / "takeover", dsn, p2, args.takeovers)
                finally:
                    await admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        finally:
            await drop_prefixes(p1, p2)
            logging.getLogger().handlers[0].setStream(sys.stderr)  # type: ignore[attr-defined]
            log_file.close()
        report(wallet, relayed, watched, vouchers, take, counts, log_summary(log_path))


def report(wallet: dict[str, Any], relayed: dict[str, Any], watched: list[dict[str, Any]], vouchers: dict[str, Any],
           take: dict[str, Any] | None, counts: dict[str, int], logs: list[str]) -> None:
    small, large = watched[0], watched[-1]
    n = relayed["n"]
    print()
    print(f"gas per mint, wallet-sent      : {statistics.median(wallet['gas']):,.0f}  "
          f"(min {min(wallet['gas']):,}, max {max(wallet['gas']):,}, n={len(wallet['gas'])})")
    print(f"gas per mint, relayed          : {statistics.median(relayed['gas']):,.0f}  "
          f"(min {min(relayed['gas']):,}, max {max(relayed['gas']):,}, n={n})")
    print(f"reported tx_hash -> minted     : {ms(wallet['reported'])}  (0 confirmations)")
    print(f"{n} relays at once, one sender : first sent {relayed['first_sent']:.2f} s, "
          f"last sent {relayed['sent']:.2f} s, last answered {relayed['answered']:.2f} s, "
          f"last minted {relayed['minted']:.2f} s after the first request")
    print(f"  relays a minute              : {n / relayed['sent'] * 60:,.0f} to sent, "
          f"{n / relayed['minted'] * 60:,.0f} to minted; the sender's pace {60 / relayed['gap']:,.0f}/min "
          f"(median gap {relayed['gap'] * 1e3:.1f} ms)")
    print(f"  relayer counts               : {counts}")
    print(f"sender RPC calls per relay     : {sum(relayed['sender_all'].values()) / n:.2f} until done "
          f"({per(relayed['sender_all'], n)})")
    print(f"  of which the sweep after     : {sum(relayed['sweep'].values()) / n:.2f} ({per(relayed['sweep'], n)})")
    print(f"  watcher in the relay window  : {sum(relayed['watcher_window'].values()) / n:.2f} per relay "
          f"({relayed['window_rounds']} rounds: {per(relayed['watcher_window'], n)})")
    for w in watched:
        print(f"watcher, M={w['m']:<4d} not final    : {w['per_round']:.2f} calls a round over {w['rounds']} rounds "
              f"({per(w['calls'], w['rounds'])}); round median {w['round_ms']:.1f} ms (decoding the logs "
              f"{w['decode_ms']:.1f} ms), {w['kb']:.1f} KB answered a round ({w['logs_kb']:.1f} of it eth_getLogs)")
    slope_ms = (large["round_ms"] - small["round_ms"]) / max(large["m"] - small["m"], 1)
    slope_kb = (large["logs_kb"] - small["logs_kb"]) / max(large["m"] - small["m"], 1)
    print(f"  each mint not yet final adds : {slope_ms:.2f} ms to a round and {slope_kb:.2f} KB to its eth_getLogs "
          "answer (the range is re-read until final)")
    amortised = large["per_round"] * (60 / DEFAULT_POLL) / RATE
    print(f"watcher at {RATE:,} mints/min, {DEFAULT_POLL:g} s poll: {amortised:.3f} calls a mint "
          f"({large['per_round']:.2f} x {60 / DEFAULT_POLL:.0f} rounds / {RATE:,})")
    print(f"voucher page, first read       : {ms(vouchers['first'])}  SignVouchers calls {vouchers['first_calls']}")
    print(f"voucher page, cached read      : {ms(vouchers['cached'])}  SignVouchers calls {vouchers['cached_calls']}")
    print(f"  100 vouchers signed (minter) : {ms(vouchers['signing'])}")
    if take:
        print(f"takeover, cut -> first handled : {spread(take['handed'])} "
              f"(min / median / max, {len(take['handed'])} cuts)")
        print(f"takeover, cut -> first sent    : {spread(take['sent'])}")
        print(f"  closing the connection took  : {spread(take['close'])}; {take['jobs']} jobs: nonces consecutive "
              f"{take['nonces_ok']}, each minted once {take['minted_once']}")

    sender_all = sum(relayed["sender_all"].values()) / n
    rows = [
        ("gas per mint, wallet-sent", f"{statistics.median(wallet['gas']):,.0f}",
         f"gasUsed, median of {len(wallet['gas'])} receipts (fresh wallet minting its own job)"),
        ("gas per mint, relayed", f"{statistics.median(relayed['gas']):,.0f}",
         f"gasUsed, median of {n} receipts (relayer -> fresh wallet)"),
        ("relays a minute, one sender", f"{n / relayed['sent'] * 60:,.0f}/min",
         f"{n} at once via the bridge: last sent {relayed['sent']:.2f} s after the first request"),
        ("  ... to minted", f"{n / relayed['minted'] * 60:,.0f}/min",
         f"last `minted` at status {relayed['minted']:.2f} s (watcher poll 0.2 s, 0 confirmations)"),
        ("RPC calls per relayed mint (sent)", f"{sender_all:.2f}",
         "sender's proxy, request -> swept to done, / N"),
        *((f"watcher calls a round, M={w['m']}", f"{w['per_round']:.2f}",
           f"watcher's proxy over {w['rounds']} rounds, {w['calls'].get('eth_getTransactionReceipt', 0)} receipts, "
           f"round {w['round_ms']:.0f} ms, {w['logs_kb']:.0f} KB of logs") for w in watched),
        ("watcher calls per mint (watched)", f"{amortised:.3f}",
         f"{large['per_round']:.2f} a round x 30 rounds a minute (2 s poll) / 1,000 mints a minute"),
        ("voucher page (100 pinned), first", f"{statistics.median(vouchers['first']) * 1e3:.1f} ms",
         f"GET /v1/jobs?stage=pinned&limit=100, caches emptied, median of {len(vouchers['first'])}, 1 SignVouchers"),
        ("voucher page (100 pinned), cached", f"{statistics.median(vouchers['cached']) * 1e3:.1f} ms",
         "the same GET again, 0 SignVouchers"),
    ]
    if take:
        rows += [("takeover, cut -> first sent", f"{statistics.median(take['sent']):.3f} s",
                  f"min {min(take['sent']):.3f}, max {max(take['sent']):.3f}; {len(take['sent'])} cuts, "
                  "2 minters on PostgreSQL")]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    print(f"{'measure':<{width[0]}}  {'figure':>{width[1]}}  how")
    for name, figure, how in rows:
        print(f"{name:<{width[0]}}  {figure:>{width[1]}}  {how}")
    print()
    print(f"warnings and errors logged during the run: {len(logs) and sum(int(s.split()[0]) for s in logs)}")
    for entry in logs[:20]:
        print(f"  {entry}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--relays", type=int, default=100, help="relays asked for at once (fresh wallets)")
    parser.add_argument("--wallet-mints", type=int, default=10, help="wallet-sent mints (gas, report -> minted)")
    parser.add_argument("--m", type=int, nargs="+", default=[0, 10, 100], help="mints not yet final, per watcher run")
    parser.add_argument("--rounds", type=int, default=20, help="watcher rounds counted per M")
    parser.add_argument("--takeovers", type=int, default=5, help="cuts of the active sender (0: skip)")
    parser.add_argument("--pages", type=int, default=5, help="first/cached reads of the voucher page")
    parser.add_argument("--log", type=Path, help="keep the services' JSON log here (default: summarised only)")
    asyncio.run(main(parser.parse_args()))
