# ruff: noqa: N801 - the class names are Nuke's own
"""A stateful stand-in for Nuke's `nuke` module, for testing the Keygrip plugin without Nuke.

Not a MagicMock: it holds a node graph (nodes of known classes with their own knobs, inputs, groups
entered with begin/end), a menu registry whose items run their commands, a ProgressTask whose cancel
a test sets, and a main thread. Anything it does not know fails as Nuke would (an unknown node
class, a knob a node does not have, a value an enumeration does not list).

Threads, as in Nuke: the thread that called reset() is the main thread. Touching the node graph
(nodes, knobs, groups, menus, dialogs) from any other thread is recorded in `violations` and raises
GraphTouchedOffMainThread; so is calling executeInMainThread / executeInMainThreadWithResult from
the main thread itself (which hangs a real Nuke). Calls queued by executeInMainThread run only when
the test pumps the main loop (pump / pump_until).

Install with `sys.modules["nuke"] = nuke_fake` before the plugin imports `nuke`; reset() between tests.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

GUI = True
NUKE_VERSION_MAJOR = 15
NUKE_VERSION_MINOR = 1
NUKE_VERSION_STRING = "15.1v3 (keygrip test fake)"
env: dict[str, Any] = {"gui": True, "NukeVersionMajor": 15}


class GraphTouchedOffMainThread(AssertionError):
    """Nuke's graph was touched from a thread other than the main one (or the main thread asked to
    run something on itself through executeInMainThread)."""


violations: list[str] = []
messages: list[str] = []          # what nuke.message() showed
_main_thread: threading.Thread = threading.main_thread()
_main_queue: queue.Queue[tuple[Callable[..., Any], tuple, dict, _Result | None]] = queue.Queue()


def _on_main(what: str) -> None:
    if threading.current_thread() is not _main_thread:
        where = "".join(traceback.format_stack(limit=6)[:-1])
        violations.append(f"{what} from thread {threading.current_thread().name}\n{where}")
        raise GraphTouchedOffMainThread(f"{what} called off Nuke's main thread")


# Knobs -----------------------------------------------------------------------------------------


class Knob:
    """A knob: name, label, value; belongs to at most one node."""

    default: Any = ""

    def __init__(self, name: str, label: str | None = None, value: Any = None) -> None:
        self._name = name
        self._label = label if label is not None else name
        self._value = self.default if value is None else self._check(value)
        self._enabled = True
        self._visible = True
        self._tooltip = ""
        self._flags = 0
        self._node: Node | None = None

    def _check(self, value: Any) -> Any:
        return value

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def node(self) -> Node:
        _on_main(f"{self._name}.node()")
        assert self._node is not None, f"knob {self._name} is not on a node"
        return self._node

    def value(self) -> Any:
        _on_main(f"{self._name}.value()")
        return self._value

    def getValue(self) -> Any:
        return self.value()

    def setValue(self, value: Any) -> bool:
        _on_main(f"{self._name}.setValue()")
        self._value = self._check(value)
        return True

    def setEnabled(self, enabled: bool) -> None:
        _on_main(f"{self._name}.setEnabled()")
        self._enabled = bool(enabled)

    def enabled(self) -> bool:
        _on_main(f"{self._name}.enabled()")
        return self._enabled

    def setVisible(self, visible: bool) -> None:
        _on_main(f"{self._name}.setVisible()")
        self._visible = bool(visible)

    def visible(self) -> bool:
        return self._visible

    def setTooltip(self, tooltip: str) -> None:
        _on_main(f"{self._name}.setTooltip()")
        self._tooltip = str(tooltip)

    def tooltip(self) -> str:
        return self._tooltip

    def setFlag(self, flag: int) -> None:
        _on_main(f"{self._name}.setFlag()")
        self._flags |= int(flag)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name}={self._value!r}>"


class String_Knob(Knob):
    def _check(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"{self._name}: a string knob takes a str, not {type(value).__name__}")
        return value


class EvalString_Knob(String_Knob):
    pass


class File_Knob(EvalString_Knob):
    pass


class Multiline_Eval_String_Knob(EvalString_Knob):
    pass


class Password_Knob(String_Knob):
    pass


class Text_Knob(Knob):
    pass


class Tab_Knob(Knob):
    pass


class Int_Knob(Knob):
    default = 0

    def _check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise TypeError(f"{self._name}: an integer knob takes an int, not {value!r}")
        return int(value)


class Double_Knob(Knob):
    default = 0.0

    def _check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{self._name}: a float knob takes a number, not {value!r}")
        return float(value)


class Boolean_Knob(Knob):
    default = False

    def _check(self, value: Any) -> Any:
        return bool(value)


class Enumeration_Knob(Knob):
    """Enumeration_Knob(name, label, values): value() is the chosen item's name."""

    def __init__(self, name: str, label: str | None = None, values: list[str] | None = None) -> None:
        self._values = list(values or [])
        super().__init__(name, label, self._values[0] if self._values else "")

    def _check(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(self._values):
                raise ValueError(f"{self._name}: no item {value}")
            return self._values[value]
        if value not in self._values:
            raise ValueError(f"{self._name}: {value!r} is not one of {self._values}")
        return value

    def values(self) -> list[str]:
        return list(self._values)

    def numValues(self) -> int:
        return len(self._values)


class PyScript_Knob(Knob):
    """A button: PyScript_Knob(name, label, command); execute() runs the command as Nuke does, with
    `nuke` imported and thisNode() the knob's node."""

    def __init__(self, name: str, label: str | None = None, command: str = "") -> None:
        super().__init__(name, label, "")
        self._command = command

    def command(self) -> str:
        return self._command

    def setCommand(self, command: str) -> None:
        _on_main(f"{self._name}.setCommand()")
        self._command = command

    def execute(self) -> None:
        _on_main(f"{self._name}.execute()")
        if not self._enabled:
            raise RuntimeError(f"{self._name} is disabled")
        _this.append((self._node, self))
        try:
            exec(compile(self._command, f"<knob {self._name}>", "exec"), {"nuke": _module()})
        finally:
            _this.pop()


# Nodes -------------------------------------------------------------------------------------------

# The knobs each node class has (name -> knob class, default), as far as the plugin uses them.
_CLASS_KNOBS: dict[str, dict[str, tuple[type[Knob], Any]]] = {
    "Read": {"file": (File_Knob, ""), "first": (Int_Knob, 1), "last": (Int_Knob, 1), "origfirst": (Int_Knob, 1),
             "origlast": (Int_Knob, 1), "colorspace": (String_Knob, "default"), "raw": (Boolean_Knob, False),
             "premultiplied": (Boolean_Knob, False), "on_error": (String_Knob, "error"),
             "before": (String_Knob, "hold"), "after": (String_Knob, "hold")},
    "Copy": {"from0": (String_Knob, "rgba.alpha"), "to0": (String_Knob, "rgba.alpha")},
    "Premult": {"channels": (String_Knob, "rgb")},
    "Merge2": {"operation": (String_Knob, "over"), "mix": (Double_Knob, 1.0)},
    "ZDefocus2": {"math": (String_Knob, "depth"), "size": (Double_Knob, 10.0), "max_size": (Double_Knob, 100.0),
                  "channels": (String_Knob, "rgba")},
    "Input": {"number": (Int_Knob, 0)},
    "Output": {},
    "Dot": {},
    "Group": {},
    "Root": {"first_frame": (Int_Knob, 1), "last_frame": (Int_Knob, 100)},
    "Preferences": {},
}
_MAX_INPUTS = {"Read": 0, "Copy": 2, "ZDefocus2": 2, "Premult": 1, "Merge2": 2, "Input": 0, "Output": 1, "Dot": 1}
_ENUM_VALUES = {("Merge2", "operation"): ["over", "under", "plus", "multiply", "copy"]}


class Node:
    """A node of a known class, with its knobs and inputs, inside a group."""

    def __init__(self, cls: str, name: str, parent: Group | None) -> None:
        if cls not in _CLASS_KNOBS:
            raise RuntimeError(f"{cls}: unknown command. Is the plug-in installed?")
        self._class = cls
        self._name = name
        self._parent = parent
        self._knobs: dict[str, Knob] = {}
        self._inputs: dict[int, Node] = {}
        self._xy = (0, 0)
        self._selected = False
        self._deleted = False
        self._knobs["name"] = String_Knob("name", "name", name)
        self._knobs["label"] = Multiline_Eval_String_Knob("label", "label", "")
        for knob_name, (kind, default) in _CLASS_KNOBS[cls].items():
            knob = kind(knob_name, knob_name, default)
            knob._node = self
            self._knobs[knob_name] = knob
        for knob in self._knobs.values():
            knob._node = self

    def _alive(self, what: str) -> None:
        _on_main(f"{self._name}.{what}")
        if self._deleted:
            raise ValueError(f"PythonObject not attached to a node ({self._name} was deleted)")

    def Class(self) -> str:
        self._alive("Class()")
        return self._class

    def name(self) -> str:
        self._alive("name()")
        return self._name

    def fullName(self) -> str:
        self._alive("fullName()")
        parent = self._parent
        if parent is None or parent._class == "Root":
            return self._name
        return f"{parent.fullName()}.{self._name}"

    def setName(self, name: str, uncollide: bool = True, updateExpressions: bool = False) -> None:
        self._alive("setName()")
        siblings = self._parent._children if self._parent is not None else []
        if any(n is not self and n._name == name for n in siblings):
            if not uncollide:
                raise ValueError(f"{name}: a node of that name exists")
            name = _unique_name(name.rstrip("0123456789") or name, self._parent)
        self._name = name
        self._knobs["name"]._value = name

    def parent(self) -> Group:
        self._alive("parent()")
        assert self._parent is not None
        return self._parent

    def knob(self, name: str) -> Knob | None:
        self._alive(f"knob({name!r})")
        return self._knobs.get(name)

    def knobs(self) -> dict[str, Knob]:
        self._alive("knobs()")
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        self._alive(f"[{name!r}]")
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def addKnob(self, knob: Knob) -> None:
        self._alive(f"addKnob({knob.name()!r})")
        if knob._node is not None:
            raise RuntimeError(f"knob {knob.name()} is already on node {knob._node._name}")
        if knob.name() in self._knobs:
            raise RuntimeError(f"{self._name} already has a knob named {knob.name()}")
        knob._node = self
        self._knobs[knob.name()] = knob

    def removeKnob(self, knob: Knob) -> None:
        self._alive("removeKnob()")
        if self._knobs.get(knob.name()) is not knob:
            raise ValueError(f"{knob.name()} is not a knob of {self._name}")
        del self._knobs[knob.name()]
        knob._node = None

    def input(self, i: int) -> Node | None:
        self._alive(f"input({i})")
        return self._inputs.get(i)

    def inputs(self) -> int:
        self._alive("inputs()")
        return max(self._inputs) + 1 if self._inputs else 0

    def maxInputs(self) -> int:
        self._alive("maxInputs()")
        if self._class == "Group":
            return len([n for n in self._children if n._class == "Input"])  # type: ignore[attr-defined]
        return _MAX_INPUTS.get(self._class, 1)

    def setInput(self, i: int, node: Node | None) -> bool:
        self._alive(f"setInput({i})")
        if not 0 <= i < max(self.maxInputs(), 1) and node is not None:
            return False
        if node is not None:
            if node._deleted:
                raise ValueError("PythonObject not attached to a node")
            if node._parent is not self._parent:
                raise ValueError(f"{node._name} and {self._name} are in different groups")
            self._inputs[i] = node
        else:
            self._inputs.pop(i, None)
        return True

    def dependent(self) -> list[Node]:
        self._alive("dependent()")
        siblings = self._parent._children if self._parent is not None else []
        return [n for n in siblings if self in n._inputs.values()]

    def setXYpos(self, x: int, y: int) -> None:
        self._alive("setXYpos()")
        self._xy = (int(x), int(y))

    def xpos(self) -> int:
        self._alive("xpos()")
        return self._xy[0]

    def ypos(self) -> int:
        self._alive("ypos()")
        return self._xy[1]

    def setSelected(self, selected: bool) -> None:
        self._alive("setSelected()")
        self._selected = bool(selected)

    def isSelected(self) -> bool:
        self._alive("isSelected()")
        return self._selected

    def firstFrame(self) -> int:
        self._alive("firstFrame()")
        if self._class == "Read":
            return int(self._knobs["first"]._value)
        src = self._inputs.get(0)
        return src.firstFrame() if src is not None else int(root()["first_frame"].value())

    def lastFrame(self) -> int:
        self._alive("lastFrame()")
        if self._class == "Read":
            return int(self._knobs["last"]._value)
        src = self._inputs.get(0)
        return src.lastFrame() if src is not None else int(root()["last_frame"].value())

    def showControlPanel(self) -> None:
        self._alive("showControlPanel()")

    def __repr__(self) -> str:
        return f"<{self._class} {self._name}>"


class Group(Node):
    """A group node: begin() makes it where new nodes go, end() leaves it."""

    def __init__(self, cls: str, name: str, parent: Group | None) -> None:
        super().__init__(cls, name, parent)
        self._children: list[Node] = []

    def begin(self) -> Group:
        self._alive("begin()")
        _context.append(self)
        return self

    def end(self) -> None:
        self._alive("end()")
        if len(_context) < 2 or _context[-1] is not self:
            raise RuntimeError(f"end() of {self._name}, which is not the group being built")
        _context.pop()

    def __enter__(self) -> Group:
        return self.begin()

    def __exit__(self, *exc: object) -> None:
        self.end()

    def nodes(self) -> list[Node]:
        self._alive("nodes()")
        return list(self._children)

    def node(self, name: str) -> Node | None:
        self._alive(f"node({name!r})")
        return next((n for n in self._children if n._name == name), None)

    def output(self) -> Node | None:
        self._alive("output()")
        return next((n for n in self._children if n._class == "Output"), None)


class Root(Group):
    pass


_root: Root = Root("Root", "root", None)
_context: list[Group] = [_root]
_this: list[tuple[Node | None, Knob | None]] = []
_preferences: Node = Node("Preferences", "preferences", None)


def _unique_name(base: str, group: Group | None) -> str:
    taken = {n._name for n in (group._children if group is not None else [])}
    i = 1
    while f"{base}{i}" in taken:
        i += 1
    return f"{base}{i}"


def _new(cls: str, knobs: dict[str, Any]) -> Node:
    group = _context[-1]
    kind: type[Node] = Group if cls == "Group" else Node
    node = kind(cls, _unique_name(cls, group), group)
    group._children.append(node)
    for key, value in knobs.items():
        if key == "name":
            node.setName(value)
        elif key == "inputs":
            for i, src in enumerate(value):
                node.setInput(i, src)
        else:
            node[key].setValue(value)
    return node


def createNode(node: str, knobs: str = "", inpanel: bool = True) -> Node:
    """As Nuke's: the new node goes into the current group, fed by the selected node there."""
    _on_main(f"createNode({node!r})")
    if knobs:
        raise NotImplementedError("createNode knob strings: set knobs on the node instead")
    selected = [n for n in _context[-1]._children if n._selected]
    made = _new(node, {})
    if selected and made.maxInputs() > 0:
        made.setInput(0, selected[-1])
    for n in selected:
        n._selected = False
    made._selected = True
    return made


class _Nodes:
    """nuke.nodes.Read(file=...): a node with knobs set, connected to nothing."""

    def __getattr__(self, cls: str) -> Callable[..., Node]:
        def make(**knobs: Any) -> Node:
            _on_main(f"nodes.{cls}()")
            return _new(cls, knobs)
        return make


nodes = _Nodes()


def root() -> Root:
    _on_main("root()")
    return _root


def thisNode() -> Node:
    _on_main("thisNode()")
    if not _this or _this[-1][0] is None:
        raise RuntimeError("thisNode() outside a knob's script")
    return _this[-1][0]  # type: ignore[return-value]


def thisKnob() -> Knob | None:
    _on_main("thisKnob()")
    return _this[-1][1] if _this else None


def thisGroup() -> Group:
    _on_main("thisGroup()")
    return _context[-1]


def toNode(name: str) -> Node | None:
    _on_main(f"toNode({name!r})")
    if name == "preferences":
        return _preferences
    group: Group = _root
    parts = name.split(".")
    for i, part in enumerate(parts):
        found = next((n for n in group._children if n._name == part), None)
        if found is None:
            return None
        if i == len(parts) - 1:
            return found
        if not isinstance(found, Group):
            return None
        group = found
    return None


def allNodes(filter: str = "", group: Group | None = None) -> list[Node]:
    _on_main("allNodes()")
    where = group or _context[-1]
    return [n for n in where._children if not filter or n._class == filter]


def selectedNodes(filter: str = "") -> list[Node]:
    _on_main("selectedNodes()")
    return [n for n in _context[-1]._children if n._selected and (not filter or n._class == filter)]


def selectedNode() -> Node:
    _on_main("selectedNode()")
    chosen = [n for n in _context[-1]._children if n._selected]
    if not chosen:
        raise ValueError("no node selected")
    return chosen[-1]


def delete(node: Node) -> None:
    _on_main("delete()")
    group = node._parent
    if group is not None:
        if isinstance(node, Group):
            for child in list(node._children):
                delete(child)
        group._children.remove(node)
        for other in group._children:
            for i, src in list(other._inputs.items()):
                if src is node:
                    del other._inputs[i]
    node._deleted = True


def sample(node: Node, channel: str, x: int, y: int, dx: int = 1, dy: int = 1) -> float:
    """A pixel of a Read's EXR at the Read's first frame, as Nuke samples it: y counts from the bottom.
    Only Reads of EXR files, and the rgba and depth.Z channels (what the plugin's results hold)."""
    _on_main("sample()")
    import re

    import numpy as np
    import OpenEXR

    if node._class != "Read":
        raise NotImplementedError("the fake samples only Read nodes")
    frame = int(node["first"].value())
    path = re.sub(r"#+", lambda m: str(frame).zfill(len(m.group())), str(node["file"].value()))
    names = {"rgba.red": "R", "rgba.green": "G", "rgba.blue": "B", "rgba.alpha": "A", "depth.Z": "Z"}
    with OpenEXR.File(path, separate_channels=True) as f:
        channels = f.channels()
        if names[channel] not in channels:
            return 0.0   # Nuke gives 0 for a channel the file does not have
        pixels = np.asarray(channels[names[channel]].pixels, dtype=np.float32)
    return float(pixels[pixels.shape[0] - 1 - int(y), int(x)])


script_name = ""   # the saved script's path; "" while untitled


def scriptName() -> str:
    _on_main("scriptName()")
    if not script_name:
        raise RuntimeError("no script name: the script has never been saved")
    return script_name


class Undo:
    """nuke.Undo.begin(name) / end(): the names of the undo steps made (one per result is expected)."""

    steps: list[str] = []
    _open: list[str] = []

    @classmethod
    def begin(cls, name: str = "") -> None:
        _on_main("Undo.begin()")
        cls._open.append(name)

    @classmethod
    def end(cls) -> None:
        _on_main("Undo.end()")
        cls.steps.append(cls._open.pop())


def message(prompt: str) -> None:
    _on_main("message()")
    messages.append(prompt)


def tprint(*args: Any, **kwargs: Any) -> None:
    print(*args, **kwargs)


def pluginAddPath(path: str, addToSysPath: bool = True) -> None:
    import sys

    plugin_paths.insert(0, path)
    if addToSysPath and path not in sys.path:
        sys.path.insert(0, path)


plugin_paths: list[str] = []


# Menus ---------------------------------------------------------------------------------------------


@dataclass
class MenuItem:
    """A command in a menu: invoke() runs its script (a string, with `nuke` imported) or callable."""

    _name: str
    command: Any = None
    shortcut: str = ""
    icon: str = ""

    def name(self) -> str:
        return self._name

    def invoke(self) -> None:
        _on_main(f"menu item {self._name}")
        if callable(self.command):
            self.command()
        elif self.command:
            exec(compile(self.command, f"<menu {self._name}>", "exec"), {"nuke": _module()})


@dataclass
class Menu:
    _name: str
    _items: list[Any] = field(default_factory=list)

    def name(self) -> str:
        return self._name

    def addMenu(self, name: str, icon: str = "", index: int = -1) -> Menu:
        _on_main(f"addMenu({name!r})")
        found = self.findItem(name)
        if isinstance(found, Menu):
            return found
        menu_ = Menu(name)
        self._items.append(menu_)
        return menu_

    def addCommand(self, name: str, command: Any = None, shortcut: str = "", icon: str = "",
                   tooltip: str = "", index: int = -1, readonly: bool = False, shortcutContext: int = 1) -> MenuItem:
        _on_main(f"addCommand({name!r})")
        head, _, tail = name.rpartition("/")
        parent = self.addMenu(head) if head else self
        item = MenuItem(tail, command, shortcut, icon)
        parent._items = [i for i in parent._items if i.name() != tail] + [item]
        return item

    def addSeparator(self) -> None:
        _on_main("addSeparator()")

    def findItem(self, name: str) -> Menu | MenuItem | None:
        head, _, rest = name.partition("/")
        found = next((i for i in self._items if i.name() == head), None)
        if rest:
            return found.findItem(rest) if isinstance(found, Menu) else None
        return found

    def items(self) -> list[Any]:
        return list(self._items)


_menus: dict[str, Menu] = {}


def menu(name: str) -> Menu:
    _on_main(f"menu({name!r})")
    if name not in ("Nuke", "Nodes", "Pane", "Viewer", "Node Graph", "Properties", "Animation"):
        raise RuntimeError(f"no menu named {name}")
    return _menus.setdefault(name, Menu(name))


# Main thread and progress -------------------------------------------------------------------------


class _Result:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def executeInMainThread(call: Callable[..., Any], args: tuple = (), kwargs: dict | None = None) -> None:
    if threading.current_thread() is _main_thread:
        violations.append("executeInMainThread called from the main thread (hangs Nuke)")
        raise GraphTouchedOffMainThread("executeInMainThread called from the main thread")
    if not isinstance(args, tuple):
        args = (args,)   # Nuke accepts a single argument not wrapped in a tuple
    _main_queue.put((call, args, kwargs or {}, None))


def executeInMainThreadWithResult(call: Callable[..., Any], args: tuple = (), kwargs: dict | None = None) -> Any:
    if threading.current_thread() is _main_thread:
        violations.append("executeInMainThreadWithResult called from the main thread (hangs Nuke)")
        raise GraphTouchedOffMainThread("executeInMainThreadWithResult called from the main thread")
    if not isinstance(args, tuple):
        args = (args,)
    result = _Result()
    _main_queue.put((call, args, kwargs or {}, result))
    result.done.wait()
    if result.error is not None:
        raise result.error
    return result.value


def pump(wait: float = 0.0) -> int:
    """Run what other threads queued for the main thread (main thread only); returns how many.
    An exception escaping a queued call is printed, as Nuke prints it, and recorded in `errors`."""
    assert threading.current_thread() is _main_thread, "pump() from the test's main thread"
    ran = 0
    try:
        item = _main_queue.get(timeout=wait) if wait > 0 else _main_queue.get_nowait()
        while True:
            call, args, kwargs, result = item
            try:
                value = call(*args, **kwargs)
                if result is not None:
                    result.value = value
            except BaseException as exc:  # noqa: BLE001 - Nuke prints it and goes on
                errors.append(exc)
                traceback.print_exc()
                if result is not None:
                    result.error = exc
            finally:
                if result is not None:
                    result.done.set()
            ran += 1
            item = _main_queue.get_nowait()
    except queue.Empty:
        return ran


def pump_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Pump the main loop until condition() holds; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the condition did not hold within {timeout} s")
        pump(wait=0.05)


errors: list[BaseException] = []


@dataclass
class TaskRecord:
    """What a ProgressTask showed; kept after the task is gone (Nuke closes it when it is deleted)."""

    title: str
    thread: str
    percents: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    cancelled: bool = False
    closed: bool = False


progress_tasks: list[TaskRecord] = []


class ProgressTask:
    """nuke.ProgressTask(title): setProgress(0..100), setMessage, isCancelled. The task closes when
    its object is deleted. A test presses its Cancel button with cancel_task()."""

    def __init__(self, title: str) -> None:
        self._record = TaskRecord(str(title), threading.current_thread().name)
        progress_tasks.append(self._record)

    def setProgress(self, percent: int) -> None:
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ValueError(f"setProgress takes an int 0..100, not {percent!r}")
        self._record.percents.append(percent)

    def setMessage(self, text: str) -> None:
        self._record.messages.append(str(text))

    def isCancelled(self) -> bool:
        return self._record.cancelled

    def __del__(self) -> None:
        self._record.closed = True


def cancel_task(record: TaskRecord) -> None:
    """Press Cancel in a progress task's panel (as the artist would)."""
    record.cancelled = True


# Test control --------------------------------------------------------------------------------------


def reset() -> None:
    """A fresh session: an empty root, no menus, no queued calls; the caller's thread is the main thread."""
    global _root, _preferences, _main_thread, GUI, script_name
    _main_thread = threading.current_thread()
    _root = Root("Root", "root", None)
    _context[:] = [_root]
    _this.clear()
    _preferences = Node("Preferences", "preferences", None)
    _menus.clear()
    violations.clear()
    messages.clear()
    errors.clear()
    progress_tasks.clear()
    plugin_paths.clear()
    GUI = True
    script_name = ""
    Undo.steps.clear()
    Undo._open.clear()
    while not _main_queue.empty():
        _main_queue.get_nowait()


def walk(group: Group | None = None) -> Iterator[Node]:
    """Every node under a group (default: the root), depth first (for assertions)."""
    for node in (group or _root)._children:
        yield node
        if isinstance(node, Group):
            yield from walk(node)


def _module() -> Any:
    import sys

    return sys.modules[__name__]
