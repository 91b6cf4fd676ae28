"""Reading the text list files of the dataset layouts (split csv files, Caffe ImageData
lists, plain pair lists): one loop for all of them."""
from __future__ import annotations

from typing import Iterator, Tuple

__all__ = ["iter_list_lines"]


def iter_list_lines(path: str, comments: bool = False) -> Iterator[Tuple[int, str]]:
    """Yield ``(line number (1-based), stripped line)`` for every non-empty line of the text
    file ``path`` (UTF-8); with ``comments=True`` lines starting with '#' are skipped too."""
    with open(path, "r", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line or (comments and line.startswith("#")):
                continue
            yield line_no, line
