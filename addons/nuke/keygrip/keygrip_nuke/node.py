"""The Keygrip node: a Group with the pass's knobs, and what its Process and Cancel buttons do.

Process reads the knobs and the plate on Nuke's main thread, then hands the network work (upload,
the job, its progress, the download) to a keygrip.session.Session, whose worker thread never touches
the graph: its results come back through nuke.executeInMainThread, and graph.build wires the files
in on the main thread. Under `nuke -t` (no GUI event loop) they come back through a queue that
wait() drains instead.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from keygrip import compositing, sequences
from keygrip.plates import FrameRange, Plate
from keygrip.session import MainQueue, MainThread, Progress, Session, connector

from . import graph, settings
from .host import NukeMainThread, nuke
from .progress import ProgressPanel

OPERATIONS = ("matte", "cleanplate", "depth")
NODE_NAME = "Keygrip"
RUN_KNOB = "keygrip_run"

_PROCESS = "import keygrip_nuke.node\nkeygrip_nuke.node.process(nuke.thisNode())"
_CANCEL = "import keygrip_nuke.node\nkeygrip_nuke.node.cancel(nuke.thisNode())"


_runs: dict[str, Session] = {}    # the node's run knob -> its running pass (one at a time per node)
_terminal_main = MainQueue()      # `nuke -t`: what the workers post, drained by wait()


def create() -> nuke.Group:
    """A Keygrip node, fed by the selected node (the plate's Read), its panel open (menu command)."""
    try:
        selected: nuke.Node | None = nuke.selectedNode()
    except ValueError:   # nothing selected
        selected = None
    group = nuke.createNode("Group", inpanel=False)   # the panel opens once the knobs are there
    assert isinstance(group, nuke.Group)
    group.setName(NODE_NAME)
    group.addKnob(nuke.Tab_Knob("keygrip", "Keygrip"))
    group.addKnob(nuke.Enumeration_Knob("operation", "operation", list(OPERATIONS)))
    frame_range = nuke.String_Knob("frame_range", "frame range")
    frame_range.setTooltip("the working range, FIRST-LAST in the plate's frame numbers (e.g. 1009-1092); only "
                           "these frames are sent and processed; empty: the Read's range less its handles")
    group.addKnob(frame_range)
    handles = nuke.Int_Knob("handles", "handles")
    handles.setTooltip("frames at each end of the Read's range that are outside the shot (not sent)")
    group.addKnob(handles)
    server = nuke.String_Knob("server", "server")
    server.setTooltip("host:port of the Keygrip server; empty: the Keygrip preferences, else $KEYGRIP_ADDRESS")
    group.addKnob(server)
    destination = nuke.File_Knob("destination", "destination")
    destination.setTooltip("where the pass's EXRs go, as a pattern (/out/shot010_matte.####.exr; %04d and $F4 too), "
                           "or a folder; empty: keygrip/<node>/ beside the saved script, named after the plate")
    group.addKnob(destination)
    group.addKnob(nuke.PyScript_Knob("process", "Process", _PROCESS))
    group.addKnob(nuke.PyScript_Knob("cancel", "Cancel", _CANCEL))
    group.addKnob(nuke.Text_Knob("status", "status", "idle"))
    provenance = nuke.Multiline_Eval_String_Knob("provenance", "provenance")
    provenance.setTooltip("what made the result: the pass, its files, the job's settings (for a re-run)")
    group.addKnob(provenance)
    # Which run is the node's while a pass runs: a knob, so that renaming the node mid-run loses nothing.
    run = nuke.String_Knob(RUN_KNOB, "run")
    run.setVisible(False)
    group.addKnob(run)
    group["cancel"].setEnabled(False)
    with group:
        plate = nuke.nodes.Input(name="Plate")
        background = nuke.nodes.Input(name="Background")
        background.setXYpos(400, 0)
        output = nuke.nodes.Output()
        output.setXYpos(0, 400)
        output.setInput(0, plate)
    # Wired here: an empty group has no input to connect when it is created.
    if selected is not None and selected is not group:
        group.setInput(0, selected)
    if nuke.GUI:
        group.showControlPanel()
    return group


class PlateError(ValueError):
    """What is wrong with the node's input or knobs, said as what to do."""


@dataclass(frozen=True)
class PlateRead:
    """The plate's Read as the node sees it when Process is pressed."""

    name: str        # the Read node's name
    file: str        # its file knob: plate.####.exr, plate.%04d.exr
    first: int
    last: int


def find_read(group: nuke.Node) -> PlateRead:
    """The Read that feeds the node's Plate input, through any nodes between (their input 0)."""
    node = group.input(0)
    while node is not None and node.Class() != "Read":
        node = node.input(0)
    if node is None:
        raise PlateError(f"{group.name()}: connect the plate's Read node to the Plate input (input 1) and "
                         "press Process again")
    path = str(node["file"].value()).strip()
    if not path:
        raise PlateError(f"{node.name()} has no file: choose the plate's image sequence in it")
    return PlateRead(node.name(), path, int(node["first"].value()), int(node["last"].value()))


def plate_of(read: PlateRead, frame_range: str, handles: int) -> Plate:
    """The plate on disk with the artist's working range: the knob's FIRST-LAST, else the Read's range
    less its handles. Lists the plate's folder (on the main thread: one directory listing)."""
    if Path(read.file).suffix.lower() not in sequences.IMAGE_EXTENSIONS:
        raise PlateError(f"{read.name}: {Path(read.file).name} is not an image sequence: the Keygrip node works "
                         "on sequences (EXR, DPX, PNG, ...); write the plate out as one and read that")
    try:
        working = (FrameRange.parse(frame_range) if frame_range.strip()
                   else FrameRange(read.first, read.last).shrink(handles, handles))
        return Plate.find(read.file, handles=handles, working_range=working)
    except ValueError as exc:   # SequenceError is one too
        raise PlateError(f"{read.name}: {exc}") from None


def destination_of(group: nuke.Node, plate: Plate, kind: str) -> str:
    """The destination knob as a pattern (a folder gets the default name), else keygrip/<node>/ beside
    the saved script (a temporary folder while it is untitled)."""
    chosen = str(group["destination"].value()).strip()
    if chosen and sequences.is_pattern(chosen):
        return chosen
    if chosen:
        return compositing.default_destination(plate, kind, chosen, style=sequences.HOST_STYLES["nuke"])
    try:
        script_dir = Path(nuke.scriptName()).parent
    except RuntimeError:
        script_dir = Path(tempfile.gettempdir()) / "keygrip-nuke-untitled"
    return compositing.default_destination(plate, kind, script_dir / "keygrip" / group.name(),
                                           style=sequences.HOST_STYLES["nuke"])


def _status(group: nuke.Node, text: str) -> None:
    group["status"].setValue(text)


def process(group: nuke.Node) -> Session | None:
    """The Process button (main thread): start the pass; returns its session, None when it could not start."""
    if not isinstance(group, nuke.Group):
        raise TypeError(f"{group.name()} is not a Keygrip node: make one with Keygrip > Keygrip Node")
    running = _runs.get(str(group[RUN_KNOB].value()))
    if running is not None and running.busy:
        _status(group, "already running: press Cancel first to start again")
        return None
    kind = str(group["operation"].value())
    try:
        read = find_read(group)
        plate = plate_of(read, str(group["frame_range"].value()), int(group["handles"].value()))
        plan = compositing.PassPlan.for_plate(kind, plate, destination=destination_of(group, plate, kind))
    except PlateError as exc:
        _fail(group, str(exc))
        return None
    except ValueError as exc:   # a destination that is no pattern, or of another file type
        _fail(group, f"{group.name()}: {exc}")
        return None
    server = settings.server_settings(str(group["server"].value()))
    working = plate.working

    def write(files: compositing.PassFiles) -> str:
        # main thread: the session posts Main steps there. The plate shows the frames processed.
        pass_graph = files.graph(kind, plate.path, working)
        graph.build(group, pass_graph, files.metadata)
        return str(files.result_path(kind))

    main = main_thread()
    key = uuid.uuid4().hex
    panel = ProgressPanel(f"Keygrip {kind}: {read.name} {working}", lambda: cancel(group), main)
    session = Session(f"{kind} {read.name}", compositing.steps(plan, write=write), connector(server),
                      on_progress=lambda s: _progress(group, panel, s),
                      on_finish=lambda s: _finished(group, key, panel, s))
    group[RUN_KNOB].setValue(key)
    _runs[key] = session
    _status(group, f"{kind}: connecting to {server.address}")
    group["cancel"].setEnabled(True)
    panel.start()
    session.start(main)
    return session


def cancel(group: nuke.Node) -> None:
    """The Cancel button (and the progress task's Cancel): stop the run and its server job."""
    try:
        session = _runs.get(str(group[RUN_KNOB].value()))
    except ValueError:   # the node was deleted: its progress has cancelled the run already
        return
    if session is not None and session.busy:
        _status(group, "cancelling")
        session.cancel()


def _progress(group: nuke.Node, panel: ProgressPanel, session: Session) -> None:
    panel.update(session.progress)
    try:
        _status(group, session.progress.text())
    except ValueError:   # the node was deleted while its pass ran: nothing left to wire the result into
        session.cancel()


def _finished(group: nuke.Node, key: str, panel: ProgressPanel, session: Session) -> None:
    if session.state == "succeeded":
        # A short pass can end before its job reports past its first step: the task ends full.
        panel.update(Progress(stage="done", fraction=1.0))
    panel.close()
    _runs.pop(key, None)
    try:
        group[RUN_KNOB].setValue("")
        group["cancel"].setEnabled(False)
    except ValueError:   # the node was deleted while the pass ran: nothing left to show it on
        return
    if session.state == "succeeded":
        _status(group, f"done: {session.value}")
    elif session.state == "cancelled":
        _status(group, "cancelled")
    else:
        _fail(group, session.error)


def _fail(group: nuke.Node, text: str) -> None:
    _status(group, f"error: {text}")
    if nuke.GUI:
        nuke.message(f"Keygrip: {text}")


def main_thread() -> MainThread:
    """Nuke's GUI event loop, or under `nuke -t` the queue that wait() drains."""
    return NukeMainThread() if nuke.GUI else _terminal_main


def running() -> list[Session]:
    return [session for session in _runs.values() if session.busy]


def wait(timeout: float = 600.0) -> None:
    """Under `nuke -t`: run what the workers post until no pass runs (the GUI needs no such call).

    Raises TimeoutError, after cancelling them, if passes still run after `timeout` seconds.
    """
    if nuke.GUI:
        raise RuntimeError("keygrip_nuke.node.wait() is for `nuke -t`: in the GUI, results arrive by themselves")
    deadline = time.monotonic() + timeout
    while running():
        _terminal_main.run_pending(wait=0.05)
        if time.monotonic() > deadline:
            for session in running():
                session.cancel()
            raise TimeoutError(f"Keygrip passes still running after {timeout} s")
    _terminal_main.run_pending()
