"""Kill -9 at the worst moments, then resume: nothing lost, nothing twice, nothing partial used.

The training command runs as its own process (forked by tests/cli_runner.py) and is SIGKILLed
where the test hook of :mod:`cvmnet_tf.utils.test_hooks` pauses it: in the middle of an epoch,
while a checkpoint folder is being written, while the result files are being written. Each
time the next ``--resume`` must continue from the last COMPLETE checkpoint, remove what the
killed process left behind, and the finished run must equal the uninterrupted one of the
``tiny_world`` fixture record for record.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import TINY_TRAIN_FLAGS
from cvmnet_tf.inference.checkpoints import list_checkpoints, result_paths
from cvmnet_tf.utils import atomic_io
from cvmnet_tf.utils.test_hooks import PAUSE_AT, PAUSE_FILE

MODEL = "cvm_net_i"
TIMING = ("train_seconds", "pairs_per_second", "eval_seconds")


def _records(run_dir):
    with open(result_paths(str(run_dir), MODEL)["metrics"]) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in f]


def _recall_epochs(run_dir):
    with open(result_paths(str(run_dir), MODEL)["accuracy"]) as f:
        return [int(line.split()[0]) for line in f]


def _temporaries(run_dir):
    return sorted(os.path.relpath(os.path.join(folder, name), run_dir)
                  for folder, dirs, files in os.walk(run_dir) for name in dirs + files
                  if atomic_io.TEMPORARY_NAME.match(name))


def test_sigkill_mid_epoch_during_checkpoint_and_result_writes_then_resume(tiny_world, cli_runner, tmp_path):
    assert tiny_world.returncode == 0, tiny_world.stderr[-3000:]
    run = tmp_path / "run"
    flags = [*TINY_TRAIN_FLAGS, "--epochs=3", f"--data_dir={tiny_world.data}", f"--output_dir={run}"]
    pause = tmp_path / "paused"

    def killed_at(point, *extra):
        if pause.exists():
            pause.unlink()
        r = cli_runner.run("train_cvusa", flags + list(extra), env={PAUSE_AT: point, PAUSE_FILE: str(pause)},
                           kill_when=pause)
        assert r["killed"] and r["rc"] == -9, (point, r["rc"], r["stderr"][-3000:])
        return r

    # 1. SIGKILL in the middle of epoch 2 (after its first step, global step 3).
    killed_at("train_step@3")
    assert list_checkpoints(str(run), MODEL) == [0, 1]
    assert _recall_epochs(run) == [1] and _temporaries(run) == []

    # 2. Resume; SIGKILL while the folder of checkpoint 2 is written (its files are all there, not renamed).
    r = killed_at("checkpoint_write@1", "--resume")
    assert f"Resumed from {run / 'Model' / MODEL / '1'} (epoch 1, step 2)" in r["stdout"]
    partial = _temporaries(run)
    assert len(partial) == 1 and partial[0].startswith(os.path.join("Model", MODEL, "2.tmp-")), partial
    assert os.path.exists(run / partial[0] / "state.json")      # a complete-looking folder under its temp name
    assert list_checkpoints(str(run), MODEL) == [0, 1] and _recall_epochs(run) == [1]

    # 3. Resume: the partial checkpoint is not used (epoch 1 again) and is removed; SIGKILL while the
    #    result files of epoch 2 are written (checkpoint 2 complete).
    r = killed_at("result_write@2", "--resume")
    assert f"Resumed from {run / 'Model' / MODEL / '1'} (epoch 1, step 2)" in r["stdout"]
    assert "Removed 1 leftover(s) of an interrupted run" in r["stdout"] and partial[0] in r["stdout"]
    assert list_checkpoints(str(run), MODEL) == [0, 1, 2]
    assert _recall_epochs(run) == [1]                            # the old file, whole
    stale = _temporaries(run)
    assert sorted(os.path.basename(p).split(".tmp-")[0] for p in stale) == [
        f"{MODEL}_accuracy.txt", f"{MODEL}_metrics.jsonl"], stale

    # 4. Resume to the end: from checkpoint 2, leftovers gone, every epoch once, the uninterrupted history.
    r = cli_runner.run("train_cvusa", flags + ["--resume"])
    assert r["rc"] == 0, r["stderr"][-3000:]
    assert f"Resumed from {run / 'Model' / MODEL / '2'} (epoch 2, step 4)" in r["stdout"]
    assert "Removed 2 leftover(s)" in r["stdout"] and _temporaries(run) == []
    assert _recall_epochs(run) == [1, 2, 3]
    assert list_checkpoints(str(run), MODEL) == [0, 1, 2, 3]
    assert _records(run) == _records(tiny_world.reference)
    with open(result_paths(str(run), MODEL)["accuracy"]) as a, \
            open(result_paths(str(tiny_world.reference), MODEL)["accuracy"]) as b:
        assert a.read() == b.read()


def test_stale_temporaries_of_dead_processes_only(tmp_path):
    """A dead writer's temporaries go; this process's, a live process's and unrelated names stay;
    a live process that started after the temporary was last written reused the id: it goes."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(1.5)   # the live process must have started > 1 s after the "old" file below
        names = {f"a.txt.tmp-{dead.pid}": "file", f"7.tmp-{dead.pid}": "dir", f"6.old-{dead.pid}": "dir",
                 f"model.keras.tmp-{dead.pid}.keras": "file", f"b.txt.tmp-{os.getpid()}": "file",
                 f"c.txt.tmp-{live.pid}": "file", f"reused.txt.tmp-{live.pid}": "old file",
                 "notes.tmp-draft": "file", "keep.txt": "file"}
        for name, kind in names.items():
            path = tmp_path / name
            if kind == "dir":
                path.mkdir()
                (path / "model.keras").write_text("x")
            else:
                path.write_text("x")
        old = time.time() - 3600
        os.utime(tmp_path / f"reused.txt.tmp-{live.pid}", (old, old))
        removed = atomic_io.remove_stale_temporaries(str(tmp_path))
        assert sorted(os.path.basename(p) for p in removed) == sorted(
            [f"a.txt.tmp-{dead.pid}", f"7.tmp-{dead.pid}", f"6.old-{dead.pid}", f"model.keras.tmp-{dead.pid}.keras",
             f"reused.txt.tmp-{live.pid}"])
        assert sorted(os.listdir(tmp_path)) == sorted(
            [f"b.txt.tmp-{os.getpid()}", f"c.txt.tmp-{live.pid}", "notes.tmp-draft", "keep.txt"])
        assert atomic_io.remove_stale_temporaries(str(tmp_path / "missing")) == []
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("point", ["train_step", "checkpoint_write", "result_write"])
def test_pause_points_are_named_in_the_hook(point):
    """The points the kill test uses exist in the library (a renamed point would never pause)."""
    from cvmnet_tf.utils import test_hooks

    assert point in test_hooks.POINTS
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sources = "".join(open(os.path.join(folder, name)).read()
                      for folder, _, files in os.walk(os.path.join(root, "cvmnet_tf")) for name in files
                      if name.endswith(".py") and name != "test_hooks.py")
    assert f'pause_point("{point}")' in sources
