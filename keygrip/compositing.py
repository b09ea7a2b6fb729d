"""Compositing passes as a host or a script runs them: a plate in, files numbered like it out.

Host-neutral (the CLI, Blender and Nuke glue all use it): parse a frame range as people write it,
start a matte, depth or clean-plate job, and download what it wrote into a folder with the plate's
own frame numbers (matte.1001.exr for plate.1001.exr), so that the files line up frame for frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from keygrip.client import Client, Job, Source
from keygrip.session import Main, Step, Worker, WorkerContext
from keygrip.v1 import compositing_pb2

T = TypeVar("T")

PASSES = ("matte", "depth", "cleanplate")
FORMATS = {"exr-half": compositing_pb2.OUTPUT_FORMAT_EXR_HALF, "exr-float": compositing_pb2.OUTPUT_FORMAT_EXR_FLOAT,
           "png16": compositing_pb2.OUTPUT_FORMAT_PNG16}


def parse_range(text: str) -> tuple[int, int]:
    """"1001-1100" (inclusive, as people write it) -> (1001, 1101), the protocol's [start, end).
    "1001-" or "1001" alone: from 1001 to the last frame (end 0). ValueError naming what to write."""
    text = text.strip()
    first, sep, last = text.partition("-")
    try:
        start = int(first)
        end = int(last) + 1 if last.strip() else 0
    except ValueError:
        raise ValueError(f"frame range {text!r}: write FIRST-LAST in the plate's frame numbers, e.g. 1001-1100"
                         ) from None
    if start < 0 or (end and end <= start):
        raise ValueError(f"frame range {text!r}: the first frame must not be negative nor after the last")
    return start, end


@dataclass
class PassPlan:
    """One pass over a plate: which, the frames, the format and the pass's own settings."""

    kind: str                                   # "matte", "depth" or "cleanplate"
    source: Source
    out_dir: Path
    frame_range: tuple[int, int] = (0, 0)       # [start, end) in the plate's numbers; end 0: to the last
    format: str = "exr-half"
    server_path: bool = False
    preview: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # MatteSettings / DepthSettings fields, clean-plate options

    def start(self, client: Client, upload_progress: Callable[[int, int], None] | None = None) -> Job:
        if self.kind not in PASSES:
            raise ValueError(f"unknown pass {self.kind!r}: use one of {', '.join(PASSES)}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}: use one of {', '.join(FORMATS)}")
        common: dict[str, Any] = dict(server_path=self.server_path, start_frame=self.frame_range[0],
                                      end_frame=self.frame_range[1], format=FORMATS[self.format],
                                      upload_progress=upload_progress)
        if self.kind == "matte":
            return client.matte(self.source, preview=self.preview, **common, **self.settings)
        if self.kind == "depth":
            return client.depth(self.source, **common, **self.settings)
        return client.clean_plate(self.source, preview=self.preview, **common, **self.settings)


    @property
    def title(self) -> str:
        return f"{self.kind} {os.path.basename(str(self.source))}"


@dataclass
class PassFiles:
    """What a pass wrote into its folder."""

    frames: dict = field(default_factory=dict)   # frame number -> path (a sequence: matte, depth)
    pattern: str = ""                            # the sequence's path with #### (what a host loads)
    files: list = field(default_factory=list)    # every file written, in order (plate, coverage, preview)
    warnings: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def download_sequence(client: Client, seq: compositing_pb2.OutputSequence, out_dir: Path,
                      progress: Callable[[int, int], None] | None = None) -> PassFiles:
    """Every frame of a job's output sequence into out_dir, named as the server named it (the plate's
    numbers and padding)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = PassFiles(pattern=str(out_dir / seq.pattern), metadata=dict(seq.metadata))
    for i, frame in enumerate(seq.frames):
        path = client.download(frame.image.id, out_dir / os.path.basename(frame.image.name))
        files.frames[frame.number] = path
        files.files.append(path)
        if progress is not None:
            progress(i + 1, len(seq.frames))
    return files


def download_result(client: Client, result: object, out_dir: Path,
                    progress: Callable[[int, int], None] | None = None) -> PassFiles:
    """A finished pass's files into out_dir: a MatteResult's or DepthResult's sequence (and preview),
    or a CleanPlateResult's plate, coverage map and preview."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(result, compositing_pb2.MatteResult):
        files = download_sequence(client, result.matte, out_dir, progress)
        extra = [result.preview]
    elif isinstance(result, compositing_pb2.DepthResult):
        files = download_sequence(client, result.depth, out_dir, progress)
        extra = []
    elif isinstance(result, compositing_pb2.CleanPlateResult):
        files = PassFiles(metadata=dict(result.metadata))
        extra = [result.plate, result.coverage, result.preview]
    else:
        raise TypeError(f"not a compositing result: {type(result).__name__}")
    for ref in extra:
        if ref.id:
            files.files.append(client.download(ref.id, out_dir / os.path.basename(ref.name)))
    files.warnings = list(getattr(result, "warnings", []))
    return files


def steps(plan: PassPlan, *, write: Callable[[PassFiles], T]) -> list[Step]:
    """run the pass -> download its files -> write, for a Session. write(files): main thread, the
    host's scene writing (a node group wired to the files); its value is the session's value."""

    def run(ctx: WorkerContext, _: object) -> PassFiles:
        result = ctx.run_job(plan.start(ctx.client, upload_progress=ctx.transfer_progress("uploading")), plan.kind)
        return download_result(ctx.client, result, plan.out_dir,
                               progress=lambda done, total: ctx.progress("downloading", done / max(total, 1)))

    return [Worker(run), Main(write)]
