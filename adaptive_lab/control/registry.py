"""The live adaptive targets of this process, for exporters (weak references).

A pool, limiter or cluster view (anything with ``stats()``), the controller that
drives one, or a scanner (anything with a live ``summary``) is registered under a
name; an exporter such as :mod:`adaptive_lab.integrations.prometheus` lists the
:func:`live` ones when it is scraped. A controller registers its target when its
thread starts. The registry holds its objects weakly, so a dropped pool leaves by
itself, and it counts each target's scale events by direction and rule from the
target's resize listener: nothing is added to a pool's hot path. An exporter may also
ask to be called after every controller tick (:func:`add_tick_hook`), to read a
window's task run times while the target still keeps them.

No third-party import here: the registry is cheap enough to be always on.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Watched", "add_tick_hook", "live", "lookup", "register", "remove_tick_hook",
           "rule_of", "ticked", "unregister"]

log = logging.getLogger("adaptive_lab")

_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RULE_MAX = 40


def rule_of(reason: str | None) -> str:
    """A decision's short rule: the first word of its reason, lower case ("+4: cpu
    30% < 40 and ..." -> "cpu", "hold at 8: ..." -> "hold"); "unknown" if none."""
    m = _RULE.search(reason or "")
    return m.group(0).lower()[:_RULE_MAX] if m else "unknown"


def _is_controller(obj: Any) -> bool:
    return (obj is not None and hasattr(obj, "last_decision") and hasattr(obj, "tick")
            and hasattr(obj, "target"))


def _controller_of(obj: Any) -> Any:
    """``obj`` if it is a controller, else its ``controller`` attribute if that is one."""
    if _is_controller(obj):
        return obj
    ctl = getattr(obj, "controller", None)
    return ctl if _is_controller(ctl) else None


def _resolve(obj: Any) -> tuple[Any, Any]:
    """``(target, controller)`` of a registered object; target None for a scanner."""
    ctl = _controller_of(obj)
    if ctl is not None and ctl is obj:
        return ctl.target, ctl
    if callable(getattr(obj, "stats", None)):
        return obj, ctl
    if ctl is not None:  # e.g. Dask's PolicyAdaptive: the controller's target is the view
        return ctl.target, ctl
    return None, None


class _Entry:
    """One registered object: a weak reference to it, its name and its counts."""

    __slots__ = ("__weakref__", "events", "explicit", "key", "kind", "lock", "name", "ref",
                 "serial", "state")

    def __init__(self, obj: Any, key: int, kind: str, name: str, explicit: bool,
                 serial: int) -> None:
        self.ref: weakref.ref[Any] = weakref.ref(obj, functools.partial(_forget, key))
        self.key = key
        self.kind = kind
        self.name = name
        self.explicit = explicit
        self.serial = serial
        self.events: dict[tuple[str, str], int] = {}  # (direction, rule) -> count
        self.lock = threading.Lock()
        #: Per-target state an exporter keeps (e.g. histogram buckets), by its own key.
        self.state: dict[str, Any] = {}

    def on_resize(self, old: int, new: int, reason: str) -> None:
        """Resize listener: count one scale event by direction and rule."""
        if new == old:
            return
        key = ("up" if new > old else "down", rule_of(reason))
        with self.lock:
            self.events[key] = self.events.get(key, 0) + 1


class Watched(NamedTuple):
    """A live registered object as an exporter sees it (strong references, for one
    scrape). ``kind`` is "pool" (``target`` has ``stats()``; ``controller`` may be
    None) or "scan" (``summary`` is the scanner's live summary)."""

    name: str
    kind: str
    target: Any
    controller: Any
    summary: Any
    events: dict[tuple[str, str], int]
    entry: _Entry


_lock = threading.Lock()
_entries: dict[int, _Entry] = {}
_serial = itertools.count(1)
_hooks: list[Callable[[Any, Any], None]] = []


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    with _lock:
        e = _entries.get(key)
        if e is not None and e.ref is ref:  # not a newer entry under a reused id
            del _entries[key]


def _default_name(obj: Any, target: Any, kind: str) -> str:
    if kind == "scan":
        return "scan"
    for o in (obj, target):
        for attr in ("_thread_name_prefix", "name"):
            try:
                v = getattr(o, attr, None)
            except ReferenceError:  # a weak proxy whose pool is gone
                v = None
            if isinstance(v, str) and v:
                return v
    return type(obj).__name__


