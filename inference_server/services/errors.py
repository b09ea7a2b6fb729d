"""Turning errors into canonical gRPC statuses with google.rpc details.

Every servicer method is wrapped with @rpc_errors, so a pipeline or store raises a typed error and
the client receives the status code, the message and an ErrorInfo with a machine-readable reason.
Anything else a servicer raises is a bug: the client gets INTERNAL with an error id (also in the
ErrorInfo's metadata as "error_id"), never grpc's bare "Unexpected error", and the server logs the
traceback next to the same id; a MemoryError becomes RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from inference_server.errors import Internal, KeygripError, ResourceExhausted, internal_message, new_error_id
from inference_server.jobs import faults

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


def _subject(request: object) -> str:
    """The user's input a request names, when it says so without a lookup: a path or a sequence pattern."""
    if not isinstance(request, message.Message):
        return ""
    for field, value in request.ListFields():
        if field.message_type is not None and field.message_type.full_name == "keygrip.v1.MediaInput":
            which = value.WhichOneof("source")
            if which == "path":
                return str(value.path)
            if which == "sequence":
                return str(value.sequence.pattern)
    return ""


def unexpected(exc: Exception, method: str, request: object) -> KeygripError:
    """The typed error a client gets for a bug in a servicer, after logging its traceback with an id."""
    error_id = new_error_id()
    subject = _subject(request)
    doing = f"handling {method}" + (f" for {subject}" if subject else "")
    extra = {"error_id": error_id, "method": method}
    if isinstance(exc, MemoryError):
        log.error("%s ran out of memory (error id %s)", method, error_id, exc_info=exc, extra=extra)
        return ResourceExhausted(
            f"the Keygrip server ran out of memory while {doing} (error id {error_id}): try again with a "
            "smaller request, or when fewer jobs are running", reason="OUT_OF_MEMORY", metadata={"error_id": error_id})
    log.error("%s failed with an internal error (error id %s)", method, error_id, exc_info=exc, extra=extra)
    return Internal(internal_message(doing, error_id, "request"), metadata={"error_id": error_id})


F = TypeVar("F", bound=Callable[..., Any])


@contextlib.asynccontextmanager
async def _statuses(context: grpc.aio.ServicerContext, name: str, request: object) -> AsyncIterator[None]:
    """What a servicer method raises, as the status the client gets (the one mapping both wrappers use)."""
    try:
        faults.trigger("rpc", name)
        yield
    except KeygripError as exc:
        await abort(context, exc)
    except grpc.aio.AbortError:
        raise  # the method aborted the call itself
    except Exception as exc:
        await abort(context, unexpected(exc, name, request))


def rpc_errors(method: F) -> F:
    """Wrap a unary or server-streaming aio servicer method."""
    name = method.__name__
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream_wrapper(self: object, request: object,
                                 context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with _statuses(context, name, request):
                async for item in method(self, request, context):
                    yield item
        return cast(F, stream_wrapper)

    @functools.wraps(method)
    async def unary_wrapper(self: object, request: object, context: grpc.aio.ServicerContext) -> Any:
        async with _statuses(context, name, request):
            return await method(self, request, context)
    return cast(F, unary_wrapper)
