"""Compositing passes as a host or a script runs them: a plate in, files numbered like it out.

Host-neutral (the CLI, Blender and Nuke glue all use it; no host import): a pass over a plate's
working range (keygrip.plates: handles kept apart), the frames in that range uploaded deduplicated
and resumable (no folder shared with the server is assumed; server_path stays an option), the job
submitted, watched and cancellable, and its files downloaded into a destination pattern in the
host's style (/out/shot010_matte.####.exr) with the plate's own frame numbers (matte.1001.exr for
plate.1001.exr), so that the files line up frame for frame. keygrip.node_graph says how to wire them.

    plate = Plate.find("plate.####.exr", handles=8)
    plan = PassPlan.for_plate("matte", plate, destination="/out/shot010_matte.####.exr")
    job = plan.start(client)                       # uploads frames 1009-1092 only, then submits
    files = download_result(client, job.result(), plan.out_dir, destination=plan.destination)
    graph = files.graph("matte", plate.path)       # nodes to build in the host

In a host, steps(plan, write=...) runs the same as a Session (worker thread, progress, cancel).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from keygrip import errors, node_graph, sequences
from keygrip.client import Client, Job, SequenceUpload, Source, find_local_sequence, known_sha256
from keygrip.plates import FrameRange, Plate
from keygrip.plates import parse_range as parse_range  # re-exported: where the CLI and hosts found it
from keygrip.session import Main, Step, Worker, WorkerContext
from keygrip.v1 import common_pb2, compositing_pb2

T = TypeVar("T")

PASSES = ("matte", "depth", "cleanplate")
FORMATS = {"exr-half": compositing_pb2.OUTPUT_FORMAT_EXR_HALF, "exr-float": compositing_pb2.OUTPUT_FORMAT_EXR_FLOAT,
           "png16": compositing_pb2.OUTPUT_FORMAT_PNG16}
SUFFIXES = {"exr-half": ".exr", "exr-float": ".exr", "png16": ".png"}


def default_destination(plate: Plate, kind: str, folder: str | os.PathLike[str], *, format: str = "exr-half",
                        style: str = "hash") -> str:
    """Where a pass over a plate goes by default: folder/<plate name>_<pass>.####.exr, with the plate's
    padding (4 for a video or an unpadded plate), in a host's pattern style (sequences.HOST_STYLES)."""
    stem = (plate.sequence.head.rstrip("._-") or "plate") if plate.sequence is not None else Path(plate.path).stem
    padding = plate.padding or 4
    return sequences.SequencePath(Path(folder), f"{stem}_{kind}.", padding, SUFFIXES[format]).text(style)


@dataclass
class PlateUpload:
    """What a pass reads, once its plate is where the server can read it: the MediaInput, and for an
    uploaded image sequence what was sent (None for a video, a server path or an artifact)."""

    media_input: common_pb2.MediaInput
    frames: SequenceUpload | None = None


