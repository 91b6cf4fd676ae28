"""Crash-safe file writes: write to a temporary name beside the target, then rename.

A reader (or a crashed writer) never sees a half-written file: ``os.replace`` is atomic
on POSIX file systems when source and target are in the same folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Dict, Iterator

__all__ = ["temporary_path", "atomic_path", "atomic_paths", "write_bytes", "write_text", "write_json"]


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
