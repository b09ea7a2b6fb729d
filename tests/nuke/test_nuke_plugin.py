"""The Keygrip node in the fake Nuke, against the real server over real gRPC, on a real EXR plate
(the selftest's bundled plate: three frames of the Pose2Sim clip): the menu makes the node, Process
runs the matte on the server, progress reaches a ProgressTask, the result comes back as Reads wired
into the group; Cancel through the progress task; a server that is down; frame ranges that are wrong.

Every test fails if anything touched the node graph off the main thread (the `nuke` fixture)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from nuke_paths import PLUGIN
from server_process import ServerProcess

import keygrip

PLATE = PLUGIN / "selftest_data" / "plate.####.exr"
VIDEO = PLUGIN.parents[2] / "tests" / "data" / "video" / "pose2sim_cam01.mp4"


def _plate_read(nuke: ModuleType, first: int = 1001, last: int = 1003) -> object:
    read = nuke.nodes.Read(file=str(PLATE), first=first, last=last, origfirst=first, origlast=last)
    read.setSelected(True)
    return read


def _keygrip_node(nuke: ModuleType, server: str, destination: Path, frame_range: str = "") -> object:
    """The node as an artist makes it: Read selected, then Keygrip > Keygrip Node."""
    nuke.menu("Nuke").findItem("Keygrip/Keygrip Node").invoke()
    group = nuke.selectedNode()
    group["server"].setValue(server)
    group["destination"].setValue(str(destination))
    group["frame_range"].setValue(frame_range)
    return group


def _press(group: object, knob: str = "process") -> None:
    group[knob].execute()  # type: ignore[index]


def _result_nodes(group: object) -> dict[str, object]:
    """What a pass built inside the group (all but the Plate and Background inputs and the Output), by class."""
    made = [n for n in group.nodes() if n.name() not in ("Plate", "Background", "Output1")]  # type: ignore[attr-defined]
    return {n.Class(): n for n in made}


def test_menu_toolbar_preferences_and_the_node(nuke: ModuleType) -> None:
    assert nuke.menu("Nodes").findItem("Keygrip/Keygrip") is not None
    prefs = nuke.toNode("preferences")
    assert {"keygrip_server", "keygrip_token", "keygrip_start_local", "keygrip_server_python"} <= set(prefs.knobs())
    read = _plate_read(nuke)
    nuke.menu("Nuke").findItem("Keygrip/Keygrip Node").invoke()
    group = nuke.selectedNode()
    assert group.Class() == "Group" and group.name() == "Keygrip"
    assert group.input(0) is read   # fed by the selected Read, as any new node is
    assert group["operation"].values() == ["matte", "cleanplate", "depth"]
    assert group["status"].value() == "idle" and not group["cancel"].enabled()
    inside = {n.name(): n for n in group.nodes()}
    assert set(inside) == {"Plate", "Background", "Output1"} and inside["Output1"].input(0) is inside["Plate"]
    with pytest.raises(ValueError):
        group["operation"].setValue("rotoscope")


def test_process_builds_the_matte_wired_into_the_group(nuke: ModuleType, shared_server: ServerProcess,
                                                       tmp_path: Path) -> None:
    import keygrip_nuke.node

    read = _plate_read(nuke)
    group = _keygrip_node(nuke, shared_server.address, tmp_path, "1001-1002")
    _press(group)
    assert group["status"].value().startswith("matte: connecting") and group["cancel"].enabled()
    statuses: list[str] = []

    def done() -> bool:
        statuses.append(group["status"].value())
        return not keygrip_nuke.node.running()

    nuke.pump_until(done, timeout=60)
    assert group["status"].value() == f"done: {tmp_path / 'plate_matte.####.exr'}", group["status"].value()
    assert any("matte" in s and "%" in s for s in statuses)   # progress showed on the node while it ran
    # The progress task: made off the main thread, moved, and closed at the end.
    (task,) = nuke.progress_tasks
    assert task.title == "Keygrip matte: Read1 1001-1002" and task.thread != threading.main_thread().name
    nuke.pump_until(lambda: task.closed, timeout=10)   # once the panel thread's last poll has seen the end
    assert task.percents and task.percents[-1] == 100 and task.messages   # a finished pass ends full
    # The files: the plate's numbers, only the working range, a linear float alpha.
    files = sorted(p.name for p in tmp_path.glob("plate_matte.*"))
    assert files == ["plate_matte.1001.exr", "plate_matte.1002.exr"]
    import OpenEXR

    with OpenEXR.File(str(tmp_path / "plate_matte.1001.exr"), separate_channels=True) as f:
        alpha = np.asarray(f.channels()["A"].pixels, dtype=np.float32)
    assert alpha.shape == (256, 144) and 0.02 < (alpha > 0.5).mean() < 0.6
    # The wiring: Read (raw) -> Copy alpha onto the plate -> Premult -> Merge over the Background.
    nodes = _result_nodes(group)
    assert set(nodes) == {"Read", "Copy", "Premult", "Merge2"}
    inside = {n.name(): n for n in group.nodes()}
    matte_read, copy, premult, merge = nodes["Read"], nodes["Copy"], nodes["Premult"], nodes["Merge2"]
    assert matte_read["file"].value() == str(tmp_path / "plate_matte.####.exr")
    assert matte_read["label"].value() == "Matte"
    assert (matte_read["first"].value(), matte_read["last"].value()) == (1001, 1002) and matte_read["raw"].value()
    assert copy.input(0) is inside["Plate"] and copy.input(1) is matte_read
    assert (copy["from0"].value(), copy["to0"].value()) == ("rgba.alpha", "rgba.alpha")
    assert premult.input(0) is copy
    assert merge["operation"].value() == "over"
    assert merge.input(0) is inside["Background"] and merge.input(1) is premult
    assert inside["Output1"].input(0) is merge
    assert group.input(0) is read
    provenance = json.loads(group["provenance"].value())
    assert provenance["graph"]["name"] == "Keygrip Matte" and provenance["metadata"]["frame_range"] == "1001-1002"
    assert nuke.Undo.steps == ["Keygrip Matte"]
    assert not nuke.messages


def test_terminal_mode_runs_the_pass_through_wait(nuke: ModuleType, shared_server: ServerProcess,
                                                  tmp_path: Path) -> None:
    """`nuke -t` has no GUI event loop: results come back through the queue wait() drains, and no
    dialog is opened."""
    import keygrip_nuke.node

    nuke.GUI = False
    _plate_read(nuke)
    group = _keygrip_node(nuke, shared_server.address, tmp_path / "shot010_matte.%04d.exr")
    group["handles"].setValue(1)   # 1001 and 1003 are handles: only 1002 is sent and processed
    _press(group)
    keygrip_nuke.node.wait(timeout=60)
    assert group["status"].value() == f"done: {tmp_path / 'shot010_matte.####.exr'}", group["status"].value()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot010_matte.1002.exr"]
    assert set(_result_nodes(group)) == {"Read", "Copy", "Premult", "Merge2"}


def test_cancel_in_the_progress_task_cancels_the_server_job(nuke: ModuleType, server_factory, tmp_path: Path
                                                            ) -> None:
    """The server's only worker is busy with a long matte, so the node's job waits in the queue:
    pressing Cancel in the progress task cancels it there, whatever the machine's speed."""
    import keygrip_nuke.node

    server = server_factory(workers=1)
    with keygrip.Client(server.address) as client:
        blocker = client.matte(VIDEO, working_size=256)   # 100 full-size frames
        try:
            _plate_read(nuke)
            group = _keygrip_node(nuke, server.address, tmp_path)
            _press(group)
            session = keygrip_nuke.node.running()[0]
            nuke.pump_until(lambda: bool(session.job_ids), timeout=30)
            (task,) = nuke.progress_tasks
            nuke.cancel_task(task)
            nuke.pump_until(lambda: not session.busy, timeout=30)
            assert session.state == "cancelled" and group["status"].value() == "cancelled"
            job = client.get_job(session.job_ids[0])
            job.wait(timeout=30)
            assert job.state == "cancelled"
            assert not _result_nodes(group) and not group["cancel"].enabled()
            assert not list(tmp_path.glob("*.exr"))
            assert not nuke.messages   # cancelling is not an error
        finally:
            blocker.cancel()