@dataclass
class PassPlan:
    """One pass over a plate: which, the frames, the format, where the files go and the pass's settings.

    frame_range: [start, end) in the plate's numbers (end 0: to the last); for_plate() fills it from a
    Plate's working range. destination: a pattern the pass's sequence is written to
    (/out/shot010_matte.####.exr, %04d and $F4 alike; a clean plate's one frame too); "": out_dir with
    the server's names (matte.####.exr). server_path: the server reads the plate from its own disk
    instead of an upload (only when it can see it, inside its allowed roots).
    """

    kind: str                                   # "matte", "depth" or "cleanplate"
    source: Source
    out_dir: Path
    frame_range: tuple[int, int] = (0, 0)       # [start, end) in the plate's numbers; end 0: to the last
    format: str = "exr-half"
    server_path: bool = False
    preview: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # MatteSettings / DepthSettings fields, clean-plate options
    destination: str = ""

    @classmethod
    def for_plate(cls, kind: str, plate: Plate, *, destination: str = "", out_dir: str | os.PathLike[str] = "",
                  handles: bool = False, frames: FrameRange | None = None, **options: Any) -> PassPlan:
        """A pass over a plate's working range (handles=True: the whole plate; frames: a range of its own,
        which must lie inside the plate). out_dir: for the files beside the sequence (previews, a clean
        plate's coverage); "": the destination's folder. options: format, server_path, preview, settings."""
        frame_range = plate.check(frames) if frames is not None else plate.to_process(handles)
        if not out_dir:
            if not destination:
                raise ValueError("give a destination pattern (e.g. /out/shot010_matte.####.exr) or an out_dir")
            out_dir = sequences.SequencePath.parse(destination).folder
        source: Source = plate.sequence if plate.sequence is not None else plate.path
        plan = cls(kind, source, Path(out_dir), frame_range.start_end(), destination=destination, **options)
        plan.check()
        return plan

    def check(self) -> None:
        """ValueError naming what to change: an unknown pass or format, a destination that is not a
        pattern or whose file type is not the format's."""
        if self.kind not in PASSES:
            raise ValueError(f"unknown pass {self.kind!r}: use one of {', '.join(PASSES)}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}: use one of {', '.join(FORMATS)}")
        if self.destination:
            tail = sequences.SequencePath.parse(self.destination).tail
            # (the tail alone, ".exr", is a dot-file name to pathlib: it has no suffix)
            if not tail.lower().endswith(SUFFIXES[self.format]):
                raise ValueError(f"destination {self.destination} does not end in {SUFFIXES[self.format]}, which "
                                 f"the {self.format} format writes; change one of them")

    def upload(self, client: Client, progress: Callable[[int, int], None] | None = None) -> PlateUpload:
        """Put the plate where the server reads it: an image sequence's frames inside frame_range uploaded
        (deduplicated and resumable; see Client.upload_frames), a video uploaded whole, or with
        server_path the path as it is."""
        source = self.source
        if self.server_path or isinstance(source, (common_pb2.MediaInput, common_pb2.ArtifactRef)):
            return PlateUpload(client.media_input(source, server_path=self.server_path, progress=progress))
        seq = source if isinstance(source, sequences.Sequence) else find_local_sequence(source)
        if seq is None:
            return PlateUpload(client.media_input(source, progress=progress))
        start, end = self.frame_range
        wanted = [n for n in seq.frames if n >= start and (not end or n < end)]
        if not wanted:
            raise errors.InvalidArgument(f"frame range {start}-{end - 1 if end else ''} holds no frame of "
                                         f"{seq.describe()}")
        report = client.upload_frames(seq, frames=wanted, progress=progress)
        return PlateUpload(report.media_input, report)

    def submit(self, client: Client, media: common_pb2.MediaInput) -> Job:
        """Start the pass's job on what upload() returned; returns at once with the job."""
        self.check()
        common: dict[str, Any] = dict(start_frame=self.frame_range[0], end_frame=self.frame_range[1],
                                      format=FORMATS[self.format])
        if self.kind == "matte":
            return client.matte(media, preview=self.preview, **common, **self.settings)
        if self.kind == "depth":
            return client.depth(media, **common, **self.settings)
        return client.clean_plate(media, preview=self.preview, **common, **self.settings)

    def start(self, client: Client, upload_progress: Callable[[int, int], None] | None = None) -> Job:
        """upload() then submit()."""
        self.check()
        return self.submit(client, self.upload(client, upload_progress).media_input)

    @property
    def title(self) -> str:
        source = self.source
        name = source.file_pattern() if isinstance(source, sequences.Sequence) else os.path.basename(str(source))
        return f"{self.kind} {name}"


@dataclass
class PassFiles:
    """What a pass wrote: the sequence's frames by number, every file, warnings and metadata."""

    frames: dict = field(default_factory=dict)   # frame number -> path (a sequence: matte, depth)
    pattern: str = ""                            # the sequence's path with #### (what a host loads)
    files: list = field(default_factory=list)    # every file written; a clean plate's: plate, coverage, preview
    warnings: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    downloaded: list = field(default_factory=list)  # frame numbers fetched now (the others were already there)

    def pattern_as(self, style: str) -> str:
        """The sequence's pattern in a host's style ("hash": ####, "printf": %04d, "houdini": $F4)."""
        return sequences.SequencePath.parse(self.pattern).text(style) if self.pattern else ""

    @property
    def frame_range(self) -> FrameRange:
        """First..last frame written (the plate's numbers)."""
        if self.frames:
            return FrameRange(min(self.frames), max(self.frames))
        return FrameRange.parse(str(self.metadata.get("frame_range", "")))

    def result_path(self, kind: str) -> Path | str:
        """What a host reads for the pass: the sequence's #### pattern, or a clean plate's file."""
        return self.pattern if kind != "cleanplate" else Path(self.files[0])

    def graph(self, kind: str, plate_path: str | os.PathLike[str], plate_range: FrameRange | None = None,
              **options: Any) -> node_graph.Graph:
        """The node graph to build for these files (keygrip.node_graph.pass_graph). plate_range: the plate's
        frames to show; None: the frames the pass covered."""
        result = self.result_path(kind)
        if kind == "cleanplate":
            ref = int(self.metadata.get("reference_frame", 0) or 0)
            result_range = FrameRange(ref, ref)
        else:
            result_range = self.frame_range
        covered = FrameRange.parse(self.metadata["frame_range"]) if "frame_range" in self.metadata else result_range
        return node_graph.pass_graph(kind, plate_path=os.fspath(plate_path), plate_range=plate_range or covered,
                                     result_path=str(result), result_range=result_range, **options)


