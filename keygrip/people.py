"""Who to capture in a shot with several people: a Subject from what a user types or passes.

    subject(3)                -> person 3 of DetectPeople (keygrip people VIDEO)
    subject("640,360@12")     -> the person under pixel (640, 360) of frame 12
    subject("500,100,780,700@12") -> the person a box (left, top, right, bottom pixels) holds on frame 12
    subject("auto")           -> the person seen on the most frames
    subject(mocap_pb2.Subject(...)) is returned as it is.
"""

from __future__ import annotations

import re
from typing import Union

from keygrip import errors
from keygrip.v1 import mocap_pb2

SubjectLike = Union[int, str, mocap_pb2.Subject]  # noqa: UP007 - evaluated at import: Python 3.9 hosts

_NUMBER = r"\s*(-?[0-9.]+)\s*"
_POINT = re.compile(rf"^{_NUMBER},{_NUMBER}@\s*(-?[0-9]+)\s*$")
_BOX = re.compile(rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}@\s*(-?[0-9]+)\s*$")


def subject(value: SubjectLike) -> mocap_pb2.Subject:
    """A Subject from a track id, "ID", "X,Y@FRAME", "X0,Y0,X1,Y1@FRAME", "auto" / "most-visible", or a Subject.
    Raises errors.InvalidArgument for anything else, saying the forms there are."""
    if isinstance(value, mocap_pb2.Subject):
        return value
    if isinstance(value, bool):  # a bool is an int to Python, never a track id
        raise errors.InvalidArgument(f"subject {value!r} is not a person: {_FORMS}")
    if isinstance(value, int):
        return mocap_pb2.Subject(track_id=value)
    text = str(value).strip()
    if text.lower() in ("auto", "most-visible", "most_visible"):
        return mocap_pb2.Subject(most_visible=True)
    if text.isdigit():
        return mocap_pb2.Subject(track_id=int(text))
    try:
        match = _POINT.match(text)
        if match:
            x, y, frame = match.groups()
            return mocap_pb2.Subject(point=mocap_pb2.SubjectPoint(x=float(x), y=float(y), frame=int(frame)))
        match = _BOX.match(text)
        if match:
            x0, y0, x1, y1, frame = match.groups()
            return mocap_pb2.Subject(box=mocap_pb2.SubjectBox(x0=float(x0), y0=float(y0), x1=float(x1), y1=float(y1),
                                                              frame=int(frame)))
    except ValueError:  # "1.2.3" matches the pattern but is no number
        pass
    raise errors.InvalidArgument(f"subject {text!r} is not a person: {_FORMS}")


_FORMS = ("give a person's id from `keygrip people` (e.g. 2), a point on them as X,Y@FRAME in pixels "
          "(e.g. 640,360@12), a box around them as X0,Y0,X1,Y1@FRAME (e.g. 500,100,780,700@12), or auto for the "
          "person seen most")
