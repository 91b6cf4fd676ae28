"""Shared pytest set-up: import the package from the checkout, quiet TensorFlow logs."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


import pytest  # noqa: E402


@pytest.fixture
def mixed_policy():
    """Run a test under Keras' mixed_float16 policy, restoring the previous one after."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# ------------------------------------------------------------------ shared by the CLI-level suites
#: The tiniest training the commands accept (about 1 s a step here): CVM-Net-I at 1/16 width.
TINY_TRAIN_FLAGS = ("--preset=cpu_demo", "--image_size=32x32,16x64", "--width=0.0625", "--batch_size=8",
                    "--max_steps_per_epoch=2", "--synthetic_train_pairs=200", "--synthetic_val_pairs=16")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """ONE real ``python train_cvusa.py --synthetic ...`` run, as a user starts it (its own
    process, TensorFlow's banners not silenced by the test environment): it writes the
    synthetic data (216 pairs: the writer's two worker processes run) and trains 3 epochs
    of 2 steps. Returns root, data, reference (the run folder), stdout, stderr, returncode.
    Read-only for the tests (copy before changing)."""
    import subprocess
    import types

    root = tmp_path_factory.mktemp("tiny_world")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    cmd = [sys.executable, os.path.join(repo, "train_cvusa.py"), *TINY_TRAIN_FLAGS, "--synthetic", "--epochs=3",
           f"--data_dir={root / 'data'}", f"--output_dir={root / 'reference'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=str(root), env=env)
    return types.SimpleNamespace(root=root, data=root / "data", reference=root / "reference", stdout=proc.stdout,
                                 stderr=proc.stderr, returncode=proc.returncode)


@pytest.fixture(scope="session")
def cli_runner():
    """A helper process that runs commands in forked children (tests/cli_runner.py)."""
    from cli_runner import CliRunner

    runner = CliRunner()
    yield runner
    runner.close()
