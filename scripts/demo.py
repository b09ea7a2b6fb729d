"""The main job, end to end: a video in, an animated Rigify metarig in a .blend out.

    .venv/bin/python scripts/demo.py [--video clip.mp4] [--out demo_out]

Starts a Keygrip server on a private Unix socket (its data under demo_out/server), then drives the
Blender add-on in the bpy wheel exactly as an artist's clicks would (the Capture operator, the
session the timer drains, the write-back): the video onto a new canonical armature, then the same
capture onto a Rigify metarig. Writes keygrip_demo.blend, capture.bvh, retargeted.bvh and
preview.mp4 into demo_out/, prints where they are and how long each stage took, stops the server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from importlib import import_module
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
from blender_addon import ADDON_MODULE, load_addon  # noqa: E402  (scripts/ is on the path)


def start_server(data_dir: Path, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    socket_path = Path(tempfile.gettempdir()) / f"keygrip-demo-{os.getpid()}.sock"
    cmd = [sys.executable, "-m", "inference_server", "--listen", f"unix://{socket_path}", "--data-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "listening on" in line:
            return proc, line.rsplit("listening on ", 1)[1].strip()
        if not line:
            break
    proc.kill()
    raise SystemExit(f"the server did not start: {' '.join(cmd)}")


def enable_addon() -> ModuleType:
    import addon_utils

    module = load_addon()
    addon_utils.enable(ADDON_MODULE, default_set=True)
    return module


class Stages:
    """Wall-clock time of each stage, printed at the end."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - t0
        print(f"  {name}: {self.seconds[name]:.1f} s", flush=True)
        return out


def click_capture(main_thread: ModuleType, **panel) -> object:
    """Set the Keygrip panel and click Capture; drain the session as Blender's timer would."""
    import bpy

    settings = bpy.context.scene.keygrip
    for key, value in panel.items():
        setattr(settings, key, value)
    bpy.ops.keygrip.capture()
    session = main_thread.latest()
    main_thread.drain(timeout=1800)
    if session.state != "succeeded":
        raise SystemExit(f"Keygrip: {session.error}")
    return session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=REPO / "tests" / "data" / "video" / "pose2sim_cam01.mp4")
    parser.add_argument("--out", type=Path, default=REPO / "demo_out")
    args = parser.parse_args(argv)
    video = args.video.resolve()
    if not video.is_file():
        print(f"no video at {video}: pass --video PATH")
        return 0
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    import bpy

    stages = Stages()
    print("Keygrip demo", flush=True)
    proc, address = stages.run("start server", start_server, out / "server")
    try:
        stages.run("enable add-on", enable_addon)
        addon_utils = import_module("addon_utils")
        main_thread = import_module(f"{ADDON_MODULE}.main_thread")
        bpy.context.preferences.addons[ADDON_MODULE].preferences.server_address = address
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)

        canonical = stages.run("capture + retarget onto a new armature", click_capture, main_thread,
                               video_path=str(video), target="NEW", preview=True)
        addon_utils.enable("rigify", default_set=True)
        bpy.ops.object.armature_human_metarig_add()
        metarig = bpy.context.active_object
        metarig.location.x = 1.5  # beside the canonical armature
        stages.run("retarget onto a Rigify metarig", click_capture, main_thread, target="SELECTED",
                   armature=metarig, reuse_capture=True)

        from keygrip import Client

        with Client(address) as client:
            capture = client.get_job(bpy.context.scene.keygrip.last_capture_job).result()
            stages.run("download capture.bvh", client.download, capture.bvh.id, out / "capture.bvh")
            if capture.preview.id:
                stages.run("download preview.mp4", client.download, capture.preview.id, out / "preview.mp4")

        def export_bvh() -> None:
            bpy.context.scene.keygrip.armature = metarig
            bpy.ops.keygrip.export_bvh(filepath=str(out / "retargeted.bvh"))
            main_thread.drain(timeout=300)

        stages.run("export retargeted.bvh", export_bvh)
        stages.run("save keygrip_demo.blend", bpy.ops.wm.save_as_mainfile, filepath=str(out / "keygrip_demo.blend"))
        summary = capture.summary
        print(f"\ncaptured {summary.frames} frames ({summary.tracked_frames} tracked) at "
              f"{summary.processing_fps:.1f} fps on the server; server stages: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in summary.stage_seconds.items()))
        print(f"armatures: {canonical.value.target} and {metarig.name}")
    finally:
        proc.terminate()
        proc.wait(30)
    print("\nwritten:")
    for name in ("keygrip_demo.blend", "capture.bvh", "retargeted.bvh", "preview.mp4"):
        path = out / name
        print(f"  {path}" + ("" if path.is_file() else "  (missing)"))
    print("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
