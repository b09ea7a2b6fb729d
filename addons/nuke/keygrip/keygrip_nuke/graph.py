"""A finished pass wired into its Keygrip node (main thread only, one undo step).

Inside the group, after the pass:
- matte: Read of matte.####.exr (raw: the matte is data) -> Copy its alpha onto the plate's ->
  Premult -> Merge (over) onto the Background input -> Output;
- depth: Read of depth.####.exr (raw) -> Copy depth.Z onto the plate -> Output (for ZDefocus);
- clean plate: Read of the clean plate (linear EXR, held on every frame) -> Output.
The Reads show the files at the plate's own frame numbers (matte.1001.exr on frame 1001).
"""

from __future__ import annotations

import json
from pathlib import Path

from keygrip.compositing import PassFiles

from .host import nuke

RESULT_LABEL = "keygrip result"   # what marks the nodes a pass built (replaced by the next run)


def _result_node(cls: str, x: int, y: int, **knobs: object) -> nuke.Node:
    node = getattr(nuke.nodes, cls)(**knobs)
    node["label"].setValue(RESULT_LABEL)
    node.setXYpos(x, y)
    return node


def _sequence_read(pattern: str, first: int, last: int, raw: bool, x: int, y: int) -> nuke.Node:
    read = _result_node("Read", x, y, file=pattern, first=first, last=last, origfirst=first, origlast=last)
    # raw: no colour conversion at all, as a matte or depth pass needs (Nuke's "Raw Data" checkbox).
    read["raw"].setValue(raw)
    return read


def _io_nodes(group: nuke.Group) -> tuple[nuke.Node, nuke.Node, nuke.Node]:
    """The group's Plate and Background inputs and its Output (made by node.create)."""
    found = {n.name(): n for n in group.nodes()}
    return found["Plate"], found["Background"], found["Output1"]


def clear_result(group: nuke.Group) -> None:
    """Remove what an earlier pass built; the Output shows the plate again."""
    with group:
        for node in group.nodes():
            if node.knob("label") is not None and node["label"].value() == RESULT_LABEL:
                nuke.delete(node)
        plate, _, output = _io_nodes(group)
        output.setInput(0, plate)


def build(group: nuke.Group, kind: str, files: PassFiles) -> list[nuke.Node]:
    """Wire a pass's downloaded files into the group (replacing an earlier result); returns the new nodes."""
    nuke.Undo.begin(f"Keygrip {kind}")
    try:
        clear_result(group)
        with group:
            plate, background, output = _io_nodes(group)
            made: list[nuke.Node] = []
            if kind in ("matte", "depth"):
                numbers = sorted(files.frames)
                read = _sequence_read(files.pattern, numbers[0], numbers[-1], True, 200, 0)
                channel = "rgba.alpha" if kind == "matte" else "depth.Z"
                copy = _result_node("Copy", 0, 100, from0=channel, to0=channel)
                copy.setInput(0, plate)   # B: the plate
                copy.setInput(1, read)    # A: the pass
                made += [read, copy]
                if kind == "matte":
                    premult = _result_node("Premult", 0, 200)
                    premult.setInput(0, copy)
                    over = _result_node("Merge2", 0, 300, operation="over")
                    over.setInput(0, background)   # B
                    over.setInput(1, premult)      # A
                    made += [premult, over]
                output.setInput(0, made[-1])
            else:
                clean = next(Path(p) for p in files.files
                             if Path(p).name.startswith("cleanplate.") and "preview" not in Path(p).name)
                frame = int(files.metadata.get("reference_frame", "1") or 1)
                read = _result_node("Read", 200, 0, file=str(clean), first=frame, last=frame, origfirst=frame,
                                    origlast=frame, before="hold", after="hold")
                made.append(read)
                output.setInput(0, read)
        group["provenance"].setValue(json.dumps({"pass": kind, "files": files.pattern or str(made[0]["file"].value()),
                                                 **files.metadata}, sort_keys=True))
        return made
    finally:
        nuke.Undo.end()
