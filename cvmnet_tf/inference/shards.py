"""Descriptor extraction in shards, and the merge that joins them (``cvmnet-extract
--num_shards/--shard_index``, then ``cvmnet-extract --merge``).

A split of N pairs (after ``--max_pairs``) is cut into ``num_shards`` shards
(:func:`shard_rows`); the distractor images (``--distractor_dir``, sorted file names) are
cut the same way:

- ``contiguous``: shard i holds rows ``[i N // k, (i + 1) N // k)`` (each shard reads one
  run of files: the layout for several machines, each with a slice of the disk);
- ``strided``: shard i holds rows ``i, i + k, i + 2k, ...`` (equal work when the files
  differ in size along the list).

Shard i of k with ``--output PREFIX`` writes the files of
:func:`cvmnet_tf.inference.descriptors.write_descriptors` under
``PREFIX.shard-0000i-of-0000k`` (``_index.npy`` holds positions in the WHOLE split), plus
``..._distractor_index.npy`` (positions of its distractors in the whole list) and, last,
the manifest ``PREFIX.shard-0000i-of-0000k.json``: its rows (``first``/``stop`` of a
contiguous shard, ``first``/``step`` of a strided one), ``total_rows``, ``num_rows``, the
model (checkpoint path, fingerprint, precision), the split (dataset, data_dir, split,
max_pairs, loader options, ground crop) and the skipped count. A shard without its
manifest is incomplete.

:func:`merge_shards` reads every manifest of ``PREFIX``, checks that they form one
complete set (all k shards, same model, split, precision and mode, no row in two shards)
and returns the single-run result, rows in split order, which ``write_descriptors`` then
writes under ``PREFIX``: the same files a single run writes (bit for bit when the shards
computed the same float32 values; see the README).
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Optional

import numpy as np

from cvmnet_tf.utils import atomic_io

__all__ = ["SHARD_MODES", "shard_rows", "check_shard_arguments", "shard_prefix", "shard_record", "write_shard",
           "merge_shards"]

SHARD_MODES = ("contiguous", "strided")
_SHARD_NAME = re.compile(r"\.shard-(\d{5})-of-(\d{5})\.json$")
#: Manifest keys every shard of one set must agree on.
_SAME = ("num_shards", "mode", "total_rows", "total_distractors", "checkpoint", "model_fingerprint", "precision",
         "dataset", "data_dir", "split", "max_pairs", "loader_options", "ground_crop")


def check_shard_arguments(shard_index: int, num_shards: int, mode: str = "contiguous") -> None:
    """ValueError naming the flag for a shard index outside 0 .. num_shards - 1, fewer than
    one shard or an unknown mode."""
    if isinstance(num_shards, bool) or not isinstance(num_shards, (int, np.integer)) or num_shards < 1:
        raise ValueError(f"--num_shards={num_shards!r}: must be an integer >= 1")
    if isinstance(shard_index, bool) or not isinstance(shard_index, (int, np.integer)) or \
            not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard_index={shard_index!r}: must be in 0 .. {num_shards - 1} (--num_shards={num_shards})")
    if mode not in SHARD_MODES:
        raise ValueError(f"--shard_mode={mode!r} is unknown; choose one of {', '.join(SHARD_MODES)}")


def shard_rows(total: int, shard_index: int, num_shards: int, mode: str = "contiguous") -> np.ndarray:
    """int64 positions (ascending) of shard ``shard_index`` of ``num_shards`` among ``total``
    rows (module docstring); the shards of one ``num_shards`` partition ``range(total)``."""
    check_shard_arguments(shard_index, num_shards, mode)
    if mode == "strided":
        return np.arange(shard_index, total, num_shards, dtype=np.int64)
    return np.arange(shard_index * total // num_shards, (shard_index + 1) * total // num_shards, dtype=np.int64)


def shard_prefix(prefix: str, shard_index: int, num_shards: int) -> str:
    """``PREFIX.shard-0000i-of-0000k``: the file prefix of one shard."""
    return f"{prefix}.shard-{int(shard_index):05d}-of-{int(num_shards):05d}"


def _rows_description(total, shard_index, num_shards, mode):
    rows = shard_rows(total, shard_index, num_shards, mode)
    if mode == "strided":
        return {"first": int(shard_index), "step": int(num_shards), "num_rows": int(len(rows))}
    return {"first": int(rows[0]) if len(rows) else int(shard_index * total // num_shards),
            "stop": int(rows[-1]) + 1 if len(rows) else int(shard_index * total // num_shards),
            "num_rows": int(len(rows))}


def shard_record(shard_index, num_shards, mode, total_rows, total_distractors, *, checkpoint, dataset, data_dir,
                 split, max_pairs, info, loader_options, ground_crop) -> dict:
    """The manifest of one shard (module docstring), JSON-able."""
    return {"shard_index": int(shard_index), "num_shards": int(num_shards), "mode": mode,
            "total_rows": int(total_rows), "total_distractors": int(total_distractors),
            "rows": _rows_description(total_rows, shard_index, num_shards, mode),
            "distractor_rows": _rows_description(total_distractors, shard_index, num_shards, mode),
            "checkpoint": os.path.abspath(checkpoint), "model_fingerprint": (info or {}).get("model_fingerprint"),
            "precision": (info or {}).get("precision"), "dataset": dataset, "data_dir": os.path.abspath(data_dir),
            "split": split, "max_pairs": int(max_pairs or 0),
            "loader_options": {k: v for k, v in sorted(loader_options.items())},
            "ground_crop": {k: v for k, v in sorted(ground_crop.items())}}


def write_shard(prefix: str, result: dict) -> dict:
    """Write one shard's files (module docstring) for ``result`` of
    :func:`cvmnet_tf.inference.descriptors.extract_descriptors` with ``num_shards`` > 1;
    the manifest last. Returns {kind: path}."""
    from cvmnet_tf.inference.descriptors import write_descriptors

    record = dict(result["shard"], num_rows_written=int(len(result["index"])), skipped=len(result["skipped"]),
                  has_utm=result.get("utm") is not None)
    base = shard_prefix(prefix, record["shard_index"], record["num_shards"])
    paths = write_descriptors(base, result)
    if result.get("distractors") is not None:
        paths["distractor_index"] = f"{base}_distractor_index.npy"
        with atomic_io.atomic_path(paths["distractor_index"]) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(result["distractor_index"], np.int64))
    paths["manifest"] = base + ".json"
    atomic_io.write_json(paths["manifest"], record)
    return paths


def _read_manifests(prefix: str) -> list:
    found = sorted(glob.glob(glob.escape(prefix) + ".shard-*-of-*.json"))
    found = [p for p in found if _SHARD_NAME.search(p)]
    if not found:
        raise ValueError(f"--merge: no shard manifests {prefix}.shard-NNNNN-of-NNNNN.json (run cvmnet-extract with "
                         "--num_shards/--shard_index and the same --output first)")
    records = []
    for path in found:
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--merge: {path} is not a readable shard manifest ({exc})") from None
        if not isinstance(record, dict) or "shard_index" not in record:
            raise ValueError(f"--merge: {path} is not a shard manifest of cvmnet-extract")
        index, count = (int(v) for v in _SHARD_NAME.search(path).groups())
        if (record["shard_index"], record["num_shards"]) != (index, count):
            raise ValueError(f"--merge: {path} names shard {index} of {count} but records shard "
                             f"{record['shard_index']} of {record['num_shards']} (renamed?)")
        records.append((path, record))
    return records


def _check_set(prefix: str, records: list) -> None:
    counts = sorted({r["num_shards"] for _, r in records})
    if len(counts) > 1:
        raise ValueError(f"--merge: the shards of {prefix} come from runs with different --num_shards {counts}; "
                         "keep one set")
    k = counts[0]
    have = {r["shard_index"] for _, r in records}
    missing = [i for i in range(k) if i not in have]
    if missing:
        raise ValueError(f"--merge: shard(s) {', '.join(map(str, missing))} of {k} missing: "
                         f"{shard_prefix(prefix, missing[0], k)}.json (run cvmnet-extract --shard_index="
                         f"{missing[0]} --num_shards={k})")
    first_path, first = records[0]
    for path, record in records[1:]:
        for key in _SAME:
            if record.get(key) != first.get(key):
                raise ValueError(f"--merge: {path} and {first_path} differ in {key} ({record.get(key)!r} vs "
                                 f"{first.get(key)!r}): not shards of one extraction")


def _load_shard(prefix: str, record: dict) -> dict:
    from cvmnet_tf.inference.descriptors import output_paths, read_npy

    base = shard_prefix(prefix, record["shard_index"], record["num_shards"])
    with_distractors = os.path.isfile(f"{base}_distractor_index.npy")
    paths = output_paths(base, with_distractors)
    out = {key: read_npy(paths[key], f"--merge: shard {record['shard_index']}") for key in ("satellite", "ground",
                                                                                          "index")}
    rows = shard_rows(record["total_rows"], record["shard_index"], record["num_shards"], record["mode"])
    if out["index"].shape != (out["satellite"].shape[0],) or not np.isin(out["index"], rows).all():
        raise ValueError(f"--merge: {paths['index']} holds rows outside shard {record['shard_index']}'s rows "
                         f"({record['rows']})")
    out["utm"] = None
    if record.get("has_utm"):
        import scipy.io
        out["utm"] = scipy.io.loadmat(paths["mat"])["utm"]
    if with_distractors:
        out["distractors"] = read_npy(paths["distractors"], f"--merge: shard {record['shard_index']}")
        out["distractor_index"] = read_npy(f"{base}_distractor_index.npy", f"--merge: shard {record['shard_index']}")
        with open(paths["distractor_paths"], encoding="utf-8") as f:
            out["distractor_paths"] = f.read().splitlines()
    return out


def merge_shards(prefix: str, checked_only: bool = False) -> Optional[dict]:
    """The single-run result (for ``write_descriptors(prefix, ...)``) joined from every shard
    of ``prefix``; ValueError (one line, naming the file) for a missing shard, shards of
    different models / splits / precisions / modes, or a row in two shards."""
    records = sorted(_read_manifests(prefix), key=lambda pr: pr[1]["shard_index"])
    _check_set(prefix, records)
    if checked_only:
        return None
    shards = [_load_shard(prefix, r) for _, r in records]
    index = np.concatenate([s["index"] for s in shards])
    order = np.argsort(index, kind="stable")
    index = index[order]
    dup = np.flatnonzero(np.diff(index) == 0)
    if dup.size:
        row = int(index[dup[0]])
        owners = [r["shard_index"] for (_, r), s in zip(records, shards) if row in set(s["index"].tolist())]
        raise ValueError(f"--merge: split row {row} is in shards {owners} of {prefix}: the shards overlap")
    merged = {"satellite": np.concatenate([s["satellite"] for s in shards])[order],
              "ground": np.concatenate([s["ground"] for s in shards])[order], "index": index,
              "utm": None if shards[0]["utm"] is None else np.concatenate([s["utm"] for s in shards])[order],
              "distractors": None, "distractor_paths": [],
              "skipped": [(-1, f"{r['skipped']} item(s) skipped in shard {r['shard_index']}")
                          for _, r in records if r.get("skipped")],
              "info": {k: records[0][1].get(k) for k in ("checkpoint", "model_fingerprint", "precision")}}
    if any("distractors" in s for s in shards):
        d_index = np.concatenate([s["distractor_index"] for s in shards if "distractors" in s])
        d_order = np.argsort(d_index, kind="stable")
        merged["distractors"] = np.concatenate([s["distractors"] for s in shards if "distractors" in s])[d_order]
        # every listed path of every shard (as a single run lists all of them), in list order
        rows = np.concatenate([shard_rows(r["total_distractors"], r["shard_index"], r["num_shards"], r["mode"])
                               for (_, r), s in zip(records, shards) if "distractors" in s])
        paths = [p for s in shards if "distractors" in s for p in s["distractor_paths"]]
        merged["distractor_paths"] = [paths[i] for i in np.argsort(rows, kind="stable")]
    return merged
