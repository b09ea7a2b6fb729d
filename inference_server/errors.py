"""Errors a job or a service raises on purpose, each tied to a canonical gRPC status code.

Pipelines raise these with a message written for the user ("what happened, what to do next");
the gRPC front turns them into statuses with google.rpc details, and the job store records them.
Anything else that escapes a job or a service is a bug: it is reported as INTERNAL with an error id
(internal_message) that also stands in the server's log line with the traceback.
"""

from __future__ import annotations

import secrets

import grpc


class KeygripError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.metadata = dict(metadata or {})


class InvalidInput(KeygripError):
    """Bad options, a file that is not media, a malformed BVH, an unreadable rig."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_INPUT"


class NotFound(KeygripError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class FailedPrecondition(KeygripError):
    """The input is well formed but the job cannot run on it: nobody in the video, no humanoid in the rig."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class ResourceExhausted(KeygripError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class PermissionDenied(KeygripError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class JobCancelled(KeygripError):
    """Raised inside a job at the next unit of work after the user cancelled it."""

    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class Internal(KeygripError):
    """A bug of Keygrip's, not the user's doing. The message carries an error id that also stands in the
    server's log line with the traceback; build it with internal_message()."""

    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"


def new_error_id() -> str:
    """A short random id that ties the status a user sees to the server's log line (8 hex digits)."""
    return secrets.token_hex(4)


def internal_message(doing: str, error_id: str, kind: str = "input") -> str:
    """What a user reads about a bug: `doing` says what Keygrip was doing to their input ("capturing
    shot.mp4"), `kind` what they gave it ("footage"), so that they know it is not their fault."""
    return (f"Keygrip hit an internal error while {doing} (error id {error_id}): this is a bug, not your "
            f"{kind}. Try again; if it happens again, report the error id (the server log has the details).")
