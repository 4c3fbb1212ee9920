"""The process table as the kernel shows it (Linux ``/proc``): who descends from whom, and who
listens on a TCP port.

What enters: a pid or a port. What leaves: sets of pids. Used to check that a started server is
really *ours* (the port's listener belongs to our child, not to another server that held the port
first) and, in the tests, that no process outlives its parent. Off Linux (no ``/proc``) every
answer is empty.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

_PROC = Path("/proc")
_TCP_LISTEN = "0A"


def _parent_of(pid: int) -> int | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1])


def _all_pids() -> list[int]:
    try:
        return [int(entry) for entry in os.listdir(_PROC) if entry.isdigit()]
    except OSError:
        return []


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for candidate in _all_pids():
        parent = _parent_of(candidate)
        if parent is not None:
            children.setdefault(parent, []).append(candidate)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: Iterable[int]) -> set[int]:
    """Those of ``pids`` that still exist and are not zombies."""
    living = set()
    for pid in pids:
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2 :].split()[0] != "Z":
            living.add(pid)
    return living


def wait_gone(pids: Iterable[int], timeout_s: float) -> set[int]:
    """Wait until none of ``pids`` is alive; returns those still alive at the deadline."""
    remaining = set(pids)
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = alive(remaining)
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(0.05)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cells = line.split()
            if cells[3] == _TCP_LISTEN and int(cells[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cells[9])
    return inodes


def listening_pids(port: int, among: Iterable[int] | None = None) -> set[int]:
    """Pids of the processes (of ``among``, default all) holding a listening TCP socket on
    ``port`` (any address)."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return set()
    holders = set()
    for pid in _all_pids() if among is None else among:
        fd_dir = _PROC / str(pid) / "fd"
        try:
            links = {os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir)}
        except OSError:
            continue
        if links & wanted:
            holders.add(pid)
    return holders


def supported() -> bool:
    """True where ``/proc`` describes processes (Linux)."""
    return (_PROC / "self" / "stat").exists()
