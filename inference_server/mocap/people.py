"""Every person in a clip: MediaPipe's pose detector on each frame, linked into tracks (tracks.py).

The detector is the one MediaPipe Pose runs before it tracks a single person (the bundled
pose_detection.tflite); here its graph (the registered PoseDetectionCpu subgraph) runs on its own,
so that it returns every person it finds, with MediaPipe's own anchor decoding and non-maximum
suppression. Each detection is a hip centre, a point on the circle around the whole body and a
shoulder centre. The detector is made for one dominant person, so it runs again with the people already found
blacked out (repeated single-person passes) until it finds nobody new. It sees a 224 x 224 image;
on a wide (or tall) frame people become small, so the frame is also searched in overlapping
squares (the people found in one stay covered in the next).

With small_people (DetectPeople's option, off by default because the detector then also fires on
person-like things) it also searches smaller squares, for people far from the camera (see
PersonDetector).

The pass is bounded: frames are downsized before detection, at most `max_people` people are tracked
at once (more are counted and reported), and what is kept per person is a few numbers per frame plus
one small thumbnail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inference_server.errors import InvalidInput
from inference_server.jobs.context import JobContext
from inference_server.media.video import frames_in_range, iter_frames, probe
from inference_server.mocap.options import MAX_PEOPLE_LIMIT
from inference_server.mocap.tracks import Detection, Linker, Track
from keygrip.v1 import mocap_pb2

# Frames are downsized to this longer side before detection (the detector sees 224 px anyway).
DETECT_MAX_SIDE = 720
DEFAULT_MAX_PEOPLE = 10
# A track continues across this many seconds unseen (an occlusion, a missed detection).
MAX_GAP_S = 1.0
# Tracks seen on fewer frames than this share of the clip (and at least 3 looks) are detector flicker.
MIN_TRACK_SHARE = 0.1
# A capture following one person looks fully for people (newcomers, small people) this often (s).
DISCOVER_S = 0.5
THUMBNAIL_HEIGHT = 128
# A found person is covered from COVER_HALF_WIDTH radii left of their hips to as far right, and
# COVER_HALF_HEIGHT radii above to as far below (head to feet, shoulder width).
COVER_HALF_WIDTH, COVER_HALF_HEIGHT = 0.45, 1.2
# A square smaller than the frame also shows person-like things (a camera on the ceiling, a coat on a
# chair) to a detector made for one dominant person: its people need this score (MediaPipe's own is 0.5).
SMALL_MIN_SCORE = 0.6
# Squares searched are at least this side (pixels of the downsized frame): smaller shows too little.
MIN_TILE = 64
_HIST_BINS = (16, 4)

_DETECTOR_GRAPH = """
input_stream: "image"
output_stream: "detections"
node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
"""


@dataclass
class People:
    """The people of a clip. tracks: ids 1.. by first appearance, detections in source pixels;
    frames: the frame numbers scanned, of the range [start, end); thumbnails: a PNG per track id;
    ignored: detections left out because max_people were already tracked; warnings: what the user
    should know."""

    tracks: list[Track]
    frames: np.ndarray
    start: int
    end: int
    image_size: tuple[int, int]
    fps: float
    max_gap: int
    name: str = ""
    thumbnails: dict[int, bytes] = field(default_factory=dict)
    thumbnail_frames: dict[int, int] = field(default_factory=dict)
    ignored: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def track(self, track_id: int) -> Track | None:
        return next((t for t in self.tracks if t.id == track_id), None)

    def describe(self, frame: int | None = None) -> str:
        """The people, for messages: "person 1 at (640, 360) on frame 12, person 2 ..."."""
        parts = []
        for t in self.tracks:
            k = int(np.argmin(np.abs(np.asarray(t.frames) - (frame if frame is not None else t.frames[0]))))
            d = t.detections[k]
            parts.append(f"person {t.id} at ({d.x:.0f}, {d.y:.0f}) on frame {t.frames[k]}")
        return ", ".join(parts) if parts else "nobody"

    def to_proto(self, input_fingerprint: str) -> mocap_pb2.PeopleTracks:
        """The tracks as a capture of the same input takes them back (people_from_proto); no thumbnails."""
        w, h = self.image_size
        msg = mocap_pb2.PeopleTracks(input_fingerprint=input_fingerprint, start=self.start, end=self.end,
                                     scanned=self.frames.tolist(), width=w, height=h, fps=self.fps)
        msg.people.extend(person_track(t, len(self.frames)) for t in self.tracks)
        return msg


def person_track(track: Track, scanned: int) -> mocap_pb2.PersonTrack:
    """A track as DetectPeople returns it (no thumbnail): its frames and a box per frame."""
    return mocap_pb2.PersonTrack(id=track.id, frames=track.frames, boxes=[v for d in track.detections for v in d.box()],
                                 visible_fraction=len(track.frames) / max(scanned, 1))


def people_from_proto(msg: mocap_pb2.PeopleTracks, path: str | Path, input_fingerprint: str, start: int,
                      end: int | None, name: str) -> People:
    """DetectPeople's tracks (PeopleTracks) back as People, for a capture of frames [start, end) of the
    clip at `path`, given as input_fingerprint. Raises InvalidInput, saying what to do, when they were
    found in another input, over another frame range or at another image size."""
    what = "the people tracks (people_tracks)"
    if msg.input_fingerprint != input_fingerprint:
        raise InvalidInput(f"{what} were found in another input than {name}; run DetectPeople on {name} and pass "
                           "its tracks, or leave people_tracks out.", reason="PEOPLE_TRACKS_MISMATCH")
    info = probe(path)
    start, end = frames_in_range(info, start, end, name)
    if (msg.start, msg.end) != (start, end):
        raise InvalidInput(f"{what} cover frames {msg.start}-{msg.end - 1} of {name}, the capture frames {start}-"
                           f"{end - 1}; capture the same frame range as DetectPeople, or leave people_tracks out.",
                           reason="PEOPLE_TRACKS_MISMATCH")
    if (msg.width, msg.height) != (info.width, info.height):
        raise InvalidInput(f"{what} were found at {msg.width}x{msg.height}, {name} is {info.width}x{info.height}; "
                           "run DetectPeople again.", reason="PEOPLE_TRACKS_MISMATCH")
    tracks = []
    for p in msg.people:
        boxes = np.asarray(p.boxes, np.float64).reshape(-1, 4)
        if len(boxes) != len(p.frames) or not len(boxes):
            raise InvalidInput(f"{what}: person {p.id} has {len(p.frames)} frames and {len(boxes)} boxes",
                               reason="PEOPLE_TRACKS_MISMATCH")
        # A track's score and colour only matter while linking, which is done.
        detections = [Detection.from_box(tuple(box)) for box in boxes.tolist()]
        tracks.append(Track(p.id, frames=list(p.frames), detections=detections, ambiguous=[False] * len(p.frames)))
    return People(tracks=tracks, frames=np.asarray(msg.scanned, np.int64), start=start, end=end,
                  image_size=(info.width, info.height), fps=msg.fps, max_gap=max(1, round(MAX_GAP_S * msg.fps)),
                  name=name)


class PersonDetector:
    """MediaPipe's pose detector, run again and again over a frame with the people it found blacked out.

    The detector is made for one dominant person: beside someone it finds, a second person often
    goes unreported. With the first one's body covered, the next run finds the next person, until
    a run finds nobody new (or one more than max_people are found: the one beyond the cap is how
    the linker knows that people were left out, see find_people's warning). Wide or tall frames are
    also searched square by square (see the module doc); a person covered in one square stays
    covered in the next.

    The detector finds a person only when they fill about half its 224 px square: in a whole frame
    people under about a third of its height go unseen. A fine look also searches squares of half
    the frame's shorter side, which finds people down to about a sixth of its height (people far
    from the camera, a crowd). It costs a run per square, so it is made now and then (see
    find_people); in between, each person known from earlier looks and not found again is looked
    for in a square around where they were last.
    """

    def __init__(self, max_people: int = DEFAULT_MAX_PEOPLE) -> None:
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.python.solution_base import SolutionBase

        config = text_format.Parse(_DETECTOR_GRAPH, calculator_pb2.CalculatorGraphConfig())
        self.graph = SolutionBase(graph_config=config, outputs=["detections"])
        self.most = max_people + 1

    def close(self) -> None:
        self.graph.close()

    def __call__(self, image: np.ndarray, expected: int | None = None, near: Sequence[Detection] = (),
                 fine: bool = False) -> list[Detection]:
        """The people in an RGB image, in its pixels, strongest first within each search.

        expected: how many people a quick look should find (those seen on the last look): it
        searches the whole frame only, and stops once that many are found, instead of searching the
        squares too and confirming that nobody else is there (the full look, which finds newcomers).
        near: people seen before (in this image's pixels); each one that no search found is looked
        for in a square around them. fine: also search the small squares (see the class doc)."""
        masked = image.copy()
        found: list[Detection] = []
        h, w = image.shape[:2]
        full = expected is None
        tiles = _tiles(w, h) if full else [(0, 0, w, h)]
        limit = self.most if expected is None else min(expected, self.most)
        self._search(masked, image, tiles, found, limit)
        missed = [k for k in near if all(np.hypot(k.x - d.x, k.y - d.y) > k.radius for d in found)]
        self._search(masked, image, [_around(k, w, h) for k in missed], found, self.most, small=True)
        if fine:
            self._search(masked, image, _fine_tiles(w, h), found, self.most, small=True)
        return found

    def _search(self, masked: np.ndarray, image: np.ndarray, tiles: list[tuple[int, int, int, int]],
                found: list[Detection], limit: int, small: bool = False) -> None:
        """Run the detector over each tile until it finds nobody new there, adding the people it
        finds to `found` (at most `limit` in all) and covering them in `masked`. small: the tiles
        are squares smaller than the frame (see _in_cover)."""
        for tile in tiles:
            while len(found) < limit:
                added = 0
                for d in _merge([d for d in self._detect(masked, image, tile) if _is_new(d, found)]):
                    if len(found) < limit and not (small and (_in_cover(d, found) or d.score < SMALL_MIN_SCORE)):
                        found.append(d)
                        _cover(masked, d)
                        added += 1
                if not added:
                    break

    def _detect(self, masked: np.ndarray, image: np.ndarray, tile: tuple[int, int, int, int]) -> list[Detection]:
        """One detector run on a square of the masked frame; colours come from the unmasked one."""
        x0, y0, x1, y1 = tile
        w, h = x1 - x0, y1 - y0
        # A copy: MediaPipe keeps reading the buffer it was given after process() returns (seen as
        # run-to-run differences), and `masked` is painted over right after.
        result = self.graph.process({"image": masked[y0:y1, x0:x1].copy()})
        out = []
        for det in result.detections or []:
            kp = det.location_data.relative_keypoints
            hip = (x0 + kp[0].x * w, y0 + kp[0].y * h)
            radius = float(np.hypot(x0 + kp[1].x * w - hip[0], y0 + kp[1].y * h - hip[1]))
            if radius >= 4:
                out.append(Detection(hip[0], hip[1], radius, float(det.score[0]),
                                     _torso_colours(image, hip, radius, y0 + kp[2].y * h)))
        return out


def _is_new(d: Detection, found: list[Detection]) -> bool:
    """Not a second report of someone already found (whose body is covered, but edges remain)."""
    return all(np.hypot(d.x - k.x, d.y - k.y) > 0.3 * max(d.radius, k.radius) for k in found)


def _in_cover(d: Detection, found: list[Detection]) -> bool:
    """Centred on someone already found: what a square smaller than the frame reports, off centre,
    from the edges of a covered body (or of a body it reported twice)."""
    return any(abs(d.x - k.x) <= COVER_HALF_WIDTH * k.radius and abs(d.y - k.y) <= COVER_HALF_HEIGHT * k.radius
               for k in found)


def _cover(image: np.ndarray, d: Detection) -> None:
    """Black out a found person's body (head to feet, shoulder width) so that the next run looks elsewhere."""
    h, w = image.shape[:2]
    x0, x1 = int(max(0, d.x - COVER_HALF_WIDTH * d.radius)), int(min(w, d.x + COVER_HALF_WIDTH * d.radius))
    y0, y1 = int(max(0, d.y - COVER_HALF_HEIGHT * d.radius)), int(min(h, d.y + COVER_HALF_HEIGHT * d.radius))
    image[y0:y1, x0:x1] = 0


def sample_stride(fps: float) -> int:
    """Frames between looks for a capture that follows one person: about 10 looks a second (a
    person moves a few centimetres in between; their box is interpolated, and the linker carries
    them through crossings by their motion)."""
    return max(1, round(fps / 10))


def discover_interval(fps: float) -> int:
    """Frames between full looks (see PersonDetector) for a capture that follows one person: about
    two a second; the looks in between are quick ones."""
    return max(1, round(fps * DISCOVER_S))


def _tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """The whole frame, and when it is far from square, squares across its longer side that overlap."""
    tiles = [(0, 0, w, h)]
    side, long = min(w, h), max(w, h)
    if long > 1.3 * side:
        n = int(np.ceil(long / side))
        for o in np.linspace(0, long - side, n).round().astype(int):
            tiles.append((int(o), 0, int(o) + side, h) if w > h else (0, int(o), w, int(o) + side))
    return tiles


def _fine_tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Squares of half the shorter side across the whole frame, each overlapping its neighbours by a
    third (a small person is then whole in at least one)."""
    side = min(w, h) // 2
    if side < MIN_TILE:
        return []
    step = 2 * side / 3
    xs = np.linspace(0, w - side, int(np.ceil((w - side) / step)) + 1).round().astype(int)
    ys = np.linspace(0, h - side, int(np.ceil((h - side) / step)) + 1).round().astype(int)
    return [(int(x), int(y), int(x) + side, int(y) + side) for y in ys for x in xs]


def _around(d: Detection, w: int, h: int) -> tuple[int, int, int, int]:
    """A square around a person seen before, in which their body (twice their radius high) fills half
    the height (a little more than in a fine square, where they may stand anywhere); clipped to the
    frame."""
    side = int(min(max(4 * d.radius, MIN_TILE), w, h))
    x0 = int(np.clip(round(d.x - side / 2), 0, w - side))
    y0 = int(np.clip(round(d.y - side / 2), 0, h - side))
    return (x0, y0, x0 + side, y0 + side)


def _merge(found: list[Detection]) -> list[Detection]:
    """One detection per person of one run, strongest first (MediaPipe's suppression works on face
    boxes; two reports of one body can still come back)."""
    kept: list[Detection] = []
    for d in sorted(found, key=lambda d: -d.score):
        if _is_new(d, kept):
            kept.append(d)
    return kept


def _torso_colours(image: np.ndarray, hip: tuple[float, float], radius: float, shoulder_y: float) -> np.ndarray:
    """A hue-saturation histogram of the torso (between shoulders and hips), normalised to sum 1."""
    h, w = image.shape[:2]
    top = min(shoulder_y, hip[1] - 0.3 * radius)
    x0, x1 = int(max(0, hip[0] - 0.2 * radius)), int(min(w, hip[0] + 0.2 * radius))
    y0, y1 = int(max(0, top)), int(min(h, hip[1]))
    flat = np.zeros(_HIST_BINS[0] * _HIST_BINS[1], np.float32)
    if x1 - x0 >= 2 and y1 - y0 >= 2:
        hsv = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
        flat = np.asarray(cv2.calcHist([hsv], [0, 1], None, list(_HIST_BINS), [0, 180, 0, 256]), np.float32).ravel()
    total = flat.sum()
    return flat / total if total > 0 else np.full(flat.shape, 1.0 / flat.size, np.float32)


def _thumbnail(image: np.ndarray, det: Detection) -> np.ndarray:
    """The person's box (a little padded) cut from the frame, THUMBNAIL_HEIGHT pixels high, RGB."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = det.box()
    pad = 0.15 * det.radius
    xs, xe = int(max(0, x0 - pad)), int(min(w, x1 + pad))
    ys, ye = int(max(0, y0 - pad)), int(min(h, y1 + pad))
    crop = image[ys:max(ye, ys + 1), xs:max(xe, xs + 1)]
    scale = THUMBNAIL_HEIGHT / crop.shape[0]
    return cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), THUMBNAIL_HEIGHT), interpolation=cv2.INTER_AREA)


