"""How the synthetic writers write files: image encoding and atomic writes (through
:mod:`cvmnet_tf.utils.atomic_io`, without fsync: the files are regenerable, the rename
alone rules out half-written files), and the argument checks they share."""
from __future__ import annotations

import io
import json
import os

import numpy as np
from PIL import Image

from cvmnet_tf.utils import atomic_io

__all__ = ["encode_image", "save_bytes", "save_image", "save_text", "save_json", "check_size", "check_count"]


def encode_image(arr: np.ndarray, ext: str = ".jpg", quality: int = 90) -> bytes:
    """uint8 image -> PNG (``ext`` ".png") or JPEG bytes (``quality``)."""
    buf = io.BytesIO()
    if ext == ".png":
        Image.fromarray(arr).save(buf, "PNG")
    else:
        Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def save_bytes(path: str, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` (folders created)."""
    atomic_io.write_bytes(path, data, fsync=False)


def save_image(path: str, arr: np.ndarray, quality: int = 90) -> None:
    """Atomically write ``arr`` as PNG (path ending in .png) or JPEG."""
    save_bytes(path, encode_image(arr, ".png" if path.endswith(".png") else ".jpg", quality))


def save_text(path: str, lines) -> None:
    """Atomically write ``lines``, one per line."""
    save_bytes(path, "".join(line + "\n" for line in lines).encode())


def save_json(path: str, obj) -> None:
    """Atomically write ``obj`` as indented JSON (the writers' metadata files)."""
    save_bytes(path, json.dumps(obj, indent=1).encode())


def check_size(who, name, size, square=False, minimum=8):
    """``size`` as (H, W) ints >= ``minimum``; ValueError naming ``who`` and ``name``."""
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(v, (int, np.integer)) and v >= minimum for v in size)):
        raise ValueError(f"{who}: {name}={size!r} must be (H, W) ints >= {minimum}")
    if square and size[0] != size[1]:
        raise ValueError(f"{who}: {name}={size!r} must be square")
    return int(size[0]), int(size[1])


def check_count(who, name, v, minimum=0):
    """``v`` as an int >= ``minimum``; ValueError naming ``who`` and ``name``."""
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{who}: {name}={v!r} must be an int >= {minimum}")
    return int(v)


def makedirs_for(path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
