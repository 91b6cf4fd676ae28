"""Run the package's commands as separate processes without paying TensorFlow's import each time.

Tests that run many commands (tests/test_bad_input.py, tests/test_fault_injection.py) start
ONE helper process (``python tests/cli_runner.py``) that imports TensorFlow, Keras and the
command modules once (about 6 s here) and then forks a child per command: each command is a
real process with its own exit status, stdout and stderr, that can be SIGKILLed, and it
starts in a fraction of a second. The helper never runs TensorFlow itself (no op, no device
list before forking), so every child starts from the same freshly imported state.

Protocol (one JSON object per line): the test writes ``{"command", "argv", "cwd", "env",
"kill_when", "timeout", "offline"}`` to the helper's stdin and reads ``{"rc", "stdout",
"stderr", "killed", "seconds"}`` back. ``command``: ``train_<dataset>`` or a module of cvmnet_tf.cli
(``evaluate``, ``export``, ``extract``, ``localize``, ``synthetic``, ``convert_tf1``);
``kill_when``: a file whose appearance makes the helper SIGKILL the child (the pause file of
:mod:`cvmnet_tf.utils.test_hooks`); ``offline``: Keras' downloads fail as without a network
(the error ``urllib`` raises offline) and its cache is empty.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _entry(command: str):
    import importlib

    if command.startswith("train_"):
        from cvmnet_tf.cli import train
        return lambda argv: train.main(command[len("train_"):], argv)
    return importlib.import_module(f"cvmnet_tf.cli.{command}").main


def _go_offline() -> None:
    """Make Keras' downloads fail as they do without a network (and its cache empty)."""
    import socket
    import urllib.error

    from keras.src.backend import config
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    file_utils.urlretrieve = no_network
    cache = tempfile.mkdtemp(prefix="keras_home_")
    config.keras_home = lambda: cache


def _child(request: dict, out_path: str, err_path: str) -> None:
    """In the forked child: redirect stdout/stderr, run the command, exit with its status."""
    code = 0
    try:
        for fd, path in ((1, out_path), (2, err_path)):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        os.chdir(request.get("cwd") or REPO)
        os.environ.update(request.get("env") or {})
        if request.get("offline"):
            _go_offline()
        argv = [request["command"]] + list(request["argv"])
        sys.argv = argv
        try:
            result = _entry(request["command"])(argv)
            code = int(result or 0)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report anything, never return into the helper's loop
        import traceback
        traceback.print_exc()
        code = 99
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve() -> None:
    sys.path.insert(0, REPO)
    from cvmnet_tf.utils.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    import cvmnet_tf.cli.evaluate  # noqa: F401 - imported once, before forking
    import cvmnet_tf.cli.export  # noqa: F401
    import cvmnet_tf.cli.extract  # noqa: F401
    import cvmnet_tf.cli.localize  # noqa: F401
    import cvmnet_tf.cli.synthetic  # noqa: F401
    import cvmnet_tf.cli.train  # noqa: F401
    import cvmnet_tf.inference.descriptors  # noqa: F401
    import cvmnet_tf.training.loop  # noqa: F401
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing else may write to the protocol channel
    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryDirectory() as tmp:
            out_path, err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            sys.stdout.flush()
            sys.stderr.flush()
            t0 = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                _child(request, out_path, err_path)
            killed, deadline = False, t0 + float(request.get("timeout", 300))
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                kill_when = request.get("kill_when")
                if (kill_when and os.path.exists(kill_when)) or time.perf_counter() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                    _, status = os.waitpid(pid, 0)
                    break
                time.sleep(0.01)
            reply = {"rc": os.waitstatus_to_exitcode(status), "killed": killed,
                     "seconds": round(time.perf_counter() - t0, 2)}
            for key, path in (("stdout", out_path), ("stderr", err_path)):
                with open(path, encoding="utf-8", errors="replace") as f:
                    reply[key] = f.read()
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


class CliRunner:
    """The test side: ``runner.run("train_cvusa", [...flags], cwd=..., env=..., kill_when=...)``."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=REPO)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError("tests/cli_runner.py did not start (see its stderr above)")

    def run(self, command: str, argv, cwd=None, env=None, kill_when=None, timeout: float = 300,
            offline: bool = False) -> dict:
        request = {"command": command, "argv": [str(a) for a in argv], "cwd": str(cwd) if cwd else None,
                   "env": env or {}, "kill_when": str(kill_when) if kill_when else None, "timeout": timeout,
                   "offline": offline}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("tests/cli_runner.py died")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


if __name__ == "__main__":
    _serve()