def _unique(name: str, kind: str, skip: int) -> str:
    """``name``, or ``name-2``, ``name-3``... if a live entry of ``kind`` has it.
    Caller holds ``_lock``."""
    taken = {e.name for e in _entries.values() if e.kind == kind and e.key != skip}
    if name not in taken:
        return name
    return next(f"{name}-{i}" for i in itertools.count(2) if f"{name}-{i}" not in taken)


def register(obj: Any, name: str | None = None) -> str:
    """Watch ``obj`` (held weakly) under ``name``; return the name given to it.

    ``obj`` is a target with ``stats()`` (a pool, a limiter, a Dask cluster view), a
    controller or an object with one (its target is watched), or a scanner (an object
    with a ``summary`` that has ``files`` and ``bytes``). The default name is the
    pool's thread-name prefix, else the object's ``name``, else its type; a name
    already taken by a live object of the same kind gets ``-2``, ``-3``... A pool and
    its controller are one target: registering both keeps one entry (an explicit
    name wins). Scale events are counted from here on when the target offers
    ``add_resize_listener``.
    """
    target, ctl = _resolve(obj)
    if target is None:
        summary = getattr(obj, "summary", None)
        if not (hasattr(summary, "files") and hasattr(summary, "bytes")):
            raise ValueError(f"obj must have stats(), be or have a controller, or have a "
                             f"summary with files and bytes; got {type(obj).__name__}")
        kind = "scan"
    else:
        kind = "pool"
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty string or None, got {name!r}")
    key = id(ctl) if ctl is not None else id(obj)
    with _lock:
        entry = _entries.get(key)
        if entry is not None and entry.ref() is not None:
            if name is not None and name != entry.name:
                entry.name, entry.explicit = _unique(name, kind, key), True
            return entry.name
        wanted = name if name is not None else _default_name(obj, target, kind)
        entry = _Entry(obj, key, kind, _unique(wanted, kind, key), name is not None,
                       next(_serial))
        _entries[key] = entry
    listen = getattr(target, "add_resize_listener", None) if target is not None else None
    if listen is not None:
        listen(entry.on_resize)  # the target holds the entry, never the other way
    return entry.name


def unregister(obj: Any) -> bool:
    """Stop watching ``obj`` (or the target it controls); whether it was watched."""
    ctl = _controller_of(obj)
    key = id(ctl) if ctl is not None else id(obj)
    with _lock:
        return _entries.pop(key, None) is not None


def lookup(obj: Any) -> _Entry | None:
    """The entry of a watched object or controller (None if not watched)."""
    ctl = _controller_of(obj)
    return _entries.get(id(ctl) if ctl is not None else id(obj))


def live() -> list[Watched]:
    """The watched objects still alive, in registration order (one per controller:
    an explicitly named entry wins over a default-named one)."""
    with _lock:
        entries = sorted(_entries.values(), key=lambda e: (not e.explicit, e.serial))
    out = []
    controllers: set[int] = set()
    for e in entries:
        obj = e.ref()
        if obj is None:
            continue
        try:
            target, ctl = _resolve(obj)
        except ReferenceError:  # a controller whose pool was just collected
            continue
        if ctl is not None:
            if id(ctl) in controllers:  # e.g. a limiter and, later, its own controller
                continue
            controllers.add(id(ctl))
        with e.lock:
            events = dict(e.events)
        summary = getattr(obj, "summary", None) if e.kind == "scan" else None
        out.append(Watched(e.name, e.kind, target, ctl, summary, events, e))
    return sorted(out, key=lambda w: w.entry.serial)


def add_tick_hook(fn: Callable[[Any, Any], None]) -> None:
    """Call ``fn(controller, stats)`` after every tick of every controller (once per
    ``fn``); it runs on the controller's thread, so it must be quick and not block."""
    with _lock:
        if fn not in _hooks:
            _hooks.append(fn)


def remove_tick_hook(fn: Callable[[Any, Any], None]) -> None:
    with _lock:
        if fn in _hooks:
            _hooks.remove(fn)


def ticked(controller: Any, stats: Any) -> None:
    """Called by a controller after each tick with that tick's stats; never raises."""
    if not _hooks:
        return
    for fn in list(_hooks):
        try:
            fn(controller, stats)
        except Exception as exc:  # an exporter's failure must not stop the control loop
            log.debug("adaptive_lab registry: tick hook %r failed: %r", fn, exc)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
