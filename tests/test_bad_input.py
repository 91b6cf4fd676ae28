"""Bad input, as a new user gives it: ONE line naming the flag or file, the right exit status,
and nothing the user had changed (hashes of every file before and after each command).

Every command runs as its own process (forked by tests/cli_runner.py); the shared synthetic
data and trained run come from the ``tiny_world`` fixture (one real ``train_cvusa.py`` run).
Exit status 2: a usage error found before any work (then no file is created either);
1: a failure while working.
"""
import hashlib
import json
import os
import shutil
import types

import numpy as np
import pytest

from conftest import TINY_TRAIN_FLAGS

MODEL = "cvm_net_i"


def _preset_learning_rate():
    from cvmnet_tf.training import make_config

    return make_config("cpu_demo", dataset="cvusa").learning_rate


def _names(*roots):
    return {os.path.join(folder, name) for root in roots for folder, dirs, files in os.walk(root)
            for name in dirs + files}


def _hashes(*roots):
    out = {}
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    out[path] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def corpus(tiny_world, tmp_path_factory):
    import keras

    assert tiny_world.returncode == 0, tiny_world.stderr[-3000:]
    root = tmp_path_factory.mktemp("bad_input")
    ref = tiny_world.reference
    c = types.SimpleNamespace(root=root, data=tiny_world.data, ref=ref,
                              last=ref / "Model" / MODEL / "3", tmp=root / "tmp")
    c.tmp.mkdir()
    # a user's own CVUSA-layout dataset and a folder of the user's files
    c.user_cvusa = root / "my_cvusa"
    shutil.copytree(tiny_world.data / "splits", c.user_cvusa / "splits")
    (c.user_cvusa / "bingmap" / "19").mkdir(parents=True)
    shutil.copy(tiny_world.data / "bingmap" / "19" / "0000001.jpg", c.user_cvusa / "bingmap" / "19")
    c.user_dir = root / "my_files"
    c.user_dir.mkdir()
    (c.user_dir / "notes.txt").write_text("my notes\n")
    c.a_file = root / "a_file.txt"
    c.a_file.write_text("not a folder\n")
    # files that are not what the flag wants
    c.not_mat = root / "descriptors.mat"
    c.not_mat.write_text("grd_global_descriptor = 1\n")
    c.text_npy = root / "text.npy"
    c.text_npy.write_text("0.1 0.2 0.3\n")
    c.pickle_npy = root / "pickle.npy"
    import pickle
    c.pickle_npy.write_bytes(pickle.dumps({"descriptors": [1, 2, 3]}))
    c.object_npy = root / "object.npy"
    np.save(c.object_npy, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    c.query_npy = root / "query.npy"
    np.save(c.query_npy, np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32))
    c.plain_keras = root / "plain.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(str(c.plain_keras))
    c.corrupt_keras = root / "corrupt.keras"
    c.corrupt_keras.write_bytes((c.last / "model.keras").read_bytes()[:100])
    # damaged copies of the trained run
    c.broken_optimizer = root / "broken_optimizer"
    shutil.copytree(ref, c.broken_optimizer)
    opt = c.broken_optimizer / "Model" / MODEL / "3" / "optimizer.npz"
    opt.write_bytes(opt.read_bytes()[:300])
    c.broken_state = root / "broken_state"
    shutil.copytree(ref, c.broken_state)
    state = c.broken_state / "Model" / MODEL / "3" / "state.json"
    state.write_text(state.read_text()[:40])
    return c


def _train(c, *extra, data=True):
    return [*TINY_TRAIN_FLAGS, *( [f"--data_dir={c.data}"] if data else []), *extra]


