"""What every command shares: flag spellings, one size syntax, one error style, one ``run``.

Conventions (also in the README, "Command-line conventions"):

- Flags are absl flags spelled ``lower_snake_case``; booleans also as ``--no<flag>``.
- Sizes in pixels, height first: ``HxW`` for one image (``--satellite_size 512x512``),
  ``HxW,HxW`` for satellite and ground (``--image_size 512x512,224x1232``).
- ``--model``: always an architecture name (:data:`cvmnet_tf.models.MODEL_NAMES`).
  ``--checkpoint``: always a trained model of this package: a checkpoint folder
  ``<output_dir>/Model/<model>/<epoch>``, a ``.keras`` file, and, where a command reads
  raw images (extract, localize), a SavedModel folder from ``cvmnet-export``.
  ``--tf1_checkpoint``: a released TF1 checkpoint (``model.ckpt`` prefix).
- Inputs: ``--data_dir`` (a dataset root in its distributed layout), ``--map_dir``.
  Outputs: ``--output`` is a command's one output (a file, a file prefix or a SavedModel
  folder), ``--output_dir`` a folder of several; optional extra outputs are named after
  what they are (``--top_k_plot``, ``--comparison_md``).
- Errors: ONE line on stderr, ``error: <message>``, naming the flag and the file. Exit
  status 2 for a usage error (a missing, unknown or bad flag value, a contradiction
  between flags: found before any work starts; no help text is printed), 1 for a failure
  while working (unreadable data, a model that does not fit), 0 on success.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

__all__ = ["UsageError", "run", "parse_size", "parse_size_pair", "parse_numbers", "one_line", "EXIT_USAGE",
           "EXIT_FAILURE"]

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UsageError(Exception):
    """The command line is wrong; the message names the flag (exit status 2)."""

    def __init__(self, message: str, flag: Optional[str] = None, value=None):
        if flag is not None:
            message = f"--{flag}={value!r}: {message}" if value is not None else f"--{flag}: {message}"
        super().__init__(message)


def one_line(message) -> str:
    """``message`` on one line (inner line breaks become spaces)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _exit(message, status: int):
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(status)


def _failures() -> tuple:
    from cvmnet_tf.inference.checkpoints import CheckpointError

    failures = (ValueError, OSError, KeyError, IndexError, RuntimeError, FloatingPointError, CheckpointError)
    if "tensorflow" in sys.modules:  # only when the command already imported it (no import, no banners)
        failures += (sys.modules["tensorflow"].errors.OpError,)
    return failures


def run(main: Callable[[], Optional[int]], argv: Optional[Sequence[str]] = None, usage: Optional[str] = None) -> None:
    """Parse the absl flags, run ``main()`` and exit with the package's error style.

    ``main`` takes no argument (it reads ``absl.flags.FLAGS``) and returns None or an exit
    status. A :class:`UsageError` (or an absl flag error, or a positional argument) exits
    with status 2 and a one-line message, an expected failure (ValueError, OSError,
    checkpoint and TensorFlow errors, ...) with status 1; nothing else is printed.
    ``usage``: the text ``--help`` prints (the command module's docstring).
    """
    from absl import app, flags

    if usage and "__main__" in sys.modules:
        sys.modules["__main__"].__doc__ = usage

    def parse(args):
        try:
            return flags.FLAGS(args)
        except flags.Error as exc:
            _exit(exc, EXIT_USAGE)

    def wrapped(args):
        from absl import logging

        if not flags.FLAGS["verbosity"].present:  # library INFO lines (TensorFlow's included) off
            logging.set_verbosity(logging.WARNING)
        if len(args) > 1:
            _exit(f"unexpected arguments: {' '.join(args[1:])} (every option is a --flag)", EXIT_USAGE)
        try:
            return main() or 0
        except UsageError as exc:
            _exit(exc, EXIT_USAGE)
        except _failures() as exc:
            _exit(exc, EXIT_FAILURE)

    app.run(wrapped, argv=None if argv is None else list(argv), flags_parser=parse)


def parse_size(value: str, flag: str) -> tuple:
    """``"HxW"`` -> (H, W) pixels (both > 0); UsageError naming ``flag`` otherwise."""
    from cvmnet_tf.data.registry import parse_size as parse

    try:
        return parse(value, f"--{flag}")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_size_pair(value: str, flag: str, dataset: str = "cvusa") -> tuple:
    """A size name of ``dataset`` or ``"HxW,HxW"`` -> ((Hs, Ws), (Hg, Wg)) (satellite,
    ground); UsageError naming ``flag`` otherwise."""
    from cvmnet_tf.data.registry import image_sizes

    try:
        return image_sizes(value, dataset, f"--{flag}")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_numbers(values: Sequence[str], flag: str, kind=float, minimum=None) -> list:
    """A comma-separated flag as numbers of ``kind`` (each >= ``minimum`` when given)."""
    try:
        out = [kind(v) for v in values]
    except (TypeError, ValueError):
        raise UsageError(f"expected {'integers' if kind is int else 'numbers'}", flag, ",".join(values)) from None
    if not out or (minimum is not None and min(out) < minimum):
        raise UsageError(f"expected one or more values >= {minimum}", flag, ",".join(values))
    return out
