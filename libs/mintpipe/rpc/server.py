"""gRPC plumbing every service shares: an aio server with health (tracking reality) and reflection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mintpipe.runtime.log import get_logger

log = get_logger("mintpipe.grpc_runtime")

Check = Callable[[], Awaitable[bool] | bool]


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


class RejectUndecodable(grpc.aio.ServerInterceptor):
    """A request body that does not parse as the method's message is the caller's fault: INVALID_ARGUMENT,
    not grpc's default UNKNOWN "Unexpected DecodeError". Covers unary-request methods (all of ours).

    The wrapped handler is made once per method and kept: a server's methods are fixed once it runs, and making
    it per call (three closures and a method handler) was a visible part of each call's CPU (py-spy, submit path)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, Any] = {}

    async def intercept_service(self, continuation: Callable[..., Any],
                                handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            wrapped = self._wrap(await continuation(handler_call_details))
            if wrapped is not None:
                self._wrapped[method] = wrapped
        return wrapped

    def _wrap(self, handler: Any) -> Any:
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer

        def tolerant(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception as exc:  # DecodeError, bad UTF-8 in a string field, …
                return _Undecodable(exc)

        async def refuse(request: _Undecodable, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request: not a valid message ({request.error})")

        if handler.response_streaming:
            behaviour = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, _Undecodable):
                    await refuse(request, context)
                result = behaviour(request, context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:
                    for item in await result if asyncio.iscoroutine(result) else result:
                        yield item

            return grpc.unary_stream_rpc_method_handler(unary_stream, request_deserializer=tolerant,
                                                        response_serializer=handler.response_serializer)
        behaviour = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await refuse(request, context)
            result = behaviour(request, context)
            return await result if asyncio.iscoroutine(result) else result

        return grpc.unary_unary_rpc_method_handler(unary_unary, request_deserializer=tolerant,
                                                   response_serializer=handler.response_serializer)


class GrpcServer:
    """Owns a grpc.aio server, its health servicer and a probe loop that keeps health truthful."""

    def __init__(self, host: str, port: int, service_names: Iterable[str]) -> None:
        self.server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], interceptors=[RejectUndecodable()])
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names = list(service_names)
        reflection.enable_server_reflection(
            [*self.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME],
            self.server,
        )
        self.address = f"{host}:{port}"
        self.port = self.server.add_insecure_port(self.address)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.address}")
        self._probe: asyncio.Task[None] | None = None
        self._draining = False

    async def start(self, checks: dict[str, Check], interval: float = 1.0) -> None:
        await self.server.start()
        log.info("grpc listening", address=self.address, port=self.port)
        self._probe = asyncio.create_task(self._probe_loop(checks, interval))

    async def _set_all(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def _probe_loop(self, checks: dict[str, Check], interval: float) -> None:
        last: bool | None = None
        while not self._draining:
            failing = []
            for name, check in checks.items():
                try:
                    result = check()
                    ok = await result if asyncio.iscoroutine(result) else result
                except Exception:  # a probe that raises is a failing probe
                    ok = False
                if not ok:
                    failing.append(name)
            serving = not failing
            if serving != last and not self._draining:
                await self._set_all(serving)
                log.info("health", serving=serving, failing=failing)
                last = serving
            await asyncio.sleep(interval)

    async def begin_shutdown(self) -> None:
        """First step of a drain: report NOT_SERVING so callers and orchestrators route elsewhere."""
        self._draining = True
        if self._probe is not None:
            self._probe.cancel()
        await self._set_all(False)

    async def stop(self, grace: float) -> None:
        await self.server.stop(grace)
