"""Keygrip's check inside a real Nuke, for anyone with a licence:

    nuke -t selftest.py [--server HOST:PORT] [--start-local SERVER_PYTHON] [--out FOLDER]

Builds what an artist would in the GUI, headless: a Read of the bundled plate
(selftest_data/plate.####.exr, 1001-1003, linear half-float EXR), a Keygrip node fed by it, Process
pressed for a matte of 1001-1002; waits for the pass, then prints a report of every check (the
status, the files, the nodes inside the group and their wiring) and exits 0 when all pass, 1 if not.

The server: --server, else the Keygrip preferences or $KEYGRIP_ADDRESS; --start-local starts one
with that Python (the interpreter of an environment where the Keygrip server is installed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PLATE = os.path.join(HERE, "selftest_data", "plate.####.exr")


def _plugin_on_path() -> None:
    """When this folder is not on NUKE_PATH, do what init.py would have done."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import keygrip_nuke.bundled

    keygrip_nuke.bundled.add_to_path()


def run(server: str = "", start_local: str = "", out: str = "", timeout: float = 300.0,
        sample: bool = True) -> list[tuple[bool, str]]:
    """Build the group and process it; returns (passed, what) for each check. sample=False leaves out
    reading the matte's pixels with nuke.sample (scripts/check_nuke_plugin.py's bare Pythons, with a fake
    nuke and no image library, cannot)."""
    _plugin_on_path()
    import keygrip_nuke.node
    from keygrip_nuke.host import nuke

    if start_local:
        os.environ["KEYGRIP_START_LOCAL"] = "1"
        os.environ["KEYGRIP_SERVER_PYTHON"] = start_local
    out = out or tempfile.mkdtemp(prefix="keygrip-selftest-")
    checks: list[tuple[bool, str]] = []

    def check(ok: bool, what: str) -> bool:
        checks.append((bool(ok), what))
        return bool(ok)

    read = nuke.nodes.Read(file=PLATE, first=1001, last=1003, origfirst=1001, origlast=1003)
    read.setSelected(True)
    group = keygrip_nuke.node.create()
    fed = group.input(0)
    check(fed is not None and fed.name() == read.name(), f"the Keygrip node {group.name()} is fed by {read.name()}")
    group["operation"].setValue("matte")
    group["frame_range"].setValue("1001-1002")
    group["server"].setValue(server)
    group["destination"].setValue(os.path.join(out, "selftest_matte.####.exr"))
    process = group["process"]
    assert isinstance(process, nuke.PyScript_Knob)
    process.execute()   # the Process button
    if nuke.GUI:
        check(False, "run with `nuke -t selftest.py`: in the GUI the result arrives later, by itself")
        return checks
    keygrip_nuke.node.wait(timeout)
    status = str(group["status"].value())
    if not check(status.startswith("done: "), f"status: {status}"):
        return checks
    files = sorted(name for name in os.listdir(out) if name.startswith("selftest_matte."))
    check(files == ["selftest_matte.1001.exr", "selftest_matte.1002.exr"], f"files in {out}: {', '.join(files)}")
    made = {n.Class(): n for n in group.nodes() if n.name() not in ("Plate", "Background", "Output1")}
    if not check(set(made) == {"Read", "Copy", "Premult", "Merge2"}, f"result nodes: {', '.join(sorted(made))}"):
        return checks
    inside = {n.name(): n for n in group.nodes()}
    matte, copy, premult, merge = made["Read"], made["Copy"], made["Premult"], made["Merge2"]
    check(bool(matte["raw"].value()), f"{matte.name()} reads the matte as raw data")
    check((matte["first"].value(), matte["last"].value()) == (1001, 1002), f"{matte.name()} covers 1001-1002")
    check(copy.input(0) is inside["Plate"] and copy.input(1) is matte,
          f"{copy.name()}: B is the plate, A the matte ({copy['from0'].value()} -> {copy['to0'].value()})")
    check(premult.input(0) is copy, f"{premult.name()} premultiplies the plate with the matte")
    check(merge.input(0) is inside["Background"] and merge.input(1) is premult and
          merge["operation"].value() == "over", f"{merge.name()}: the premultiplied plate over the Background")
    check(inside["Output1"].input(0) is merge, "the group's Output shows the comp")
    if not sample:
        return checks
    # What Nuke itself makes of the files: the matte's alpha on frame 1001 is neither empty nor full.
    try:
        alpha = [nuke.sample(matte, "rgba.alpha", x, y) for x in (36, 72, 108) for y in (64, 128, 192)]
        check(0.0 <= min(alpha) < max(alpha) <= 1.0, f"matte alpha samples on frame 1001: {alpha}")
    except (AttributeError, RuntimeError, ValueError) as exc:
        check(False, f"nuke.sample of the matte failed: {exc}")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="", help="HOST:PORT of the Keygrip server")
    parser.add_argument("--start-local", default="", metavar="SERVER_PYTHON",
                        help="start a local server with this Python when none answers")
    parser.add_argument("--out", default="", help="folder for the matte (default: a new temporary folder)")
    args = parser.parse_args(argv)
    return report(run(args.server, args.start_local, args.out))


def report(checks: list[tuple[bool, str]]) -> int:
    """Print each check and a total; 0 when all passed, 1 if not."""
    for passed, what in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {what}")
    failed = sum(not passed for passed, _ in checks)
    print(f"Keygrip selftest: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
