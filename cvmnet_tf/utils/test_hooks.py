"""A test hook: pause a process at a named point so that a test can kill it there.

Only the test suite sets it (``tests/test_fault_injection.py``); unset, :func:`pause_point`
is one dictionary lookup. With the environment variables

- ``CVMNET_TF_TEST_PAUSE_AT="<point>[@<n>]"``: the point, and which time it is reached
  (1-based, default the first);
- ``CVMNET_TF_TEST_PAUSE_FILE=<path>``: where to announce the pause,

the n-th call of ``pause_point(<point>)`` writes this process's id to the pause file
(atomically) and sleeps until the process is killed. Points:

- ``"train_step"``: after a training step (mid-epoch), before the next one;
- ``"checkpoint_write"``: a checkpoint's files are written under the temporary folder name,
  not yet renamed;
- ``"result_write"``: the recall file and the metrics log are written under temporary
  names, not yet renamed.
"""
from __future__ import annotations

import os
import time

__all__ = ["PAUSE_AT", "PAUSE_FILE", "POINTS", "pause_point"]

PAUSE_AT = "CVMNET_TF_TEST_PAUSE_AT"
PAUSE_FILE = "CVMNET_TF_TEST_PAUSE_FILE"
POINTS = ("train_step", "checkpoint_write", "result_write")

_counts: dict = {}


def pause_point(point: str) -> None:
    """Pause here forever when the test hook names this point (module docstring)."""
    wanted = os.environ.get(PAUSE_AT)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] != (int(nth) if nth else 1):
        return
    from cvmnet_tf.utils import atomic_io

    atomic_io.write_text(os.environ[PAUSE_FILE], f"{os.getpid()}\n")
    while True:  # until SIGKILL
        time.sleep(3600)
