"""The blocked recall scan on TensorFlow / JAX (forced onto the CPU device here) gives the
NumPy path's ranks and counts: identical on exact (grid) data with planted ties, identical
on random data whose similarities have no near-ties, and an independent brute force agrees."""
import importlib.util

import numpy as np
import pytest

from cvmnet_tf.evaluation import metrics

DEVICES = ["tf"] + (["jax"] if importlib.util.find_spec("jax") is not None else [])


def exact_data(rng, n, dim, extra):
    """Descriptors on a 1/4 grid: every dot product is exact in float32 in any summation
    order, so both engines compute the same similarities and the planted ties are real."""
    q = rng.integers(-3, 4, size=(n, dim)).astype(np.float32) / 4
    d = np.concatenate([q + rng.integers(-1, 2, size=(n, dim)).astype(np.float32) / 4,
                        rng.integers(-3, 4, size=(extra, dim)).astype(np.float32) / 4])
    d[5] = d[3]            # duplicate of query 3's true match
    d[7] = d[9]
    d[n] = d[0]            # a distractor tied with query 0's true match
    return q, d


def _fields(result):
    return {k: getattr(result, k) for k in ("ground_to_satellite", "ground_to_satellite_no_distractors",
                                            "satellite_to_ground", "geo", "best_index",
                                            "ground_to_satellite_pessimistic",
                                            "ground_to_satellite_no_distractors_pessimistic")}


def _near(rng, nq, ndb):
    """Random CSR neighbour lists (some queries with none)."""
    counts = rng.integers(0, 4, size=nq)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate([rng.choice(ndb, size=c, replace=False) for c in counts]).astype(np.int64)
    return indptr, indices


def _assert_same(a, b):
    fa, fb = _fields(a), _fields(b)
    for key in fa:
        if fa[key] is None:
            assert fb[key] is None, key
        else:
            assert fb[key].dtype == np.int64, key
            np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)
    assert (a.num_query, a.num_database) == (b.num_query, b.num_database)


@pytest.mark.parametrize("device", DEVICES)
def test_exact_ties_same_rule_on_the_device(device):
    rng = np.random.default_rng(0)
    q, d = exact_data(rng, 40, 6, extra=13)
    near = _near(rng, 40, 53)
    for block in (1, 7, 40):
        cpu = metrics.compute_ranks(q, d, directions=metrics.DIRECTIONS, near=near, want_best=True,
                                    block_size=block, device="cpu")
        dev = metrics.compute_ranks(q, d, directions=metrics.DIRECTIONS, near=near, want_best=True,
                                    block_size=block, device=device)
        _assert_same(cpu, dev)
    # the ties are real and decide some ranks; the device path counts them the same way
    assert (cpu.ground_to_satellite_pessimistic > cpu.ground_to_satellite).sum() >= 2
    # the tie rule, by brute force in float64 (exact here): strictly closer rows only
    s = q.astype(np.float64) @ d.astype(np.float64).T
    ref = np.array([(s[i] > s[i, i]).sum() for i in range(len(q))])
    np.testing.assert_array_equal(dev.ground_to_satellite, ref)
    ref_best = np.array([int(np.flatnonzero(s[i] == s[i].max())[0]) for i in range(len(q))])
    np.testing.assert_array_equal(dev.best_index, ref_best)        # lowest index on ties


def _random_without_near_ties(nq, ndb, dim):
    """Random unit descriptors (the first seed that qualifies) in which no two similarities of
    a row or of a column are within 2 x 64 eps32 sqrt(dim) + the tie tolerance of each
    other: far more than the float32 error of a dim-long dot product, so another summation
    order cannot reorder them, nor move one across a true match's value minus the tolerance."""
    bound = 64 * 2.0 ** -23 * np.sqrt(dim)
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        q = rng.standard_normal((nq, dim)).astype(np.float32)
        d = rng.standard_normal((ndb, dim)).astype(np.float32)
        d[:nq] += q
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        s = q.astype(np.float64) @ d.astype(np.float64).T
        tol = float(metrics.tie_tolerance(q, d).max())     # < bound: s_ij vs t_i - tol is covered too
        gaps = min(np.diff(np.sort(s, axis=1), axis=1).min(), np.diff(np.sort(s, axis=0), axis=0).min())
        if gaps > 2 * bound + tol:
            return rng, q, d
    raise AssertionError("no seed without near-ties")


@pytest.mark.parametrize("device", DEVICES)
def test_random_data_same_ranks_and_recall(device):
    rng, q, d = _random_without_near_ties(16, 24, 16)
    near = _near(rng, 16, 24)
    cpu = metrics.compute_ranks(q, d, directions=metrics.DIRECTIONS, near=near, want_best=True, block_size=5,
                                device="cpu")
    dev = metrics.compute_ranks(q, d, directions=metrics.DIRECTIONS, near=near, want_best=True, block_size=5,
                                device=device)
    _assert_same(cpu, dev)
    assert metrics.evaluate_retrieval(q, d, device=device) == metrics.evaluate_retrieval(q, d, device="cpu")
    np.testing.assert_array_equal(metrics.retrieval_ranks(q, d, true_index=np.arange(16)[::-1].copy(),
                                                          device=device),
                                  metrics.retrieval_ranks(q, d, true_index=np.arange(16)[::-1].copy(),
                                                          device="cpu"))
    # geo's use of the engine: another true_index with neighbour lists, no distractor split
    kwargs = dict(true_index=np.zeros(16, np.int64), near=near, block_size=5, split_distractors=False)
    _assert_same(metrics.scan_ranks(q, d, device="cpu", **kwargs), metrics.scan_ranks(q, d, device=device, **kwargs))


def test_device_choice():
    assert metrics.retrieval_device("cpu") == "cpu"
    assert metrics.retrieval_device("tf") == "tf"
    # no GPU on a CPU machine: auto is NumPy (TensorFlow is imported by the tests above)
    import tensorflow as tf
    if not tf.config.list_physical_devices("GPU"):
        assert metrics.retrieval_device("auto") in ("cpu", "jax")
    with pytest.raises(ValueError, match="device='gpu' is unknown; choose one of auto, cpu, tf, jax"):
        metrics.retrieval_device("gpu")
    with pytest.raises(ValueError, match="device='gpu' is unknown"):
        metrics.evaluate_retrieval(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), device="gpu")


@pytest.mark.parametrize("device", ["cpu"] + DEVICES)
def test_benchmark_retrieval_small(device):
    out = metrics.benchmark_retrieval(300, 400, 32, device=device, block_size=64)
    assert out["seconds"] > 0 and out["tflop"] == pytest.approx(2 * 300 * 400 * 32 / 1e12)
    assert out["block_size"] == 64 and out["num_database"] == 400
    assert out["device"].startswith({"cpu": "numpy", "tf": "tensorflow", "jax": "jax"}[device])
    assert 0.5 < out["recall@1"] <= 1.0          # database = query + noise: mostly found
