"""cvmnet-extract in shards + --merge = one run (bitwise), bad shard sets (one-line errors),
and --mixed_precision for extraction with its agreement with float32."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from cvmnet_tf.data import load_split  # noqa: E402
from cvmnet_tf.data.synthetic import write_dataset  # noqa: E402
from cvmnet_tf.inference import descriptors, shards  # noqa: E402
from test_export import make_checkpoint  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ("satellite", "ground", "index", "distractors")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    data = str(root / "cvact")
    write_dataset(data, layout="cvact", num_train=1, num_val=7, seed=5, satellite_size=(48, 48),
                  ground_size=(32, 128))
    split = load_split("cvact", data, "val")
    distractors = root / "distractors"
    distractors.mkdir()
    for i, name in enumerate(("c.jpg", "a.jpg", "b.jpg")):
        shutil.copy(split.satellite_paths[i], distractors / name)
    ckpt, _ = make_checkpoint(root / "run", dataset="cvact", seed=6)
    single = descriptors.extract_descriptors(ckpt, "cvact", data, "val", batch_size=2, progress=False,
                                             distractor_dir=str(distractors))
    prefix = str(root / "single" / "val")
    os.makedirs(os.path.dirname(prefix))
    descriptors.write_descriptors(prefix, single)
    return root, data, str(distractors), ckpt, single, prefix


def _npy(prefix, key):
    return np.load(descriptors.output_paths(prefix, True)[key])


def _run_shards(world, out, num_shards, mode):
    root, data, distractors, ckpt, _, _ = world
    for i in range(num_shards):
        result = descriptors.extract_descriptors(ckpt, "cvact", data, "val", batch_size=2, progress=False,
                                                 distractor_dir=distractors, shard_index=i, num_shards=num_shards,
                                                 shard_mode=mode)
        shards.write_shard(out, result)


def test_shard_rows_partition():
    for total in (0, 1, 5, 7, 100):
        for k in (1, 2, 3, 8):
            for mode in shards.SHARD_MODES:
                rows = [shards.shard_rows(total, i, k, mode) for i in range(k)]
                np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.arange(total))
    np.testing.assert_array_equal(shards.shard_rows(7, 1, 3, "contiguous"), [2, 3])
    np.testing.assert_array_equal(shards.shard_rows(7, 1, 3, "strided"), [1, 4])
    with pytest.raises(ValueError, match=r"--shard_index=3: must be in 0 .. 2"):
        shards.shard_rows(7, 3, 3)
    with pytest.raises(ValueError, match="--shard_mode='random' is unknown"):
        shards.shard_rows(7, 0, 3, "random")


# Which arrays are computed in the same batches as the single run (batch_size 2): 7 pairs in
# 3 contiguous shards are rows [0, 1], [2, 3], [4, 5, 6] -> batches {0,1} {2,3} {4,5} {6}, the
# single run's; the 3 distractors are one per shard (batches of 1 instead of {0,1} {2}); a
# strided shard batches rows {0,2} {4,6} / {1,3} {5}.
@pytest.mark.parametrize("mode, num_shards, same_batches", [
    ("contiguous", 3, ("satellite", "ground")), ("strided", 2, ())])
def test_merged_shards_equal_one_run(world, tmp_path, mode, num_shards, same_batches):
    """Same precision, same CPU: what a shard computes in the single run's batches is the
    single run's bit for bit; an image in a batch of another size may differ by float32
    rounding (oneDNN picks another kernel for another batch size, which reorders the float32
    sums): at most a few ulp of these unit-length descriptors, bounded here by
    8 eps32 sqrt(dim). Indices, file lists and shapes are always identical."""
    _, _, _, _, single, prefix = world
    out = str(tmp_path / "val")
    _run_shards(world, out, num_shards, mode)
    manifest = json.load(open(shards.shard_prefix(out, 1, num_shards) + ".json"))
    assert manifest["total_rows"] == 7 and manifest["mode"] == mode and manifest["precision"] == "none"
    assert manifest["rows"] == ({"first": 2, "stop": 4, "num_rows": 2} if mode == "contiguous"
                                else {"first": 1, "step": 2, "num_rows": 3})
    np.testing.assert_array_equal(_npy(shards.shard_prefix(out, 1, num_shards), "index"),
                                  shards.shard_rows(7, 1, num_shards, mode))     # positions in the whole split
    descriptors.write_descriptors(out, shards.merge_shards(out))
    for key in KEYS:
        a, b = _npy(out, key), _npy(prefix, key)
        assert a.dtype == b.dtype and a.shape == b.shape, key
        if key == "index" or key in same_batches:
            assert a.tobytes() == b.tobytes(), key
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=8 * 2.0 ** -23 * np.sqrt(a.shape[1]), err_msg=key)
    with open(out + "_distractors.txt") as f, open(prefix + "_distractors.txt") as g:
        assert f.read() == g.read()
    import scipy.io
    m, r = scipy.io.loadmat(out + ".mat"), scipy.io.loadmat(prefix + ".mat")
    assert m["utm"].tobytes() == r["utm"].tobytes()
    for key in ("sat_global_descriptor", "grd_global_descriptor"):
        np.testing.assert_array_equal(m[key], _npy(out, "satellite" if key.startswith("sat") else "ground"))


def test_bad_shard_sets_fail_with_one_line(world, tmp_path):
    out = str(tmp_path / "val")
    with pytest.raises(ValueError, match="no shard manifests"):
        shards.merge_shards(out)
    _run_shards(world, out, 3, "contiguous")
    os.rename(shards.shard_prefix(out, 1, 3) + ".json", str(tmp_path / "aside.json"))
    with pytest.raises(ValueError, match=r"shard\(s\) 1 of 3 missing: .*shard-00001-of-00003\.json"):
        shards.merge_shards(out)
    os.rename(str(tmp_path / "aside.json"), shards.shard_prefix(out, 1, 3) + ".json")
    # another model (or precision / split): the manifests disagree
    path = shards.shard_prefix(out, 2, 3) + ".json"
    record = json.load(open(path))
    json.dump(dict(record, model_fingerprint="0" * 64), open(path, "w"))
    with pytest.raises(ValueError, match=r"differ in model_fingerprint .*not shards of one extraction"):
        shards.merge_shards(out)
    json.dump(dict(record, split="train"), open(path, "w"))
    with pytest.raises(ValueError, match="differ in split"):
        shards.merge_shards(out)
    json.dump(record, open(path, "w"))
    # a second set with another --num_shards next to it: rows would overlap
    result = descriptors.extract_descriptors(world[3], "cvact", world[1], "val", batch_size=2, progress=False,
                                             shard_index=0, num_shards=2)
    shards.write_shard(out, result)
    with pytest.raises(ValueError, match=r"different --num_shards \[2, 3\]"):
        shards.merge_shards(out)
    for suffix in ("_satellite.npy", "_ground.npy", "_index.npy", ".mat", ".json"):
        os.remove(shards.shard_prefix(out, 0, 2) + suffix)
    # a shard whose rows are not its own (an overlap with its neighbour)
    index_file = shards.shard_prefix(out, 0, 3) + "_index.npy"
    np.save(index_file, np.array([0, 2]))
    with pytest.raises(ValueError, match=r"holds rows outside shard 0's rows"):
        shards.merge_shards(out)
    with pytest.raises(ValueError, match="sharding takes pair splits|more shards than"):
        descriptors.extract_descriptors(world[3], "cvact", world[1], "val", progress=False, shard_index=0,
                                        num_shards=8)


def test_cli_shards_and_merge(world, tmp_path):
    root, data, distractors, ckpt, single, prefix = world
    out = str(tmp_path / "cli" / "val")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    base = [sys.executable, "-m", "cvmnet_tf.extract", f"--checkpoint={ckpt}", "--dataset=cvact",
            f"--data_dir={data}", "--split=val", f"--output={out}", "--batch_size=2", "--num_shards=2",
            "--shard_mode=strided"]
    for i in range(2):
        proc = subprocess.run(base + [f"--shard_index={i}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                              env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    merge = [sys.executable, "-m", "cvmnet_tf.extract", "--merge", f"--output={out}"]
    proc = subprocess.run(merge, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "7 pairs" in proc.stdout
    np.testing.assert_array_equal(_npy(out, "index"), _npy(prefix, "index"))
    for key in ("satellite", "ground"):      # strided: other batches (see test_merged_shards_equal_one_run)
        np.testing.assert_allclose(_npy(out, key), _npy(prefix, key), rtol=0, atol=8 * 2.0 ** -23 * 4, err_msg=key)
    # merging again never overwrites; a bad flag is one line
    proc = subprocess.run(merge, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "never overwritten" in proc.stderr
    proc = subprocess.run(base + ["--shard_index=2"], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --shard_index=2: must be in 0 .. 1 (--num_shards=2)"]


def test_bf16_extraction_agrees_with_float32(world):
    """bf16 descriptors are float32 unit vectors close to the float32 ones, and differ from
    them (so the precision was applied); float32 against itself agrees exactly."""
    _, data, _, ckpt, single, _ = world
    bf16 = descriptors.extract_descriptors(ckpt, "cvact", data, "val", batch_size=2, progress=False,
                                           precision="bf16")
    assert bf16["info"]["precision"] == "bf16" and single["info"]["precision"] == "none"
    assert bf16["satellite"].dtype == np.float32
    agreement = descriptors.precision_agreement(single, bf16)
    for side in ("satellite", "ground"):
        d = agreement[side]
        # bfloat16 keeps 8 significant bits (relative rounding 2**-9 per operation); through a
        # network of ~20 layers a relative error of 20 * 2**-9 = 0.04 at most gives
        # 1 - cos <= 0.04**2 / 2 ~ 1e-3
        assert 0.0 < d["max_cosine_difference"] < 1e-3, d
        assert d["mean_cosine_difference"] <= d["max_cosine_difference"]
    assert set(agreement["recall"]) == {"recall@1", "recall@5", "recall@10", "recall@1%"}
    for ref, new, diff in agreement["recall"].values():
        assert diff == pytest.approx(new - ref) and 0.0 <= ref <= 1.0
    same = descriptors.precision_agreement(single, single)
    assert same["satellite"]["max_cosine_difference"] <= 4 * 2.0 ** -52 * 16
    assert all(d == 0 for _, _, d in same["recall"].values())
    lines = descriptors.agreement_lines(agreement)
    assert lines[0] == "Agreement of bf16 with none descriptors over 7 pairs:" and "recall@1 " in lines[3]