def _finish(linker: Linker, looks: int, stride: int) -> list[Track]:
    """The people of `looks` looks: the linker's tracks stitched, flicker left out."""
    # Three looks on consecutive frames, or two a stride apart, span about as long: less is flicker.
    least = 3 if stride == 1 else 2
    return linker.finish(min_frames=max(least, int(MIN_TRACK_SHARE * looks)), min_stretch=least)


def find_people(path: str | Path, *, start: int = 0, end: int | None = None,
                max_people: int = DEFAULT_MAX_PEOPLE, ctx: JobContext, stage: str = "people",
                name: str | None = None, stride: int = 1, discover_every: int = 1, small_people: bool = False,
                on_look: Callable[[int, Callable[[], People]], None] | None = None) -> People:
    """Every person in frames start <= index < end of a clip, as tracks with stable ids.

    stride: look on every stride-th frame only (tracks then hold those frames; a capture following
    one person needs no more, see sample_stride). discover_every: frames between full looks (see
    PersonDetector); the looks in between are quick ones that expect the people seen on the last
    look (1: every look is full, as DetectPeople's). name: the clip as the user knows it, for messages
    (default: the file's name). on_look(frame, so_far): called after each look; so_far() gives the
    people as they would be if the clip ended at that look (tracks only, no thumbnails; it costs a
    Linker.finish, so a caller takes it only now and then). small_people: also look for people far
    from the camera (see PersonDetector): a fine look every DISCOVER_S seconds, and each person
    known and not found again looked for around where they were. Progress goes
    to ctx under `stage`; ctx.check_cancelled() is polled every frame. Raises InvalidInput for an
    unreadable clip, an empty range or a max_people outside 1..MAX_PEOPLE_LIMIT.
    """
    name = name or Path(path).name
    if not 1 <= max_people <= MAX_PEOPLE_LIMIT:
        raise InvalidInput(f"max_people must lie in 1..{MAX_PEOPLE_LIMIT}, got {max_people}")
    info = probe(path)
    start, end = frames_in_range(info, start, end, name)
    fps = info.fps if info.fps > 0 else 24.0
    max_gap = max(1, round(MAX_GAP_S * fps))
    linker = Linker(max_gap=max_gap, max_people=max_people, stride=stride, fps=fps)
    # (linker track id, stretch) -> (quality, frame, thumbnail): a person's best view of each stretch
    best: dict[tuple[int, int], tuple[float, int, np.ndarray]] = {}
    detector = PersonDetector(max_people)
    numbers: list[int] = []
    t0 = time.perf_counter()
    total = end - start

    def so_far() -> People:
        return People(tracks=_finish(linker, len(numbers), stride), frames=np.asarray(numbers, np.int64),
                      start=start, end=end, image_size=(info.width, info.height), fps=fps, max_gap=max_gap,
                      name=name, ignored=linker.ignored)

    fine_every = discover_interval(fps)
    try:
        discovered, fine_at, previous = None, None, None
        for frame in iter_frames(path, start, end, DETECT_MAX_SIDE, step=stride):
            ctx.check_cancelled()
            seen = sum(t.frames[-1] == previous for t in linker.live)
            near = [Detection(d.x / frame.scale, d.y / frame.scale, d.radius / frame.scale, d.score, d.colour)
                    for d in (t.detections[-1] for t in linker.live)] if small_people else []
            fine = small_people and (fine_at is None or frame.index - fine_at >= fine_every)
            if discovered is None or frame.index - discovered >= discover_every or not seen:
                found, discovered = detector(frame.image, near=near, fine=fine), frame.index
                fine_at = frame.index if fine else fine_at
            else:
                found = detector(frame.image, expected=seen, near=near)
            previous = frame.index
            for d in found:  # into source pixels
                d.x, d.y, d.radius = d.x * frame.scale, d.y * frame.scale, d.radius * frame.scale
            linker.step(frame.index, found)
            for t in linker.live:
                if t.frames[-1] != frame.index or t.stretch[-1] < 0:
                    continue  # not seen, or overlapping someone else: no picture of them alone
                d = t.detections[-1]
                quality = d.score * d.radius  # confident and large: the most recognisable view
                key = (t.id, t.stretch[-1])
                if key not in best or quality > best[key][0]:
                    small = Detection(d.x / frame.scale, d.y / frame.scale, d.radius / frame.scale, d.score, d.colour)
                    best[key] = (quality, frame.index, _thumbnail(frame.image, small))
            numbers.append(frame.index)
            if on_look is not None:
                on_look(frame.index, so_far)
            n = frame.index - start + 1
            elapsed = time.perf_counter() - t0
            ctx.progress(stage, n, total, f"looking for people: frame {n} of {total}", fps=n / max(elapsed, 1e-6))
    finally:
        detector.close()
    if not numbers:
        raise InvalidInput(f"{name}: frames {start}-{end - 1} could not be decoded; "
                           "the file may be damaged.")
    people = so_far()
    people.seconds = time.perf_counter() - t0
    for t in people.tracks:
        _, f, thumb = max((best[k] for k in t.pieces if k in best), key=lambda b: b[0])
        ok, png = cv2.imencode(".png", cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR))
        if ok:
            people.thumbnails[t.id] = png.tobytes()
            people.thumbnail_frames[t.id] = f
    if linker.ignored:
        people.warnings.append(
            f"more people at once than max_people ({max_people}) in {name}: {linker.ignored} detections beyond the "
            f"people already tracked were left out (raise max_people, up to {MAX_PEOPLE_LIMIT})")
    return people
