"""Tests of the evaluation plots and of ``python -m cvmnet_tf.evaluate`` (subprocess)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cvmnet_tf.evaluation import plots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _png_size(path):
    assert os.path.getsize(path) > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_plots_write_pngs_of_the_requested_size(tmp_path):
    p = plots.plot_top_k_curve({"without distractors": np.linspace(0.2, 1, 50),
                                "with distractors": np.linspace(0.1, 0.9, 50)},
                               tmp_path / "curve.png", top_percent_k=10, size_px=(640, 480))
    assert _png_size(p) == (640, 480)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 128, 3), dtype=np.uint8)).save(tmp_path / "q.jpg")
    sats = [rng.random((24, 24, 3)) for _ in range(5)]
    p = plots.plot_retrieval_examples([str(tmp_path / "q.jpg"), rng.random((32, 128, 3))], [sats, sats],
                                      [[False, True, False, False, False], [False] * 5],
                                      tmp_path / "examples.png", size_px=(900, 300))
    assert _png_size(p) == (900, 300)
    p = plots.plot_recall_vs_distance([10, 50, 100], [0.1, 0.5, 0.7], tmp_path / "dist.png",
                                      reference=(100, 0.671))
    assert _png_size(p) == (800, 600)
    assert sorted(os.listdir(tmp_path)) == ["curve.png", "dist.png", "examples.png", "q.jpg"]  # no temp files
    with pytest.raises(ValueError, match="queries"):
        plots.plot_retrieval_examples([], [], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="cannot read image"):
        plots.plot_retrieval_examples([str(tmp_path / "missing.jpg")], [sats], [[True] * 5], tmp_path / "x.png")


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "cvmnet_tf.evaluate", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _ref_ranks(q, d):
    dist = 2.0 - 2.0 * (q.astype(np.float64) @ d.astype(np.float64).T)
    return np.array([(dist[i] < dist[i, i]).sum() for i in range(len(q))])


def test_cli_writes_metrics_json_and_outputs(tmp_path):
    rng = np.random.default_rng(1)
    n, extra, dim = 150, 60, 8
    q = rng.standard_normal((n, dim)).astype(np.float32)
    d = q + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    x = rng.standard_normal((extra, dim)).astype(np.float32)
    utm_q = rng.uniform(0, 1000, (n, 2))
    utm_d = np.concatenate([utm_q, rng.uniform(0, 1000, (extra, 2))])
    for name, arr in dict(q=q, d=d, x=x, uq=utm_q, ud=utm_d).items():
        np.save(tmp_path / f"{name}.npy", arr)
    out = tmp_path / "metrics.json"
    r = _run_cli("--query", str(tmp_path / "q.npy"), "--database", str(tmp_path / "d.npy"),
                 "--distractors", str(tmp_path / "x.npy"), "--query_utm", str(tmp_path / "uq.npy"),
                 "--database_utm", str(tmp_path / "ud.npy"), "--output_json", str(out),
                 "--top_k_plot", str(tmp_path / "curve.png"), "--compare_model", "cvm_net_i",
                 "--compare_dataset", "cvusa", "--comparison_md", str(tmp_path / "table.md"), "--block_size", "17")
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    full = np.concatenate([d, x])
    ranks = _ref_ranks(q, full)
    ranks_nd = _ref_ranks(q, d)
    k1 = int(0.01 * (n + extra)) + 1
    assert m["top_percent_k"] == k1 == 3
    assert m["num_query"] == n and m["num_database"] == n + extra and m["num_distractors"] == extra
    for k in (1, 5, 10):
        assert m[f"recall@{k}"] == pytest.approx(np.mean(ranks < k), abs=1e-12)
        assert m[f"no_distractors/recall@{k}"] == pytest.approx(np.mean(ranks_nd < k), abs=1e-12)
    assert m["recall@1%"] == pytest.approx(np.mean(ranks < k1), abs=1e-12)
    assert m["no_distractors/recall@1%"] == pytest.approx(np.mean(ranks_nd < int(0.01 * n) + 1), abs=1e-12)
    best = (q.astype(np.float64) @ full.T.astype(np.float64)).argmax(1)
    err = np.hypot(*(utm_q - utm_d[best]).T)
    assert m["localization/mean_error_m"] == pytest.approx(err.mean(), rel=1e-9)
    assert m["localization/recall@100m"] == pytest.approx(np.mean(err <= 100), abs=1e-12)
    assert _png_size(tmp_path / "curve.png") == (800, 600)
    table = (tmp_path / "table.md").read_text()
    assert f"| {100 * m['recall@1%']:.2f} |" in table and "| 91.40 |" in table
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_cli_reads_oricnn_mat(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    q = rng.standard_normal((30, 6)).astype(np.float32)
    d = q + 0.5 * rng.standard_normal((30, 6)).astype(np.float32)
    savemat(tmp_path / "desc.mat", {"grd_global_descriptor": q, "sat_global_descriptor": d})
    r = _run_cli("--descriptors_mat", str(tmp_path / "desc.mat"), "--output_json", str(tmp_path / "m.json"),
                 "--ks", "1,2")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    ranks = _ref_ranks(q, d)
    assert m["recall@2"] == pytest.approx(np.mean(ranks < 2), abs=1e-12)
    assert m["recall@1%"] == pytest.approx(np.mean(ranks < 1), abs=1e-12)


@pytest.mark.parametrize("case, message", [
    ("dim", "dimensions differ"),
    ("nan", "NaN or inf (first bad row 2)"),
])
def test_cli_errors_without_output(tmp_path, case, message):
    rng = np.random.default_rng(3)
    q = rng.standard_normal((10, 4)).astype(np.float32)
    d = rng.standard_normal((10, 5 if case == "dim" else 4)).astype(np.float32)
    if case == "nan":
        q[2, 1] = np.nan
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "d.npy", d)
    out = tmp_path / "metrics.json"
    r = _run_cli("--query", str(tmp_path / "q.npy"), "--database", str(tmp_path / "d.npy"),
                 "--output_json", str(out), "--top_k_plot", str(tmp_path / "c.png"))
    assert r.returncode != 0
    assert message in r.stderr
    if case == "nan":
        assert "q.npy" in r.stderr      # the error names the file
    assert sorted(os.listdir(tmp_path)) == ["d.npy", "q.npy"]