def test_cancel_button_a_second_press_and_a_rename_while_running(nuke: ModuleType, server_factory,
                                                                  tmp_path: Path) -> None:
    import keygrip_nuke.node

    server = server_factory(workers=1)
    with keygrip.Client(server.address) as client:
        blocker = client.matte(VIDEO, working_size=256)
        try:
            _plate_read(nuke)
            group = _keygrip_node(nuke, server.address, tmp_path)
            _press(group)
            session = keygrip_nuke.node.running()[0]
            _press(group)   # a second Process while the first runs starts nothing
            assert group["status"].value().startswith("already running") and len(nuke.progress_tasks) == 1
            group.setName("MatteOfHero")   # renamed mid-run: its Cancel still reaches the run
            nuke.pump_until(lambda: bool(session.job_ids), timeout=30)
            _press(group, "cancel")
            nuke.pump_until(lambda: not session.busy, timeout=30)
            assert session.state == "cancelled" and group["status"].value() == "cancelled"
            assert group["keygrip_run"].value() == "" and not group["cancel"].enabled()
        finally:
            blocker.cancel()


def test_server_down_says_where_and_what_to_do(nuke: ModuleType, tmp_path: Path) -> None:
    import keygrip_nuke.node

    _plate_read(nuke)
    group = _keygrip_node(nuke, "127.0.0.1:9", tmp_path)   # the discard port: nothing listens there
    _press(group)
    nuke.pump_until(lambda: not keygrip_nuke.node.running(), timeout=30)
    status = group["status"].value()
    assert status.startswith("error: server not reachable at 127.0.0.1:9: start it with"), status
    assert "Start a local server" in status
    assert nuke.messages == [f"Keygrip: {status.removeprefix('error: ')}"]
    assert not _result_nodes(group)