# (id, command, arguments from the corpus, exit status, text the one error line must hold, offline)
CASES = [
    # 1. the synthetic writer never writes over a user's dataset
    ("synthetic_training_into_a_user_dataset", "train_cvusa",
     lambda c: _train(c, "--synthetic", f"--data_dir={c.user_cvusa}", f"--output_dir={c.tmp / 'o'}", data=False),
     2, lambda c: f"--data_dir={str(c.user_cvusa)!r} holds files the synthetic generator did not write", False),
    ("synthetic_command_into_a_user_dataset", "synthetic",
     lambda c: [f"--output_dir={c.user_cvusa}", "--num_train=4", "--num_val=2"],
     2, lambda c: f"--output_dir={str(c.user_cvusa)!r} holds files the synthetic generator did not write", False),
    # 2. export replaces only an earlier export
    ("export_onto_a_user_folder", "export", lambda c: [f"--checkpoint={c.last}", f"--output={c.user_dir}"],
     2, lambda c: f"--output={str(c.user_dir)!r} is a folder that is not an export of cvmnet-export", False),
    ("export_onto_a_training_run", "export", lambda c: [f"--checkpoint={c.last}", f"--output={c.ref}"],
     2, lambda c: f"--output={str(c.ref)!r} is a folder that is not an export of cvmnet-export", False),
    # 6. a resume with other run settings
    ("resume_with_other_settings", "train_cvusa",
     lambda c: _train(c, f"--output_dir={c.ref}", "--resume", "--epochs=3", "--learning_rate=0.0005",
                      "--loss=soft_margin_triplet"),
     2, lambda c: "was trained with other settings: --loss 'weighted_soft_margin_triplet' -> 'soft_margin_triplet', "
                  f"--alpha 10.0 -> 1.0, --learning_rate {_preset_learning_rate()!r} -> 0.0005; resume with the "
                  "checkpoint's values, or pass --allow_changed_settings", False),
    ("second_run_into_a_run_folder", "train_cvusa", lambda c: _train(c, f"--output_dir={c.ref}"),
     2, lambda c: "already holds checkpoints of a previous run (epochs [0, 1, 2, 3]); pass --resume", False),
    # 7. ImageNet weights offline (the default of every real-data command)
    ("imagenet_weights_offline", "train_cvusa",
     lambda c: _train(c, "--weights=imagenet", "--width=1.0", f"--output_dir={c.tmp / 'imagenet'}"),
     1, lambda c: "--weights=imagenet: downloading Keras' VGG16 ImageNet weights failed (URL fetch failure", True),
    # 8. raw tracebacks before
    ("evaluate_a_mat_that_is_not_one", "evaluate", lambda c: [f"--descriptors_mat={c.not_mat}"],
     1, lambda c: f"--descriptors_mat: {c.not_mat} is not a readable MATLAB .mat file", False),
    ("evaluate_output_onto_a_folder", "evaluate",
     lambda c: [f"--query={c.query_npy}", f"--database={c.query_npy}", f"--output={c.user_dir}"],
     2, lambda c: f"--output={str(c.user_dir)!r}: is a folder; give a file name", False),
    ("export_a_plain_keras_file", "export", lambda c: [f"--checkpoint={c.plain_keras}", f"--output={c.tmp / 'e'}"],
     1, lambda c: "is not a cvmnet_tf two-branch model", False),
    ("extract_a_plain_keras_file", "extract",
     lambda c: [f"--checkpoint={c.plain_keras}", "--dataset=cvusa", f"--data_dir={c.data}", f"--output={c.tmp / 'x'}"],
     1, lambda c: f"--checkpoint={str(c.plain_keras)!r}: model 'sequential' is not a cvmnet_tf two-branch model",
     False),
    ("train_output_dir_is_a_file", "train_cvusa", lambda c: _train(c, f"--output_dir={c.a_file}"),
     2, lambda c: f"--output_dir={str(c.a_file)!r} exists and is not a folder", False),
    ("resume_with_a_truncated_optimizer_state", "train_cvusa",
     lambda c: _train(c, f"--output_dir={c.broken_optimizer}", "--resume", "--epochs=3"),
     1, lambda c: f"{c.broken_optimizer / 'Model' / MODEL / '3' / 'optimizer.npz'}: unreadable optimizer state", False),
    # 9. late or unclear before
    ("seed_negative", "train_cvusa", lambda c: [*TINY_TRAIN_FLAGS, "--synthetic", "--seed=-1",
                                                f"--output_dir={c.tmp / 's'}"],
     2, lambda c: "--seed=-1: must be an integer in 0 .. 4294967295", False),
    ("seed_too_large", "train_cvusa", lambda c: [*TINY_TRAIN_FLAGS, "--synthetic", "--seed=5000000000",
                                                 f"--output_dir={c.tmp / 's'}"],
     2, lambda c: "--seed=5000000000: must be an integer in 0 .. 4294967295", False),
    ("resume_with_a_truncated_state_json", "train_cvusa",
     lambda c: _train(c, f"--output_dir={c.broken_state}", "--resume", "--epochs=4"),
     1, lambda c: f"{c.broken_state / 'Model' / MODEL / '3' / 'state.json'}: unreadable checkpoint state", False),
    ("alexnet_too_small_for_cpu_demo", "train_cvusa",
     lambda c: ["--preset=cpu_demo", "--synthetic", "--model=siamese_alexnet", f"--output_dir={c.tmp / 'a'}"],
     2, lambda c: "--image_size: the alexnet backbone of --model=siamese_alexnet needs inputs of at least 35x35 "
                  "pixels, got ground 32x128; pass --image_size small or HxW,HxW", False),
    ("quadruplet_loss_with_batch_2", "train_cvusa",
     lambda c: _train(c, "--loss=weighted_quadruplet", "--batch_size=2", f"--output_dir={c.tmp / 'q'}"),
     2, lambda c: "--batch_size=2: --loss=weighted_quadruplet needs at least 3 pairs per batch", False),
    ("output_dir_empty", "train_cvusa", lambda c: _train(c, "--output_dir="),
     2, lambda c: "--output_dir is empty", False),
    ("extract_output_prefix_empty", "extract",
     lambda c: [f"--checkpoint={c.last}", "--dataset=cvusa", f"--data_dir={c.data}", "--output="],
     2, lambda c: "--output='': must be a file prefix such as out/val", False),
    ("extract_output_prefix_is_a_folder", "extract",
     lambda c: [f"--checkpoint={c.last}", "--dataset=cvusa", f"--data_dir={c.data}", f"--output={c.user_dir}"],
     2, lambda c: f"--output={str(c.user_dir)!r}: must be a file prefix such as out/val", False),
    ("localize_output_dir_is_a_file", "localize",
     lambda c: [f"--checkpoint={c.last}", f"--map_dir={c.data}", "--stride_m=20", f"--output_dir={c.a_file}"],
     2, lambda c: f"--output_dir={str(c.a_file)!r}: exists and is not a folder", False),
    # 12. messages
    ("usage_error_without_help_text", "train_cvusa", lambda c: ["--synthetic", "--batch_size=1"],
     2, lambda c: "--batch_size=1: --loss=weighted_soft_margin_triplet needs at least 2 pairs per batch", False),
    ("extract_names_its_checkpoint_flag", "extract",
     lambda c: [f"--checkpoint={c.user_dir}", "--dataset=cvusa", f"--data_dir={c.data}", f"--output={c.tmp / 'x'}"],
     1, lambda c: f"--checkpoint={str(c.user_dir)!r}: not a checkpoint folder: model.keras is missing", False),
    ("corrupt_keras_file_is_not_file_not_found", "export",
     lambda c: [f"--checkpoint={c.corrupt_keras}", f"--output={c.tmp / 'e'}"],
     1, lambda c: f"{c.corrupt_keras} is not a .keras model file (not a zip archive: truncated, corrupt", False),
    ("pickle_given_as_descriptors", "evaluate", lambda c: [f"--query={c.pickle_npy}", f"--database={c.query_npy}"],
     1, lambda c: f"--query: {c.pickle_npy} is not a .npy array file (a pickle; write descriptors with numpy.save)",
     False),
    ("text_given_as_descriptors", "evaluate", lambda c: [f"--query={c.text_npy}", f"--database={c.query_npy}"],
     1, lambda c: f"--query: {c.text_npy} is not a .npy array file (text or another format", False),
    ("object_array_given_as_descriptors", "evaluate",
     lambda c: [f"--query={c.object_npy}", f"--database={c.query_npy}"],
     1, lambda c: f"--query: {c.object_npy} holds Python objects (an object array), not numbers", False),
]


