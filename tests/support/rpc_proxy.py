"""A JSON-RPC proxy in front of a chain node, for counting at the wire and for a node that misbehaves.

    async with RpcProxy(chain.url) as proxy:      # proxy.url goes where the node's URL would
        proxy.calls                                # Counter of JSON-RPC methods forwarded (batches counted per call)
        proxy.empty_logs = True                    # eth_getLogs answers [] (a load-balanced node's lagging backend)
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web


class RpcProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: Counter[str] = Counter()
        self.empty_logs = False
        self.after_get_logs: Callable[[], None] | None = None  # runs once, after the next eth_getLogs answer
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    async def __aenter__(self) -> RpcProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        body: Any = json.loads(await request.read())
        calls = body if isinstance(body, list) else [body]
        for call in calls:
            self.calls[call.get("method", "?")] += 1
        if self.empty_logs and not isinstance(body, list) and body.get("method") == "eth_getLogs":
            return web.json_response({"jsonrpc": "2.0", "id": body.get("id"), "result": []})
        assert self._session is not None
        async with self._session.post(self.upstream, json=body) as reply:
            answer = await reply.read()
        hook = self.after_get_logs
        if hook is not None and not isinstance(body, list) and body.get("method") == "eth_getLogs":
            self.after_get_logs = None
            await asyncio.to_thread(hook)  # e.g. a reorg between the logs and the next read
        return web.Response(body=answer, status=reply.status, content_type="application/json")
