"""Vo & Hays (ECCV 2016) loader for the gt-crossview distribution, and plain pair lists.

gt-crossview (github lugiavn/gt-crossview) is read by Caffe ImageData layers from list
files in its ``data/`` folder, paths relative to that folder::

    <data_dir>/train.streetview.txt   "<relative street-view crop path> <label>" per line
    <data_dir>/train.overhead.txt     "<relative overhead image path> <label>" per line

Line i of one list is paired with line i of the other. Its Caffe net uses lines 1..10000
of these training lists as its validation ("TEST" phase) and lines 10001.. for training
(``val_lines`` / ``holdout`` here). The README reports test sets for Denver, Detroit and
Seattle; their list file names are NOT in the repository (the data lives on mediafire),
so for ``split="test"`` this loader tries, in ``data_dir``: ``test_<city>.streetview.txt``,
``<city>_test.streetview.txt``, ``test.<city>.streetview.txt``, ``<city>.streetview.txt``
(each with the matching ``.overhead.txt``), else raises naming them: pass
``streetview_list=`` / ``overhead_list=`` explicitly, or use a pair list.

Plain pair list (any other arrangement, ``load_pair_list_split``): one
"<ground path> <satellite path>" per line (whitespace- or comma-separated, relative to
``data_dir`` or absolute, '#' comments allowed).
"""
from __future__ import annotations

import os

from .list_files import iter_list_lines
from .splits import PairSplit, drop_missing, require_dir, require_file

TEST_LIST_PATTERNS = ("test_{city}.{kind}.txt", "{city}_test.{kind}.txt",
                      "test.{city}.{kind}.txt", "{city}.{kind}.txt")


def _read_list(path: str) -> list:
    """Caffe ImageData list: '<path> <int label>' -> [(line_no, path)]."""
    out = []
    for line_no, line in iter_list_lines(path):
        parts = line.rsplit(None, 1)
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            line = parts[0]
        out.append((line_no, line))
    return out


def _resolve(data_dir: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(data_dir, path)


def load_vohays_split(data_dir: str, split: str, *, test_city: str = "denver",
                      streetview_list: str | None = None, overhead_list: str | None = None,
                      val_lines: int = 10000, holdout: bool = False,
                      check_files: bool = True) -> PairSplit:
    """Pairs of the gt-crossview distribution.

    split: "train" (``train.streetview.txt`` / ``train.overhead.txt``; all lines, or lines
      after the first ``val_lines`` when ``holdout=True``), "val" (the first ``val_lines``
      lines of the training lists, as the gt-crossview Caffe net), "test" (the
      ``test_city`` lists, see module docstring; the paper tests on Denver).
    streetview_list, overhead_list: explicit list files (relative to ``data_dir`` or
      absolute), overriding the names above.
    Returns a PairSplit with ``dataset="vohays"`` (square ground crops); missing image files
    are dropped and reported.
    """
    require_dir(data_dir, "Vo & Hays data folder")
    if split not in ("train", "val", "test"):
        raise ValueError(f"Vo & Hays split must be 'train', 'val' or 'test', got {split!r}")
    if (streetview_list is None) != (overhead_list is None):
        raise ValueError("pass both streetview_list and overhead_list, or neither")
    if streetview_list is None:
        if split in ("train", "val"):
            streetview_list, overhead_list = "train.streetview.txt", "train.overhead.txt"
        else:
            tried = []
            for pattern in TEST_LIST_PATTERNS:
                sv = pattern.format(city=test_city, kind="streetview")
                ov = pattern.format(city=test_city, kind="overhead")
                tried.append(os.path.join(data_dir, sv))
                if os.path.isfile(os.path.join(data_dir, sv)) and \
                        os.path.isfile(os.path.join(data_dir, ov)):
                    streetview_list, overhead_list = sv, ov
                    break
            if streetview_list is None:
                raise FileNotFoundError(
                    f"Vo & Hays test lists for city {test_city!r} not found; tried {tried} "
                    "(and the matching .overhead.txt). Pass streetview_list=/overhead_list= or "
                    "use load_pair_list_split.")
    sv_path = require_file(_resolve(data_dir, streetview_list), "Vo & Hays street-view list")
    ov_path = require_file(_resolve(data_dir, overhead_list), "Vo & Hays overhead list")
    grd, sat = _read_list(sv_path), _read_list(ov_path)
    if len(grd) != len(sat):
        raise ValueError(f"Vo & Hays lists differ in length: {sv_path} has {len(grd)} entries, "
                         f"{ov_path} has {len(sat)}; line i of one must pair with line i of "
                         "the other")
    lines = list(range(len(grd)))
    if split == "val":
        lines = lines[:val_lines]
    elif split == "train" and holdout:
        lines = lines[val_lines:]
    pairs = [(k, _resolve(data_dir, sat[k][1]), _resolve(data_dir, grd[k][1])) for k in lines]
    name = f"vohays/{split}" + (f"/{test_city}" if split == "test" else "")
    kept, dropped = drop_missing(pairs, check_files, name)
    return PairSplit(name=name, satellite_paths=[p[1] for p in kept],
                     ground_paths=[p[2] for p in kept], utm=None, dataset="vohays",
                     ids=None, dropped=dropped, source=f"{sv_path} + {ov_path}")


def load_pair_list_split(data_dir: str, pair_list: str, *, dataset: str = "vohays",
                         check_files: bool = True) -> PairSplit:
    """Pairs from a plain list: "<ground path> <satellite path>" per line.

    Separators: whitespace or a comma; lines starting with '#' are comments. Relative paths
    are joined to ``data_dir``. ``dataset`` chooses the ground preprocessing ("vohays" for
    square crops, "cvusa" / "cvact" for panoramas). Raises ValueError naming file and line
    for a malformed line.
    """
    require_dir(data_dir, "pair list data folder")
    list_path = require_file(_resolve(data_dir, pair_list), "pair list file")
    pairs = []
    for line_no, line in iter_list_lines(list_path, comments=True):
        fields = [x for x in line.replace(",", " ").split() if x]
        if len(fields) != 2:
            raise ValueError(f"{list_path}:{line_no}: expected '<ground path> <satellite "
                             f"path>', got {line!r}")
        pairs.append((len(pairs), _resolve(data_dir, fields[1]), _resolve(data_dir, fields[0])))
    name = f"pairs/{os.path.basename(list_path)}"
    kept, dropped = drop_missing(pairs, check_files, name)
    return PairSplit(name=name, satellite_paths=[p[1] for p in kept],
                     ground_paths=[p[2] for p in kept], utm=None, dataset=dataset,
                     ids=None, dropped=dropped, source=list_path)