@pytest.mark.parametrize(("text", "expected"), [
    ("1001-1100", "Read1: plate.####.exr: the working range 1001-1100 lies outside the plate's frames 1001-1003; "
                  "pick frames inside it"),
    ("990", "Read1: plate.####.exr: the working range 990-990 lies outside the plate's frames 1001-1003"),
    ("first-last", "Read1: frame range 'first-last': write FIRST-LAST in the plate's frame numbers, e.g. 1001-1100"),
    ("1003-1001", "the first frame must not be negative nor after the last"),
])
def test_bad_frame_range_is_refused_before_anything_runs(nuke: ModuleType, tmp_path: Path, text: str,
                                                         expected: str) -> None:
    import keygrip_nuke.node

    _plate_read(nuke)
    group = _keygrip_node(nuke, "127.0.0.1:9", tmp_path, text)
    _press(group)
    assert expected in group["status"].value() and group["status"].value().startswith("error: ")
    assert not keygrip_nuke.node.running() and not nuke.progress_tasks
    assert len(nuke.messages) == 1


def test_no_plate_connected_a_movie_and_frames_missing_on_disk(nuke: ModuleType, tmp_path: Path) -> None:
    group = _keygrip_node(nuke, "127.0.0.1:9", tmp_path)
    _press(group)
    assert group["status"].value() == ("error: Keygrip: connect the plate's Read node to the Plate input (input 1) "
                                       "and press Process again")
    movie = nuke.nodes.Read(file=str(VIDEO), first=1, last=100)
    group.setInput(0, movie)
    _press(group)
    assert group["status"].value().startswith(f"error: {movie.name()}: pose2sim_cam01.mp4 is not an image sequence: "
                                              "the Keygrip node works on sequences")
    group.setInput(0, nuke.nodes.Read(file=str(tmp_path / "gone.####.exr"), first=1, last=9))
    _press(group)
    assert "gone.####.exr" in group["status"].value() and str(tmp_path) in group["status"].value()
    assert len(nuke.messages) == 3 and not nuke.progress_tasks


