"""TensorFlow's start-up banners kept out of a command's output.

Importing TensorFlow 2.2x prints, before its own logging is set up (so
``TF_CPP_MIN_LOG_LEVEL`` does not silence them), lines a user need not see: absl's
"All log messages before absl::InitializeLog() ...", oneDNN's "custom operations are on",
"Could not find cuda drivers on your machine", the CPU-instruction notice (two lines), and
on a machine without an NVIDIA GPU "failed call to cuInit: ... UNKNOWN ERROR (303)" when
the device list is built. :func:`import_tensorflow_quietly` imports TensorFlow and Keras
and builds the device list with the process's stderr (file descriptor 2) sent to a
temporary file, then writes back every line except those (:func:`is_startup_noise`). The
commands that use TensorFlow call it first; anything else TensorFlow prints (a real
error, a warning) still reaches the user.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

__all__ = ["import_tensorflow_quietly", "is_startup_noise", "has_nvidia_device"]

_ALWAYS = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(r"^I\d{4} [\d:.]+ +\d+ \S+\] "),                      # absl C++ INFO lines (banners)
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler"),
    re.compile(r"Unable to register cu(DNN|FFT|BLAS) factory"),
    re.compile(r"TF-TRT Warning: Could not find TensorRT"),
    # oneDNN's notice when a uint8 op (the uint8 input pipeline) falls back to Eigen: same result
    re.compile(r"\] oneDNN supports DT_UINT8 only on platforms with AVX-512"),
)
_WITHOUT_GPU = (re.compile(r"^E\d{4} .*failed call to cuInit"),)


def has_nvidia_device() -> bool:
    """Whether this machine shows an NVIDIA driver (``/dev/nvidiactl`` or ``/proc/driver/nvidia``)."""
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia"))


def is_startup_noise(line: str, gpu_machine: bool = False) -> bool:
    """Whether ``line`` is one of TensorFlow's start-up banners (module docstring); the cuInit
    error counts only on a machine without an NVIDIA driver (``gpu_machine=False``)."""
    patterns = _ALWAYS if gpu_machine else _ALWAYS + _WITHOUT_GPU
    return any(p.search(line) for p in patterns)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras and list the devices without the start-up banners.

    No-op when TensorFlow is already imported. ``TF_CPP_MIN_LOG_LEVEL`` defaults to 1
    (TensorFlow's later INFO lines off, its warnings and errors kept) unless set.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    gpu_machine = has_nvidia_device()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            import keras  # noqa: F401 - its backend import prints the same banners again

            tf.config.list_physical_devices()  # where cuInit runs
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not is_startup_noise(line.rstrip("\n"), gpu_machine))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
