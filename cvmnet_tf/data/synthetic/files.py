"""How the synthetic writers write files: image encoding and atomic writes (through
:mod:`cvmnet_tf.utils.atomic_io`, without fsync: the files are regenerable, the rename
alone rules out half-written files), the argument checks they share, and the one rule
about where they write (:func:`claim_output_dir`): only into a missing or empty folder, or
one the generator itself wrote (marked by :data:`MARKER_FILE` before its first file, or
by the ``synthetic_meta.json`` record of earlier versions), never over a user's data."""
from __future__ import annotations

import io
import json
import os

import numpy as np
from PIL import Image

from cvmnet_tf.utils import atomic_io

__all__ = ["encode_image", "save_bytes", "save_image", "save_text", "save_json", "check_size", "check_count",
           "MARKER_FILE", "is_generated_folder", "check_output_dir", "claim_output_dir"]

#: Written into an output folder before anything else: the folder is the generator's own.
MARKER_FILE = ".cvmnet_synthetic"


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


def is_generated_folder(out_dir: str) -> bool:
    """Whether ``out_dir`` holds the generator's mark: :data:`MARKER_FILE`, or (folders
    written before the marker existed) a ``synthetic_meta.json`` with the generator's
    "layout", "seed" and "config" record."""
    if os.path.isfile(os.path.join(out_dir, MARKER_FILE)):
        return True
    try:
        with open(os.path.join(out_dir, "synthetic_meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        return isinstance(meta, dict) and {"layout", "seed", "config"} <= set(meta)
    except (OSError, ValueError):
        return False


def check_output_dir(out_dir: str, what: str = "out_dir") -> None:
    """Raise FileExistsError naming ``what`` (a flag or argument) and ``out_dir`` unless the
    generator may write there: a missing or empty folder, or one it wrote itself."""
    from cvmnet_tf.utils.text import first_items

    if not str(out_dir).strip():
        raise FileExistsError(f"{what} is empty: name the folder to write the synthetic dataset to")
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise FileExistsError(f"{what}={out_dir!r} exists and is not a folder")
    names = sorted(os.listdir(out_dir))
    if names and not is_generated_folder(out_dir):
        raise FileExistsError(
            f"{what}={out_dir!r} holds files the synthetic generator did not write ({first_items(names, 3, ', ')}); "
            "it writes only into an empty folder or one it generated: choose another folder (to train on "
            "this data, leave out --synthetic)")


def claim_output_dir(out_dir: str, what: str = "out_dir") -> None:
    """:func:`check_output_dir`, then create the folder and its :data:`MARKER_FILE` (before
    any other file, so an interrupted generation is still recognised as the generator's)."""
    check_output_dir(out_dir, what)
    marker = os.path.join(out_dir, MARKER_FILE)
    if not os.path.isfile(marker):
        save_bytes(marker, b"written by cvmnet_tf.data.synthetic; files here may be regenerated\n")
