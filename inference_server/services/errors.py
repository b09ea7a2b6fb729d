"""Turning KeygripError into canonical gRPC statuses with google.rpc details.

Every servicer method is wrapped with @rpc_errors, so a pipeline or store raises a typed error and
the client receives the status code, the message and an ErrorInfo with a machine-readable reason.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from inference_server.errors import KeygripError

log = logging.getLogger("keygrip.rpc")
DOMAIN = "keygrip.dev"


def status_for(code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str] | None = None) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata or {})
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=[detail])
    return rpc_status.to_status(status)


async def abort(context: grpc.aio.ServicerContext, exc: KeygripError) -> None:
    await context.abort_with_status(status_for(exc.code, exc.message, exc.reason, exc.metadata))


F = TypeVar("F", bound=Callable[..., Any])


def rpc_errors(method: F) -> F:
    """Wrap a unary or server-streaming aio servicer method."""
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream_wrapper(self: object, request: object,
                                 context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in method(self, request, context):
                    yield item
            except KeygripError as exc:
                await abort(context, exc)
        return cast(F, stream_wrapper)

    @functools.wraps(method)
    async def unary_wrapper(self: object, request: object, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except KeygripError as exc:
            await abort(context, exc)
    return cast(F, unary_wrapper)