def test_the_fake_refuses_graph_work_off_the_main_thread(nuke: ModuleType) -> None:
    """What makes the other tests' main-thread guarantee mean something."""
    read = _plate_read(nuke)
    caught: list[BaseException] = []

    def touch() -> None:
        try:
            read["file"].setValue("elsewhere.####.exr")
        except BaseException as exc:  # noqa: BLE001
            caught.append(exc)

    thread = threading.Thread(target=touch)
    thread.start()
    thread.join()
    assert isinstance(caught[0], nuke.GraphTouchedOffMainThread) and len(nuke.violations) == 1
    with pytest.raises(nuke.GraphTouchedOffMainThread):
        nuke.executeInMainThread(print)   # from the main thread itself: hangs a real Nuke
    nuke.violations.clear()


def test_selftest_passes_in_terminal_mode(nuke: ModuleType, shared_server: ServerProcess, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """selftest.py, as `nuke -t selftest.py --server ADDRESS` runs it (here in the fake's terminal mode)."""
    import runpy

    nuke.GUI = False
    selftest = runpy.run_path(str(PLUGIN / "selftest.py"))
    code = selftest["main"](["--server", shared_server.address, "--out", str(tmp_path)])
    report = capsys.readouterr().out
    assert code == 0, report
    lines = report.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    assert lines[-1] == "Keygrip selftest: 11 passed, 0 failed"
    assert "matte alpha samples on frame 1001" in report


def test_clean_plate_is_a_held_read_shown_by_the_group(nuke: ModuleType, shared_server: ServerProcess,
                                                       tmp_path: Path) -> None:
    import keygrip_nuke.node

    _plate_read(nuke)
    group = _keygrip_node(nuke, shared_server.address, tmp_path)
    group["operation"].setValue("cleanplate")
    _press(group)
    nuke.pump_until(lambda: not keygrip_nuke.node.running(), timeout=60)
    status = group["status"].value()
    assert status == f"done: {tmp_path / 'plate_cleanplate.1002.exr'}", status
    (read,) = _result_nodes(group).values()
    assert read.Class() == "Read" and read["file"].value() == str(tmp_path / "plate_cleanplate.1002.exr")
    assert read["first"].value() == read["last"].value() == 1002   # the range's middle frame, held
    assert (read["before"].value(), read["after"].value()) == ("hold", "hold") and not read["raw"].value()
    assert group.node("Output1").input(0) is read


def test_depth_defocuses_the_plate_and_a_matte_replaces_it(nuke: ModuleType, tmp_path: Path) -> None:
    """The depth wiring from a depth pass's files (a server with a depth model is the compositing
    tests' business); then a matte replaces it, and the group keeps one result."""
    from keygrip_nuke import graph

    from keygrip.compositing import PassFiles

    _plate_read(nuke)
    group = _keygrip_node(nuke, "", tmp_path)
    frames = {n: tmp_path / f"depth.{n}.exr" for n in (1001, 1002, 1003)}
    depth = PassFiles(frames=frames, pattern=str(tmp_path / "depth.####.exr"), metadata={"frame_range": "1001-1003"})
    graph.build(group, depth.graph("depth", PLATE), {})
    nodes = _result_nodes(group)
    assert set(nodes) == {"Read", "Copy", "ZDefocus2"}
    read, copy, defocus = nodes["Read"], nodes["Copy"], nodes["ZDefocus2"]
    assert read["raw"].value() and (read["first"].value(), read["last"].value()) == (1001, 1003)
    assert (copy["from0"].value(), copy["to0"].value()) == ("depth.Z", "depth.Z")
    assert copy.input(0) is group.node("Plate") and copy.input(1) is read and defocus.input(0) is copy
    assert defocus["math"].value() == "direct" and defocus["size"].value() == 8.0
    assert group.node("Output1").input(0) is defocus
    matte = PassFiles(frames={1001: tmp_path / "matte.1001.exr"}, pattern=str(tmp_path / "matte.####.exr"))
    graph.build(group, matte.graph("matte", PLATE), {})
    assert set(_result_nodes(group)) == {"Read", "Copy", "Premult", "Merge2"}
    assert len(group.nodes()) == 7 and nuke.Undo.steps == ["Keygrip Depth", "Keygrip Matte"]


def test_server_settings_from_the_node_the_preferences_and_the_environment(
        nuke: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from keygrip_nuke.settings import server_settings

    for name in ("KEYGRIP_ADDRESS", "KEYGRIP_TOKEN", "KEYGRIP_START_LOCAL", "KEYGRIP_SERVER_PYTHON",
                 "KEYGRIP_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    default = server_settings()
    assert (default.address, default.token, default.start_local) == ("127.0.0.1:50051", "", False)
    monkeypatch.setenv("KEYGRIP_ADDRESS", "render7:50051")
    monkeypatch.setenv("KEYGRIP_TOKEN", "studio-token")
    monkeypatch.setenv("KEYGRIP_SERVER_PYTHON", "/opt/keygrip/bin/python")
    assert (server_settings().address, server_settings().token) == ("render7:50051", "studio-token")
    prefs = nuke.toNode("preferences")
    prefs["keygrip_server"].setValue("gpu2:50051")
    prefs["keygrip_token"].setValue("my-token")
    prefs["keygrip_start_local"].setValue(True)
    chosen = server_settings()
    assert (chosen.address, chosen.token, chosen.start_local, chosen.python) == (
        "gpu2:50051", "my-token", True, "/opt/keygrip/bin/python")
    assert server_settings(" gpu9:1234 ").address == "gpu9:1234"   # the node's own knob wins


def test_a_local_server_is_started_when_the_preferences_allow_it(nuke: ModuleType, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing answers, "start a local server" is on with a server Python: Process starts the real
    server on a private socket (here one in tmp_path, not the user's) and runs the pass on it."""
    import keygrip_nuke.node

    from keygrip import local_server

    monkeypatch.setattr(local_server, "default_socket_path", lambda: tmp_path / "k.sock")
    prefs = nuke.toNode("preferences")
    prefs["keygrip_start_local"].setValue(True)
    prefs["keygrip_server_python"].setValue(sys.executable)
    prefs["keygrip_data_dir"].setValue(str(tmp_path / "server-data"))
    _plate_read(nuke)
    group = _keygrip_node(nuke, "", tmp_path / "out", "1001")
    try:
        _press(group)
        statuses: list[str] = []
        nuke.pump_until(lambda: statuses.append(group["status"].value()) or not keygrip_nuke.node.running(),
                        timeout=120)
        assert group["status"].value() == f"done: {tmp_path / 'out' / 'plate_matte.####.exr'}", statuses[-3:]
        assert any(s.startswith("starting the local server") for s in statuses)
        assert (tmp_path / "server-data").is_dir() and (tmp_path / "out" / "plate_matte.1001.exr").is_file()
    finally:
        local_server.stop()


def test_deleting_the_node_while_its_pass_runs_cancels_it(nuke: ModuleType, shared_server: ServerProcess,
                                                          tmp_path: Path) -> None:
    import keygrip_nuke.node

    _plate_read(nuke)
    group = _keygrip_node(nuke, shared_server.address, tmp_path, "1001")
    _press(group)
    (session,) = keygrip_nuke.node.running()
    nuke.delete(group)
    nuke.pump_until(lambda: not session.busy, timeout=60)
    assert session.state == "cancelled" and not keygrip_nuke.node.running()
    assert not nuke.messages   # nobody to tell: the node is gone

