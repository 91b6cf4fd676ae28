"""Crash-safe file writes: write to a temporary name beside the target, then rename.

A reader (or a crashed writer) never sees a half-written file: ``os.replace`` is atomic
on POSIX file systems when source and target are in the same folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Iterator


def temporary_path(path: str) -> str:
    """A sibling name of ``path`` unique to this process, for writing before the rename."""
    return f"{path}.tmp-{os.getpid()}"


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write; on success rename it onto ``path``.

    Works for files and folders. On an exception the temporary is removed and ``path``
    keeps its previous content.
    """
    tmp = temporary_path(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    _remove(tmp)
    try:
        yield tmp
        if os.path.isdir(tmp) and os.path.isdir(path):
            # os.replace cannot replace a non-empty folder: move the old one aside first.
            old = f"{path}.old-{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_bytes(path: str, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj) -> None:
    """Atomically write ``obj`` as indented JSON to ``path``."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_line(path: str, line: str) -> None:
    """Append one line to a text file by rewriting it atomically (old lines are kept)."""
    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
        if old and not old.endswith("\n"):
            old += "\n"
    write_text(path, old + line.rstrip("\n") + "\n")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)
