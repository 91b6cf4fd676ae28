"""CVACT split loader (OriCNN release, Liu & Li CVPR 2019).

Layout::

    <data_dir>/ACT_data.mat                          (or <data_dir>/CVACT_orientations/ACT_data.mat)
    <data_dir>/streetview/<panoId>_grdView.jpg       ground panorama, 832 x 1664
    <data_dir>/satview_polish/<panoId>_satView_polish.jpg   satellite, 1200 x 1200

``ACT_data.mat`` (read with ``scipy.io.loadmat``) holds ``panoIds`` (N strings), ``utm``
(N x 2, metres), and the 1-based index vectors ``trainSet.trainInd`` (ACT_small train),
``valSet.valInd`` (ACT_small val, "CVACT_val") and ``valSetAll.valInd`` (ACT_test,
"CVACT_test", 92,802 pairs). For ``split="test"`` point ``data_dir`` at the folder that
holds the ACT_test images (``ANU_data_test`` in the release) and pass ``mat_path``.
"""
from __future__ import annotations

import os

import numpy as np

from .splits import PairSplit, drop_missing, require_dir, require_file

SPLIT_FIELDS = {"train": ("trainSet", "trainInd"), "val": ("valSet", "valInd"),
                "test": ("valSetAll", "valInd")}
MAT_CANDIDATES = ("ACT_data.mat", os.path.join("CVACT_orientations", "ACT_data.mat"))


def _unwrap(value):
    """Strip the (1, 1) object wrappers scipy puts around MATLAB struct fields / cells."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    return value


def _struct_field(mat: dict, struct: str, field: str, mat_path: str) -> np.ndarray:
    if struct not in mat:
        raise KeyError(f"{mat_path}: no variable {struct!r} (expected {struct}.{field})")
    s = _unwrap(mat[struct])
    try:
        value = s[field]
    except (KeyError, ValueError, IndexError, TypeError):
        raise KeyError(f"{mat_path}: {struct} has no field {field!r}") from None
    return np.asarray(_unwrap(value))


def _pano_ids(raw, mat_path: str) -> list:
    """panoIds as a char matrix (array of str) or a cell array -> list of str."""
    ids = []
    for item in np.asarray(raw).ravel():
        item = _unwrap(item)
        if isinstance(item, np.ndarray):
            item = item.item() if item.size == 1 else "".join(str(x) for x in item.ravel())
        ids.append(str(item).strip())
    if not ids:
        raise ValueError(f"{mat_path}: panoIds is empty")
    return ids


def load_cvact_split(data_dir: str, split: str, *, mat_path: str | None = None,
                     check_files: bool = True) -> PairSplit:
    """Pairs of CVACT ``split`` ("train", "val" = CVACT_val, "test" = CVACT_test).

    Returns a PairSplit with ``utm`` (N, 2) metres per pair and ``ids`` the pano ids, in the
    order of the .mat index vector (converted from 1-based). Missing image files are
    dropped and reported (``PairSplit.dropped``). Raises FileNotFoundError naming the folder
    or .mat, KeyError naming a missing .mat field, IndexError for an out-of-range index.
    """
    from scipy.io import loadmat

    require_dir(data_dir, "CVACT data folder")
    if split not in SPLIT_FIELDS:
        raise ValueError(f"CVACT split must be one of {sorted(SPLIT_FIELDS)}, got {split!r}")
    if mat_path is None:
        found = [os.path.join(data_dir, c) for c in MAT_CANDIDATES
                 if os.path.isfile(os.path.join(data_dir, c))]
        if not found:
            raise FileNotFoundError(
                f"CVACT ACT_data.mat not found: looked for "
                f"{[os.path.join(data_dir, c) for c in MAT_CANDIDATES]} (pass mat_path=)")
        mat_path = found[0]
    require_file(mat_path, "CVACT ACT_data.mat")
    mat = loadmat(mat_path)
    for key in ("panoIds", "utm"):
        if key not in mat:
            raise KeyError(f"{mat_path}: no variable {key!r}")
    ids = _pano_ids(mat["panoIds"], mat_path)
    utm = np.asarray(mat["utm"], dtype=np.float64)
    if utm.ndim != 2 or 2 not in utm.shape:
        raise ValueError(f"{mat_path}: utm must be N x 2, got shape {utm.shape}")
    if utm.shape[1] != 2:
        utm = utm.T
    if len(utm) != len(ids):
        raise ValueError(f"{mat_path}: {len(ids)} panoIds but {len(utm)} utm rows")
    struct, field = SPLIT_FIELDS[split]
    inds = _struct_field(mat, struct, field, mat_path).astype(np.int64).ravel() - 1
    if inds.size and (inds.min() < 0 or inds.max() >= len(ids)):
        raise IndexError(f"{mat_path}: {struct}.{field} holds indices outside 1..{len(ids)}")
    pairs = []
    for k, i in enumerate(inds):
        pid = ids[i]
        pairs.append((k, os.path.join(data_dir, "satview_polish", f"{pid}_satView_polish.jpg"),
                      os.path.join(data_dir, "streetview", f"{pid}_grdView.jpg"), (pid, int(i))))
    name = f"cvact/{split}"
    kept, dropped = drop_missing(pairs, check_files, name)
    rows = np.array([p[3][1] for p in kept], dtype=np.int64)
    return PairSplit(name=name, satellite_paths=[p[1] for p in kept],
                     ground_paths=[p[2] for p in kept],
                     utm=utm[rows] if len(rows) else np.zeros((0, 2)), dataset="cvact",
                     ids=[p[3][0] for p in kept], dropped=dropped,
                     source=f"{mat_path}:{struct}.{field}")
