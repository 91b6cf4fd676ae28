"""Crash-safe file writes: write to a temporary name beside the target, then rename.

A reader (or a crashed writer) never sees a half-written file: ``os.replace`` is atomic
on POSIX file systems when source and target are in the same folder.

A writer killed before its rename leaves its temporary behind (``<name>.tmp-<pid>``, or
``<name>.old-<pid>`` while a folder is being replaced): :func:`remove_stale_temporaries`
removes those of dead processes. Every temporary name carries its writer's process id,
so staleness is decided without any cooperation from the writer (no lock file to leave
behind): a temporary is stale when no process with that id exists, or when the process
that has the id now started after the temporary was last modified (the id was reused).
The check is local to this machine's process table: a folder must not be written at the
same time by processes of another machine or PID namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from typing import Dict, Iterator, List, Optional

__all__ = ["temporary_path", "atomic_path", "atomic_paths", "write_bytes", "write_text", "write_json",
           "TEMPORARY_NAME", "process_is_running", "remove_stale_temporaries"]

#: The names this module's writers leave behind when killed: ``<target>.tmp-<pid>[suffix]``
#: (a file or folder being written) and ``<target>.old-<pid>`` (a folder being replaced).
TEMPORARY_NAME = re.compile(r"^(?P<target>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)(?P<suffix>\.[A-Za-z0-9]+)?$")


def temporary_path(path: str, suffix: str = "") -> str:
    """A sibling name of ``path`` unique to this process, for writing before the rename.

    ``suffix`` is appended for writers that insist on an extension (Keras: ".keras")."""
    return f"{path}.tmp-{os.getpid()}{suffix}"


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path to write; on success rename it onto ``path``.

    Works for files and folders. On an exception the temporary is removed and ``path``
    keeps its previous content.
    """
    with atomic_paths({"path": path}, suffix=suffix) as tmps:
        yield tmps["path"]


@contextlib.contextmanager
def atomic_paths(paths: Dict[str, str], suffix: str = "") -> Iterator[Dict[str, str]]:
    """Several files written all-or-nothing: yield ``{key: temporary path}``; when the block
    succeeds every temporary is renamed onto its target, else all are removed and no
    target changes. Targets' folders are created."""
    tmps = {key: temporary_path(path, suffix) for key, path in paths.items()}
    for path in paths.values():
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for tmp in tmps.values():
        _remove(tmp)
    try:
        yield tmps
        for key, path in paths.items():
            _replace(tmps[key], path)
    finally:
        for tmp in tmps.values():
            _remove(tmp)


def _replace(tmp: str, path: str) -> None:
    if os.path.isdir(tmp) and os.path.isdir(path):
        # os.replace cannot replace a non-empty folder: move the old one aside first.
        old = f"{path}.old-{os.getpid()}"
        os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)


def write_bytes(path: str, data: bytes, fsync: bool = True) -> None:
    """Atomically write ``data`` to ``path`` (its folder is created). ``fsync=False`` skips
    flushing to the disk before the rename (bulk writers of regenerable files, e.g. the
    synthetic datasets, where the rename alone already rules out half-written files)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def write_text(path: str, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj) -> None:
    """Atomically write ``obj`` as indented JSON to ``path``."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


# ------------------------------------------------------------------ leftovers of dead writers
def _process_start_time(pid: int) -> Optional[float]:
    """Start time (seconds since the epoch) of process ``pid`` from Linux's /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def process_is_running(pid: int, since: Optional[float] = None) -> bool:
    """Whether process ``pid`` exists (``os.kill(pid, 0)``) and, when ``since`` (seconds
    since the epoch, e.g. the mtime of a file it wrote) is given, started no later than
    ``since`` (a process started after that is another one that reused the id).
    Unknown (no /proc) counts as running: a leftover is kept rather than a live file lost."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    start = _process_start_time(pid) if since is not None else None
    return not (start is not None and start > since + 1.0)  # 1 s: clock-tick and mtime granularity


def remove_stale_temporaries(folder: str, target: Optional[str] = None) -> List[str]:
    """Remove the temporaries (:data:`TEMPORARY_NAME`) in ``folder`` whose writer is dead
    (:func:`process_is_running`); those of live processes, this one included, are kept.
    ``target``: only the temporaries of that name (e.g. ``"model"`` for ``model.tmp-123``).
    Returns the removed paths (files and folders); a missing folder gives []."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in sorted(names):
        m = TEMPORARY_NAME.match(name)
        if not m or (target is not None and m.group("target") != target):
            continue
        path = os.path.join(folder, name)
        try:
            mtime = os.lstat(path).st_mtime
        except FileNotFoundError:
            continue
        if not process_is_running(int(m.group("pid")), since=mtime):
            _remove(path)
            removed.append(path)
    return removed