def _fetch(client: Client, ref: common_pb2.ArtifactRef, dest: Path) -> bool:
    """Download an artifact to dest unless dest already holds exactly it (a download run again after a
    break fetches only what is missing); True when it was fetched. A file of another size is replaced
    without being read; one of the same size is hashed, unless this process already hashed or wrote it
    and it has not changed since (known_sha256)."""
    if dest.is_file():
        size = dest.stat().st_size
        if size > 0 and (not ref.size or size == ref.size) and known_sha256(dest) == ref.id:
            return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    client.download(ref.id, dest)
    return True


def download_sequence(client: Client, seq: compositing_pb2.OutputSequence, out_dir: Path,
                      progress: Callable[[int, int], None] | None = None, *,
                      destination: str | os.PathLike[str] = "") -> PassFiles:
    """Every frame of a job's output sequence, with the plate's frame numbers: into out_dir named as
    the server named them (the plate's padding), or into a destination pattern
    (/out/shot010_matte.####.exr, %04d, $F4). Frames already there with the same content are kept."""
    dest = (sequences.SequencePath.parse(destination) if destination
            else sequences.SequencePath.parse(out_dir / seq.pattern))
    files = PassFiles(pattern=dest.text("hash"), metadata=dict(seq.metadata))
    for i, frame in enumerate(seq.frames):
        path = dest.path(frame.number)
        if _fetch(client, frame.image, path):
            files.downloaded.append(frame.number)
        files.frames[frame.number] = path
        files.files.append(path)
        if progress is not None:
            progress(i + 1, len(seq.frames))
    return files


def download_result(client: Client, result: object, out_dir: Path,
                    progress: Callable[[int, int], None] | None = None, *,
                    destination: str | os.PathLike[str] = "") -> PassFiles:
    """A finished pass's files: a MatteResult's or DepthResult's sequence (into destination when given,
    else out_dir) and preview, or a CleanPlateResult's plate (at destination's reference-frame path
    when given), coverage map and preview (into out_dir)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(result, compositing_pb2.MatteResult):
        files = download_sequence(client, result.matte, out_dir, progress, destination=destination)
        extra = [(result.preview, out_dir / os.path.basename(result.preview.name))]
    elif isinstance(result, compositing_pb2.DepthResult):
        files = download_sequence(client, result.depth, out_dir, progress, destination=destination)
        extra = []
    elif isinstance(result, compositing_pb2.CleanPlateResult):
        files = PassFiles(metadata=dict(result.metadata))
        plate = (sequences.SequencePath.parse(destination).path(result.reference_frame) if destination
                 else out_dir / os.path.basename(result.plate.name))
        extra = [(result.plate, plate), (result.coverage, out_dir / os.path.basename(result.coverage.name)),
                 (result.preview, out_dir / os.path.basename(result.preview.name))]
    else:
        raise TypeError(f"not a compositing result: {type(result).__name__}")
    for ref, path in extra:
        if ref.id:
            _fetch(client, ref, path)
            files.files.append(path)
    files.warnings = list(getattr(result, "warnings", []))
    return files


def steps(plan: PassPlan, *, write: Callable[[PassFiles], T]) -> list[Step]:
    """upload the plate's frames -> run the pass -> download its files -> write, for a Session.
    write(files): main thread, the host's scene writing (a node group wired to the files, e.g. from
    files.graph(...)); its value is the session's value. Cancelling the session stops an upload or a
    download between chunks and cancels the server job."""

    def run(ctx: WorkerContext, _: object) -> PassFiles:
        plan.check()
        media = plan.upload(ctx.client, ctx.transfer_progress("uploading")).media_input
        ctx.check_cancelled()
        result = ctx.run_job(plan.submit(ctx.client, media), plan.kind)
        return download_result(ctx.client, result, plan.out_dir, destination=plan.destination,
                               progress=_download_progress(ctx))

    return [Worker(run), Main(write)]


def _download_progress(ctx: WorkerContext) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        ctx.check_cancelled()
        ctx.progress("downloading", done / max(total, 1))
    return report