@pytest.mark.parametrize("command, arguments, status, needle, offline", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_input_one_line_and_nothing_changed(corpus, tiny_world, cli_runner, command, arguments, status, needle,
                                                offline):
    before, names = _hashes(corpus.root, tiny_world.root), _names(corpus.root, tiny_world.root)
    r = cli_runner.run(command, arguments(corpus), cwd=corpus.tmp, offline=offline)
    lines = r["stderr"].strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert r["rc"] == status and len(errors) == 1, (r["rc"], r["stderr"][-3000:])
    assert needle(corpus) in errors[0], errors[0]
    assert "Traceback" not in r["stderr"] and lines == errors, r["stderr"][-3000:]   # the error line alone
    after = _hashes(corpus.root, tiny_world.root)
    assert {p: h for p, h in after.items() if p in before} == before      # nothing changed or removed
    if status == 2:                                                       # refused before any work
        assert _names(corpus.root, tiny_world.root) == names and not r["stdout"].strip(), r["stdout"]
    if offline:
        assert "--weights /path/to/it" in errors[0] and "--weights none" in errors[0]


def test_collapsed_descriptors_warn_and_report_ties_against_the_query(corpus, cli_runner):
    """All-equal descriptors: 100 % under the released rule, 0 % with ties against the query, a
    warning on stderr, and both figures in the JSON."""
    same = corpus.root / "same.npy"
    np.save(same, np.full((40, 8), 0.5, np.float32))
    out = corpus.root / "tied" / "metrics.json"
    r = cli_runner.run("evaluate", [f"--query={same}", f"--database={same}", f"--output={out}"])
    assert r["rc"] == 0, r["stderr"]
    assert "WARNING: ties decide this ranking: 100.0% of the queries have their true match tied" in r["stderr"]
    m = json.loads(out.read_text())
    assert m["recall@1"] == 1.0 and m["pessimistic/recall@1"] == 0.0 and m["tied_queries"] == 1.0
    assert m["pessimistic/recall@1%"] == 0.0 and m["warnings"] and "ties decide" in m["warnings"][0]


def test_the_first_command_is_quiet_and_says_what_next(tiny_world):
    """The real run of the tiny_world fixture (its own process, spawned synthetic workers):
    no TensorFlow banner, CUDA or malloc line; a closing line with the final checkpoint and the
    next commands."""
    assert tiny_world.returncode == 0, tiny_world.stderr[-3000:]
    out = tiny_world.stdout + tiny_world.stderr
    for noise in ("oneDNN", "cuda drivers", "cpu_feature_guard", "cuInit", "absl::InitializeLog", "glibc malloc",
                  "rebuild TensorFlow"):
        assert noise not in out, noise
    final = tiny_world.reference / "Model" / MODEL / "3"
    assert f"Done: epoch 3 of 3; final checkpoint {final}" in tiny_world.stdout
    assert f"python -m cvmnet_tf.export --checkpoint {final} --output" in tiny_world.stdout
    assert (f"python -m cvmnet_tf.extract --checkpoint {final} --dataset cvusa --data_dir {tiny_world.data} "
            "--split val --output") in tiny_world.stdout
    assert "python -m cvmnet_tf.evaluate --query" in tiny_world.stdout


def test_resume_with_allowed_changes_records_them_and_every_skip(corpus, tiny_world, cli_runner, tmp_path):
    """--allow_changed_settings: the change is in the flags file and the metrics log; unreadable
    images of both splits are named and counted, also in an epoch cut short by --max_steps_per_epoch."""
    data = tmp_path / "data"
    shutil.copytree(tiny_world.data, data)
    from cvmnet_tf.data import load_split

    train_split = load_split("cvusa", str(data), "train")
    val_split = load_split("cvusa", str(data), "val")
    bad_train = set(train_split.satellite_paths[::2])          # every other training satellite: corrupt
    for path in bad_train:
        open(path, "wb").close()
    bad_val = val_split.ground_paths[3]
    with open(bad_val, "r+b") as f:
        f.truncate(200)                                        # a truncated validation panorama
    run = tmp_path / "run"
    shutil.copytree(tiny_world.reference, run)
    r = cli_runner.run("train_cvusa", [*TINY_TRAIN_FLAGS, f"--data_dir={data}", f"--output_dir={run}", "--resume",
                                       "--epochs=4", "--max_steps_per_epoch=1", "--learning_rate=0.0002",
                                       "--allow_changed_settings"])
    assert r["rc"] == 0, r["stderr"][-3000:]
    lr = _preset_learning_rate()
    changed = {"max_steps_per_epoch": [2, 1], "learning_rate": [lr, 0.0002]}
    cosine = getattr(__import__("cvmnet_tf.training", fromlist=["make_config"]).make_config(
        "cpu_demo", dataset="cvusa"), "lr_schedule", "constant") == "cosine"
    if cosine:                                 # another --epochs is another cosine schedule: a change too
        changed["epochs"] = [3, 4]
    flags = json.loads((run / "Result" / f"{MODEL}_flags.json").read_text())
    assert flags["learning_rate"] == 0.0002 and flags["settings_changes"] == [{"from_epoch": 4, "changed": changed}]
    records = [json.loads(line) for line in (run / "Result" / f"{MODEL}_metrics.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in records] == [1, 2, 3, 4]
    assert records[3]["settings_changed"] == changed and "settings_changed" not in records[2]
    assert (f"WARNING: --allow_changed_settings: from epoch 4 on this run uses --learning_rate {lr!r} -> 0.0002, "
            "--max_steps_per_epoch 2 -> 1" + (", --epochs 3 -> 4" if cosine else "")) in r["stdout"]
    rec = records[3]
    train_paths = {d["path"] for d in rec["skipped_images"]}
    assert train_paths and train_paths <= bad_train and rec["num_skipped_images"]["train"] == len(train_paths)
    assert all(d["reason"] for d in rec["skipped_images"])
    assert [d["path"] for d in rec["val_skipped_images"]] == [bad_val]
    assert rec["num_skipped_images"]["validation"] == 1 and rec["metrics"]["num_database"] == 15
    assert f"skipped {len(train_paths)} training pair(s) with unreadable images: " in r["stdout"]
    assert f"skipped 1 validation image(s) (val split, left out of the metrics): {bad_val}" in r["stdout"]


def test_overwrite_starts_tensorboard_logs_again(tiny_world, cli_runner, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_world.reference, run)
    logs = run / "logs" / MODEL
    old = set(os.listdir(logs))
    assert old
    r = cli_runner.run("train_cvusa", [*TINY_TRAIN_FLAGS, f"--data_dir={tiny_world.data}", f"--output_dir={run}",
                                       "--overwrite", "--epochs=1", "--max_steps_per_epoch=1"])
    assert r["rc"] == 0, r["stderr"][-3000:]
    new = set(os.listdir(logs))
    assert new and not (new & old)
    assert sorted(os.listdir(run / "Model" / MODEL)) == ["0", "1"]
    assert (run / "Result" / f"{MODEL}_accuracy.txt").read_text().splitlines()[0].startswith("1 1 : ")


def test_training_validation_of_a_collapsed_network_warns_with_ties_against_the_query(tiny_world, cli_runner,
                                                                                      tmp_path):
    """Every conv kernel zero: all descriptors equal, so the released rule reads recall@1% 100 %.
    The epoch line, the WARNING and the metrics log give the figure with ties against the query."""
    import keras

    import cvmnet_tf.models  # noqa: F401 - registers the model classes for loading

    run = tmp_path / "run"
    shutil.copytree(tiny_world.reference, run)
    model_file = run / "Model" / MODEL / "3" / "model.keras"
    model = keras.saving.load_model(str(model_file), compile=False)
    kernels = [w for w in model.weights if len(w.shape) == 4]      # (kh, kw, in, out): the conv kernels
    assert len(kernels) >= 2 * 13                                   # VGG16's 13 per branch, at least
    for w in kernels:
        w.assign(np.zeros(w.shape, w.dtype))
    model.save(str(model_file))
    r = cli_runner.run("train_cvusa", [*TINY_TRAIN_FLAGS, f"--data_dir={tiny_world.data}", f"--output_dir={run}",
                                       "--resume", "--epochs=4", "--allow_changed_settings"])
    assert r["rc"] == 0, r["stderr"][-3000:]
    epoch_line = next(line for line in r["stdout"].splitlines() if line.startswith("Epoch 4: loss"))
    assert "recall@1 100.00% (ties against the query: 0.00%)" in epoch_line, epoch_line
    assert "recall@1% 100.00% (ties against the query: 0.00%)" in epoch_line, epoch_line
    assert ("WARNING: ties decide the epoch 4 validation: 100.0% of the queries have their true match tied"
            in r["stdout"])
    record = [json.loads(line) for line in (run / "Result" / f"{MODEL}_metrics.jsonl").read_text().splitlines()][-1]
    m = record["metrics"]
    assert record["epoch"] == 4 and m["recall@1%"] == 1.0 and m["pessimistic/recall@1%"] == 0.0
    assert m["tied_queries"] == 1.0 and m["pessimistic/median_rank_fraction"] == 15 / 16
    assert record["warnings"][0].startswith("ties decide the epoch 4 validation")


def test_progress_bar_ends_on_the_epoch_mean_loss_and_the_epoch_pairs_per_second(tiny_world):
    """The bar's last loss is the epoch mean of the epoch line and the metrics log, its
    pairs/s the record's (the time after the last step is not counted)."""
    import re

    assert tiny_world.returncode == 0, tiny_world.stderr[-3000:]
    records = [json.loads(line) for line in
               (tiny_world.reference / "Result" / f"{MODEL}_metrics.jsonl").read_text().splitlines()]
    out = re.sub(r"\x1b\[[0-9;]*m", "", tiny_world.stdout)
    for rec in records:
        epoch = rec["epoch"]
        bar = out.split(f"Epoch {epoch}/3")[1].split(f"Epoch {epoch}: ")[0]
        loss = re.findall(r"loss: ([0-9.e+-]+)", bar)[-1]
        pairs = float(re.findall(r"pairs/s: ([0-9.e+-]+)", bar)[-1])
        assert loss == f"{rec['loss']:.4f}", (bar, rec["loss"])
        assert abs(pairs - rec["pairs_per_second"]) <= 0.0051 + 1e-6 * pairs, (bar, rec["pairs_per_second"])
        assert f"Epoch {epoch}: loss {rec['loss']:.4f}," in out
