"""CVUSA split loader (the CVM-Net subset: 35,532 train / 8,884 val pairs).

Layout (paths in the split files are relative to ``data_dir``)::

    <data_dir>/bingmap/19/<id>.jpg            satellite, 750x750
    <data_dir>/streetview/panos/<id>.jpg      ground panorama, 224 rows x 1232 columns
    <data_dir>/splits/train-19zl.csv          "bingmap/19/<id>.jpg,streetview/panos/<id>.jpg,<annotation>"
    <data_dir>/splits/val-19zl.csv

The id is taken from the satellite file name, as the released ``input_data.py`` does.
"""
from __future__ import annotations

import os

from .list_files import iter_list_lines
from .splits import PairSplit, drop_missing, require_dir, require_file

SPLIT_FILES = {"train": "train-19zl.csv", "val": "val-19zl.csv", "test": "val-19zl.csv"}


def load_cvusa_split(data_dir: str, split: str, *, check_files: bool = True,
                     split_file: str | None = None) -> PairSplit:
    """Read ``splits/train-19zl.csv`` (``split="train"``) or ``splits/val-19zl.csv``
    (``"val"``; ``"test"`` is an alias, CVM-Net's test set is CVUSA val).

    Pairs whose image file is missing are dropped, logged with their path and listed in
    ``PairSplit.dropped`` (``check_files=False`` skips that check). ``split_file``
    overrides the csv path. Raises FileNotFoundError naming the folder / csv when absent,
    ValueError naming file and line for a malformed line.
    """
    require_dir(data_dir, "CVUSA data folder")
    if split_file is None:
        if split not in SPLIT_FILES:
            raise ValueError(f"CVUSA split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
        split_file = os.path.join(data_dir, "splits", SPLIT_FILES[split])
    require_file(split_file, "CVUSA split file")
    pairs = []
    for line_no, line in iter_list_lines(split_file):
        fields = [x.strip() for x in line.split(",")]
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise ValueError(f"{split_file}:{line_no}: expected '<satellite>,<ground>[,...]', "
                             f"got {line!r}")
        sat = os.path.join(data_dir, fields[0])
        grd = os.path.join(data_dir, fields[1])
        pano_id = os.path.splitext(os.path.basename(fields[0]))[0]
        pairs.append((len(pairs), sat, grd, pano_id))
    name = f"cvusa/{split}"
    kept, dropped = drop_missing(pairs, check_files, name)
    return PairSplit(name=name, satellite_paths=[p[1] for p in kept],
                     ground_paths=[p[2] for p in kept], utm=None, dataset="cvusa",
                     ids=[p[3] for p in kept], dropped=dropped, source=split_file)
