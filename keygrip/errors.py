"""Python exceptions for the server's status codes, carrying the server's own message."""

from __future__ import annotations

import re
from typing import cast

import grpc

_ERROR_ID = re.compile(r"\(error id ([0-9a-f]{8})\)")


class KeygripError(Exception):
    """Base class. `code` is the gRPC status code name, `reason` the server's ErrorInfo reason.

    error_id: for a bug on the server (INTERNAL) and the like, the id that finds the server's log line
    with the traceback (it is in the message too); "" otherwise.
    """

    code = "UNKNOWN"

    def __init__(self, message: str, *, code: str | None = None, reason: str = "", error_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.reason = reason
        match = None if error_id else _ERROR_ID.search(message)
        self.error_id = error_id or (match.group(1) if match else "")


class InvalidArgument(KeygripError):
    code = "INVALID_ARGUMENT"


class NotFound(KeygripError):
    code = "NOT_FOUND"


class FailedPrecondition(KeygripError):
    code = "FAILED_PRECONDITION"


class ResourceExhausted(KeygripError):
    code = "RESOURCE_EXHAUSTED"


class PermissionDenied(KeygripError):
    code = "PERMISSION_DENIED"


class Unauthenticated(KeygripError):
    code = "UNAUTHENTICATED"


class Internal(KeygripError):
    """A bug in the server; error_id names its log line."""

    code = "INTERNAL"


class ServerUnavailable(KeygripError):
    """The server cannot be reached: not running, wrong address, or the connection broke.

    address: the server that was tried, when known.
    """

    code = "UNAVAILABLE"

    def __init__(self, message: str, *, code: str | None = None, reason: str = "", address: str = "") -> None:
        super().__init__(message, code=code, reason=reason)
        self.address = address


class JobFailed(KeygripError):
    """A job ended in FAILED; `code` and `reason` come from the job's error."""


class JobCancelled(KeygripError):
    code = "CANCELLED"


_BY_CODE: dict[str, type[KeygripError]] = {
    cls.code: cls for cls in (InvalidArgument, NotFound, FailedPrecondition, ResourceExhausted,
                              PermissionDenied, Unauthenticated, ServerUnavailable, Internal)
}


def _error_info(err: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """The ErrorInfo reason and metadata from google.rpc status details, if the server sent them."""
    try:
        from google.rpc import error_details_pb2, status_pb2
    except ImportError:  # googleapis-common-protos is optional for hosts
        return "", {}
    for item in err.trailing_metadata() or ():
        key, value = cast("tuple[str, bytes]", item)  # the stubs say _Metadatum; it is a (key, value) pair
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason, dict(info.metadata)
    return "", {}


def from_rpc_error(err: grpc.RpcError, address: str = "") -> KeygripError:
    code = err.code()
    details = err.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        return ServerUnavailable(
            f"cannot reach the Keygrip server at {address or 'its address'} ({details}); "
            "start it with `keygrip serve` or check --address / KEYGRIP_ADDRESS", address=address)
    if code == grpc.StatusCode.CANCELLED:
        return JobCancelled(details)
    cls = _BY_CODE.get(code.name, KeygripError)
    reason, metadata = _error_info(err)
    return cls(details, code=code.name, reason=reason, error_id=metadata.get("error_id", ""))


def for_job_error(code: str, reason: str, message: str) -> KeygripError:
    if code == "CANCELLED":
        return JobCancelled(message, reason=reason)
    return JobFailed(message, code=code, reason=reason)


def user_message(exc: BaseException, address: str = "") -> str:
    """One line for an artist that says what went wrong and what to do next (every host shows this).

    address: the server the host meant to reach, named when it cannot be reached (else the one the
    error names).
    """
    if isinstance(exc, ServerUnavailable):
        where = address or exc.address or "its address"
        return (f"server not reachable at {where}: start it with "
                f"`python -m inference_server --listen {where}` "
                "or enable 'Start a local server' in the Keygrip preferences")
    if isinstance(exc, Unauthenticated):
        return "the server refused the token: set the token the server was started with in the Keygrip preferences"
    if isinstance(exc, JobCancelled):
        return "cancelled"
    if isinstance(exc, KeygripError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
