"""BVH motion files in and out of MotionClip.

Reading accepts the dialects seen in the wild: CMU/cgspeed, Rokoko- and Mixamo-style exports, any
rotation order per joint, position channels on any joint, End Sites, CRLF line endings.

BVH semantics used here (the same as Blender's importer):
- A joint's rotation channels compose in the order listed: "Zrotation Xrotation Yrotation" means
  R = Rz * Rx * Ry, which is exactly the local rotation of MotionClip (rest included: a BVH's
  rest pose has every rotation at zero and lives in the offsets alone).
- Position channels give the joint's translation in its parent's frame and replace its OFFSET.
  On the root that is the world position. MotionClip animates only the root's translation, so a
  non-root joint's position channels become its offset (their mean over the clip); if they
  really move, that is recorded in clip.metadata["bvh_warnings"].

Units: `scale` converts file units to metres. "auto" looks at the rest skeleton's height (top to
bottom of all joint positions including End Sites, which does not depend on the motion):
    height <= 5          metres
    5 < height <= 60     CMU units (1/0.45 inch = 0.05644 m: a 1.7 m person is about 30 units)
    60 < height <= 600   centimetres
    height > 600         millimetres
Pass a number or "m", "cm", "mm", "inch", "cmu" to override.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import numpy as np

from inference_server.errors import InvalidInput
from inference_server.motion import quat
from inference_server.motion.clip import MotionClip, Skeleton

CMU_UNIT_M = 0.0254 / 0.45
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": CMU_UNIT_M}

_ROT = {"xrotation": "X", "yrotation": "Y", "zrotation": "Z"}
_POS = {"xposition": 0, "yposition": 1, "zposition": 2}
_AXIS = {c: np.eye(3)["XYZ".index(a)] for c, a in _ROT.items()}


class _Joint:
    def __init__(self, name: str, parent: int, line: int):
        self.name = name
        self.parent = parent
        self.line = line
        self.offset = np.zeros(3)
        self.channels: list[str] = []
        self.end_site: np.ndarray | None = None


def _tokens(text: str) -> list[tuple[str, int]]:
    """Whitespace-separated tokens with their 1-based line numbers."""
    out: list[tuple[str, int]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        out.extend((tok, n) for tok in line.split())
    return out


def _bad(line: int, what: str) -> InvalidInput:
    return InvalidInput(f"BVH line {line}: {what}. Re-export the file or fix it in a text editor.",
                        metadata={"line": str(line)})


def _number(tok: str, line: int) -> float:
    try:
        return float(tok)
    except ValueError:
        raise _bad(line, f"expected a number, found {tok!r}") from None


def _parse_hierarchy(toks: list[tuple[str, int]]) -> tuple[list[_Joint], int]:
    pos = 0

    def take() -> tuple[str, int]:
        nonlocal pos
        if pos >= len(toks):
            last = toks[-1][1] if toks else 1
            raise _bad(last, "the file ends inside the HIERARCHY section")
        tok = toks[pos]
        pos += 1
        return tok

    def expect(word: str) -> int:
        tok, line = take()
        if tok.upper() != word:
            raise _bad(line, f"expected {word!r}, found {tok!r}")
        return line

    expect("HIERARCHY")
    joints: list[_Joint] = []
    tok, line = take()
    if tok.upper() != "ROOT":
        raise _bad(line, f"expected 'ROOT', found {tok!r}")
    # Stack of open blocks: joint index, or -2 for an End Site block.
    name, _ = take()
    joints.append(_Joint(name, -1, line))
    stack = [0]
    expect("{")
    while stack:
        tok, line = take()
        key = tok.upper()
        current = stack[-1]
        if key == "OFFSET":
            vec = np.array([_number(take()[0], line) for _ in range(3)])
            if current == -2:
                joints[stack[-2]].end_site = vec
            else:
                joints[current].offset = vec
        elif key == "CHANNELS":
            if current == -2:
                raise _bad(line, "an End Site cannot have CHANNELS")
            count_tok, _ = take()
            try:
                count = int(count_tok)
            except ValueError:
                raise _bad(line, f"channel count {count_tok!r} is not an integer") from None
            names = []
            while pos < len(toks) and toks[pos][1] == line:
                names.append(take()[0].lower())
            if len(names) != count:
                raise _bad(line, f"CHANNELS says {count} but lists {len(names)} channels")
            for c in names:
                if c not in _ROT and c not in _POS:
                    raise _bad(line, f"unknown channel {c!r}")
            joints[current].channels = names
        elif key == "JOINT":
            if current == -2:
                raise _bad(line, "a JOINT cannot be inside an End Site")
            name, _ = take()
            joints.append(_Joint(name, current, line))
            stack.append(len(joints) - 1)
            expect("{")
        elif key == "END":
            site, _ = take()
            if site.upper() != "SITE":
                raise _bad(line, f"expected 'End Site', found 'End {site}'")
            stack.append(-2)
            expect("{")
        elif key == "}":
            stack.pop()
        else:
            raise _bad(line, f"unexpected {tok!r} in HIERARCHY")
    return joints, pos


def _unit_scale(scale: float | str, heights: np.ndarray) -> float:
    if isinstance(scale, int | float):
        return float(scale)
    if scale != "auto":
        if scale not in UNITS:
            raise InvalidInput(f"unknown BVH unit {scale!r}; use one of {sorted(UNITS)}, 'auto' or a number")
        return UNITS[scale]
    height = float(np.ptp(heights)) if len(heights) else 0.0
    if height <= 5.0:
        return 1.0
    if height <= 60.0:
        return CMU_UNIT_M
    if height <= 600.0:
        return 0.01
    return 0.001


def read_bvh(source: str | Path | IO[str], *, scale: float | str = "auto") -> MotionClip:
    """Read a BVH file (a path, an open text file, or the BVH text itself) into a MotionClip.

    scale: "auto" (see the module docstring), a unit name or a number: metres per file unit.
    Returns a clip whose rotations (F, J, 4) are the BVH local rotations and whose
    root_translation (F, 3) is the root position in metres. End Site offsets (metres) are kept in
    clip.metadata["bvh_end_sites"] as JSON {joint name: [x, y, z]} so that write_bvh can restore them.
    Raises InvalidInput naming the line for syntax errors and wrong channel counts.
    """
    if hasattr(source, "read"):
        text = source.read()
        label = getattr(source, "name", "BVH")
    elif isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                       and not source.lstrip().upper().startswith("HIERARCHY")):
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"BVH file {str(path)!r} does not exist; check the path")
        text = path.read_text(encoding="utf-8", errors="replace")
        label = path.name
    else:
        text = str(source)
        label = "BVH"
    toks = _tokens(text)
    joints, pos = _parse_hierarchy(toks)

    def take(what: str) -> tuple[str, int]:
        nonlocal pos
        if pos >= len(toks):
            raise _bad(toks[-1][1], f"the file ends before {what}")
        pos += 1
        return toks[pos - 1]

    tok, line = take("MOTION")
    if tok.upper() != "MOTION":
        raise _bad(line, f"expected 'MOTION', found {tok!r}")
    tok, line = take("'Frames:'")
    if tok.lower() != "frames:":
        raise _bad(line, f"expected 'Frames:', found {tok!r}")
    tok, line = take("the frame count")
    try:
        frames = int(tok)
    except ValueError:
        raise _bad(line, f"frame count {tok!r} is not an integer") from None
    t1, line = take("'Frame Time:'")
    t2, _ = take("'Frame Time:'")
    if (t1.lower(), t2.lower()) != ("frame", "time:"):
        raise _bad(line, f"expected 'Frame Time:', found {t1!r} {t2!r}")
    tok, line = take("the frame time")
    frame_time = _number(tok, line)
    if not 0 < frame_time < float("inf"):  # also refuses NaN
        raise _bad(line, f"frame time {frame_time} must be a positive number of seconds")

    n_channels = sum(len(j.channels) for j in joints)
    rows = []
    first_line = toks[pos][1] if pos < len(toks) else line + 1
    data_toks = toks[pos:]
    # Group the numbers by line so that a short or long frame names its own line.
    by_line: dict[int, list[str]] = {}
    for t, n in data_toks:
        by_line.setdefault(n, []).append(t)
    for n, values in by_line.items():
        if len(values) != n_channels:
            raise _bad(n, f"a frame has {len(values)} values but the HIERARCHY declares {n_channels} channels")
        try:
            rows.append(np.array(values, dtype=np.float64))
        except ValueError:
            raise _bad(n, "a frame holds something that is not a number") from None
    if len(rows) != frames:
        raise _bad(first_line, f"'Frames: {frames}' but the file holds {len(rows)} frames")
    data = np.stack(rows) if rows else np.zeros((0, n_channels))

    count = len(joints)
    rotations = quat.identity((frames, count))
    offsets = np.array([j.offset for j in joints])
    root_pos = np.broadcast_to(offsets[0], (frames, 3)).copy()
    warnings: list[str] = []
    col = 0
    for ji, joint in enumerate(joints):
        pos_cols: list[int | None] = [None, None, None]
        for c in joint.channels:
            if c in _POS:
                pos_cols[_POS[c]] = col
            else:
                rotations[:, ji] = quat.multiply(
                    rotations[:, ji],
                    quat.from_axis_angle(_AXIS[c], np.radians(data[:, col])),
                )
            col += 1
        if any(p is not None for p in pos_cols):
            value = np.stack([data[:, p] if p is not None else np.full(frames, joint.offset[k])
                              for k, p in enumerate(pos_cols)], axis=-1)
            if ji == 0:
                root_pos = value
            else:
                offsets[ji] = value.mean(axis=0) if frames else joint.offset
                if frames and np.ptp(value, axis=0).max() > 1e-6 * max(1.0, np.abs(value).max()):
                    warnings.append(f"joint {joint.name!r} has animated position channels; "
                                    "only their mean is kept as its offset")

    parents = np.array([j.parent for j in joints])
    # Rest joint heights (and End Sites) decide the unit, independently of the motion.
    rest = np.zeros((count, 3))
    for ji in range(1, count):
        rest[ji] = rest[parents[ji]] + offsets[ji]
    ends = [rest[ji] + j.end_site for ji, j in enumerate(joints) if j.end_site is not None]
    unit = _unit_scale(scale, np.concatenate([rest[:, 1], np.array(ends)[:, 1] if ends else []]))

    skeleton = Skeleton([j.name for j in joints], parents, offsets * unit)
    metadata = {
        "source": label,
        "bvh_unit_m": repr(unit),
        "bvh_end_sites": json.dumps({j.name: (j.end_site * unit).tolist()
                                     for j in joints if j.end_site is not None}),
        "bvh_orders": json.dumps({j.name: "".join(_ROT[c] for c in j.channels if c in _ROT)
                                  for j in joints}),
    }
    if warnings:
        metadata["bvh_warnings"] = json.dumps(warnings)
    return MotionClip(
        skeleton=skeleton,
        fps=1.0 / frame_time,
        times=np.arange(frames) * frame_time,
        rotations=quat.make_continuous(rotations, axis=0),
        root_translation=root_pos * unit,
        metadata=metadata,
    )


_ORDER_RE = re.compile(r"^[XYZ]{3}$")


def write_bvh(clip: MotionClip, destination: str | Path | IO[str], *, order: str = "ZXY",
              scale: float = 1.0, positions: Mapping[int, np.ndarray] | None = None) -> None:
    """Write a clip as BVH: root with 6 channels, other joints with 3 rotation channels.

    positions: {joint: (F, 3)} non-root joints that move against their parent (a hips under a root
        bone): their translation in the parent's frame, metres, written as position channels (6
        channels), which readers such as Blender's take in place of the OFFSET.

    order: rotation channel order for every joint, e.g. "ZXY" (Blender's and most tools' default)
        or "ZYX" (CMU). The BVH rotation of a joint is its full MotionClip local rotation, so
        skeletons with rest rotations come out with their rest folded into the motion (the BVH
        rest pose is all zeros) and every world transform is preserved.
    scale: file units per metre (1.0 writes metres, 100.0 centimetres).
    A uniform frame time of 1/clip.fps is written; resample variable-rate clips first.
    """
    order = order.upper()
    positions = dict(positions or {})
    if not _ORDER_RE.match(order) or len(set(order)) != 3:
        raise InvalidInput(f"BVH rotation order {order!r} must be a permutation of XYZ, e.g. 'ZXY'")
    skel = clip.skeleton
    try:
        end_sites = json.loads(clip.metadata.get("bvh_end_sites", "{}"))
    except json.JSONDecodeError:
        end_sites = {}
    rot_channels = " ".join(f"{a}rotation" for a in order)
    out = io.StringIO()
    out.write("HIERARCHY\n")
    children = [skel.children(j) for j in range(skel.num_joints)]

    def write_joint(j: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if skel.parents[j] < 0 else "JOINT"
        out.write(f"{pad}{kind} {skel.names[j]}\n{pad}{{\n")
        off = skel.offsets[j] * scale if skel.parents[j] >= 0 else np.zeros(3)
        out.write(f"{pad}\tOFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}\n")
        if skel.parents[j] < 0 or j in positions:
            out.write(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot_channels}\n")
        else:
            out.write(f"{pad}\tCHANNELS 3 {rot_channels}\n")
        for c in children[j]:
            write_joint(c, depth + 1)
        if not children[j]:
            # Readers need a tail for leaf bones: reuse the stored End Site, else extend the bone.
            site = end_sites.get(skel.names[j])
            if site is None:
                site = skel.offsets[j] * 0.5 if np.linalg.norm(skel.offsets[j]) > 1e-9 else [0.0, 0.05, 0.0]
            site = np.asarray(site, dtype=np.float64) * scale
            out.write(f"{pad}\tEnd Site\n{pad}\t{{\n{pad}\t\tOFFSET {site[0]:.6f} {site[1]:.6f} "
                      f"{site[2]:.6f}\n{pad}\t}}\n")
        out.write(f"{pad}}}\n")

    roots = [j for j in range(skel.num_joints) if skel.parents[j] < 0]
    if len(roots) != 1:
        raise InvalidInput(f"BVH holds one root joint; this skeleton has {len(roots)}")
    write_joint(roots[0], 0)

    frames = clip.num_frames
    eulers = quat.to_euler(clip.rotations, order, degrees=False)
    # Unwrap over time so that no channel jumps by 360 degrees between frames.
    eulers = np.degrees(np.unwrap(eulers, axis=0)) if frames > 1 else np.degrees(eulers)
    # Joint order in the file is depth-first; the channels follow that order.
    file_order: list[int] = []

    def visit(j: int) -> None:
        file_order.append(j)
        for c in children[j]:
            visit(c)

    visit(roots[0])
    # The root's OFFSET is written as zero: its position channels hold the world position.
    columns = [clip.root_translation * scale]
    for j in file_order:
        if j in positions and skel.parents[j] >= 0:
            columns.append(np.asarray(positions[j]) * scale)
        columns.append(eulers[:, j])
    table = np.concatenate(columns, axis=1)
    out.write(f"MOTION\nFrames: {frames}\nFrame Time: {1.0 / clip.frame_rate:.8f}\n")
    np.savetxt(out, table, fmt="%.6f")
    text = out.getvalue()
    if hasattr(destination, "write"):
        destination.write(text)
    else:
        Path(destination).write_text(text, encoding="utf-8")
