"""Tests of cvmnet_tf.losses against independent NumPy loop implementations.

Backend-agnostic (no TensorFlow import): CI also runs this file under KERAS_BACKEND=jax.
Gradients are taken through Keras itself (one SGD step of a tiny model whose output
is the descriptor batch) and compared with NumPy finite differences of the NumPy
reference losses.
"""
import math

import keras
import numpy as np
import pytest

from cvmnet_tf import losses

pytestmark = pytest.mark.backend_agnostic

RTOL = 1e-5
ATOL = 1e-6


# --------------------------------------------------------------------------- #
# data
# --------------------------------------------------------------------------- #
def unit_pairs(batch, dim=4, seed=0, noise=1.5):
    """Random unit satellite vectors and correlated unit ground vectors (float64)."""
    rng = np.random.default_rng(seed)
    sat = rng.normal(size=(batch, dim))
    grd = sat + noise * rng.normal(size=(batch, dim))
    sat /= np.linalg.norm(sat, axis=1, keepdims=True)
    grd /= np.linalg.norm(grd, axis=1, keepdims=True)
    return sat, grd


def value(loss_out):
    return float(keras.ops.convert_to_numpy(loss_out))


# --------------------------------------------------------------------------- #
# NumPy references: explicit loops over anchors / negatives, float64
# --------------------------------------------------------------------------- #
def np_dist(sat, grd, i, j):
    """Squared distance between satellite i and ground j: 2 - 2 s.g."""
    return 2.0 - 2.0 * float(np.dot(sat[i], grd[j]))


def softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def ref_rows(sat, grd, direction):
    """For each anchor a: list over all n (including n == a) of (d_pos, d_neg)."""
    batch = sat.shape[0]
    rows = []
    for a in range(batch):
        d_pos = np_dist(sat, grd, a, a)
        row = []
        for n in range(batch):
            if direction == "g2s":   # ground anchor a, satellite negative n
                d_neg = np_dist(sat, grd, n, a)
            else:                    # satellite anchor a, ground negative n
                d_neg = np_dist(sat, grd, a, n)
            row.append((d_pos, d_neg))
        rows.append(row)
    return rows


def ref_weighted_triplet(sat, grd, alpha=10.0, exclude_diagonal=False):
    batch = sat.shape[0]
    total = []
    for direction in ("g2s", "s2g"):
        acc = 0.0
        for a, row in enumerate(ref_rows(sat, grd, direction)):
            for n, (d_pos, d_neg) in enumerate(row):
                if n == a and exclude_diagonal:
                    continue
                acc += softplus(alpha * (d_pos - d_neg))
        total.append(acc / (batch * (batch - 1)))
    return sum(total) / 2.0


def ref_weighted_triplet_hard(sat, grd, k, alpha=10.0, exclude_diagonal=False):
    total = []
    for direction in ("g2s", "s2g"):
        kept = []
        for a, row in enumerate(ref_rows(sat, grd, direction)):
            terms = [softplus(alpha * (p - q)) for n, (p, q) in enumerate(row)
                     if not (exclude_diagonal and n == a)]
            kept.extend(sorted(terms, reverse=True)[:k])
        total.append(sum(kept) / len(kept))
    return sum(total) / 2.0


def ref_quadruplet(sat, grd, alpha=10.0):
    """Mean over every (i, j, k) distinct of the two soft-margin terms, per direction."""
    batch = sat.shape[0]
    total = []
    for direction in ("g2s", "s2g"):
        acc, count = 0.0, 0
        for i in range(batch):
            d_pos = np_dist(sat, grd, i, i)
            for j in range(batch):
                if j == i:
                    continue
                d_neg = np_dist(sat, grd, j, i) if direction == "g2s" else np_dist(sat, grd, i, j)
                for k in range(batch):
                    if k in (i, j):
                        continue
                    # second negative pair: satellite j with ground k (g2s) or
                    # ground j with satellite k (s2g); not involving i
                    d_neg2 = np_dist(sat, grd, j, k) if direction == "g2s" else np_dist(sat, grd, k, j)
                    acc += softplus(alpha * (d_pos - d_neg)) + softplus(alpha * (d_pos - d_neg2))
                    count += 1
        total.append(acc / count)
    return sum(total) / 2.0


def ref_contrastive(sat, grd, margin=1.0):
    batch = sat.shape[0]
    pos = sum(np_dist(sat, grd, i, i) for i in range(batch)) / batch
    neg, count = 0.0, 0
    for i in range(batch):
        for j in range(batch):
            if i != j:
                # Euclidean distance sqrt(2 - 2 s.g) (== |s - g| for unit vectors; the
                # loss's definition, also used off the unit sphere in the gradient test)
                e = math.sqrt(max(np_dist(sat, grd, i, j), 1e-12))
                neg += max(0.0, margin - e) ** 2
                count += 1
    return pos + neg / count


def ref_max_margin(sat, grd, margin=0.2):
    batch = sat.shape[0]
    total = []
    for direction in ("g2s", "s2g"):
        acc = 0.0
        for a, row in enumerate(ref_rows(sat, grd, direction)):
            for n, (d_pos, d_neg) in enumerate(row):
                if n != a:
                    acc += max(0.0, margin + d_pos - d_neg)
        total.append(acc / (batch * (batch - 1)))
    return sum(total) / 2.0


def ref_hard_exemplar_weights(sat, grd, temperature=0.1):
    """weights[direction][a][n] over the negatives n != a (softmax of -d_neg / T)."""
    out = {}
    for direction in ("g2s", "s2g"):
        rows = []
        for a, row in enumerate(ref_rows(sat, grd, direction)):
            logits = {n: -q / temperature for n, (_, q) in enumerate(row) if n != a}
            top = max(logits.values())
            z = sum(math.exp(v - top) for v in logits.values())
            rows.append({n: math.exp(v - top) / z for n, v in logits.items()})
        out[direction] = rows
    return out


def ref_hard_exemplar(sat, grd, margin=0.2, temperature=0.1, weights=None):
    if weights is None:
        weights = ref_hard_exemplar_weights(sat, grd, temperature)
    batch = sat.shape[0]
    total = []
    for direction in ("g2s", "s2g"):
        acc = 0.0
        for a, row in enumerate(ref_rows(sat, grd, direction)):
            for n, (d_pos, d_neg) in enumerate(row):
                if n != a:
                    acc += weights[direction][a][n] * max(0.0, margin + d_pos - d_neg)
        total.append(acc / batch)
    return sum(total) / 2.0


# --------------------------------------------------------------------------- #
# values
# --------------------------------------------------------------------------- #
BATCHES = (2, 5, 12)


def test_pairwise_distance_matches_loops():
    sat, grd = unit_pairs(5)
    got = keras.ops.convert_to_numpy(losses.pairwise_distance(sat, grd))
    want = np.array([[np_dist(sat, grd, i, j) for j in range(5)] for i in range(5)])
    assert got.dtype == np.float32 and got.shape == (5, 5)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # squared Euclidean for unit vectors
    np.testing.assert_allclose(got[1, 3], np.sum((sat[1] - grd[3]) ** 2), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("alpha", (10.0, 1.0))
@pytest.mark.parametrize("exclude_diagonal", (False, True))
def test_weighted_soft_margin_triplet_exhaustive(batch, alpha, exclude_diagonal):
    sat, grd = unit_pairs(batch, seed=batch)
    got = value(losses.weighted_soft_margin_triplet_loss(sat, grd, alpha=alpha,
                                                         exclude_diagonal=exclude_diagonal))
    want = ref_weighted_triplet(sat, grd, alpha, exclude_diagonal)
    assert got == pytest.approx(want, rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("batch", (3, 6))
def test_diagonal_convention(batch):
    """Released value = clean paper mean + log(2) / (B - 1) (B diagonal log 2 terms / (B (B-1)))."""
    sat, grd = unit_pairs(batch, seed=7)
    released = value(losses.weighted_soft_margin_triplet_loss(sat, grd))
    clean = value(losses.weighted_soft_margin_triplet_loss(sat, grd, exclude_diagonal=True))
    assert released - clean == pytest.approx(math.log(2.0) / (batch - 1), rel=1e-5)
    # orthonormal, perfectly matched descriptors: every off-diagonal term ~ softplus(-20)
    eye = np.eye(batch)
    assert value(losses.weighted_soft_margin_triplet_loss(eye, eye)) == pytest.approx(
        math.log(2.0) / (batch - 1) + math.log1p(math.exp(-20.0)), rel=1e-5)
    assert value(losses.weighted_soft_margin_triplet_loss(eye, eye, exclude_diagonal=True)) == pytest.approx(
        math.log1p(math.exp(-20.0)), rel=1e-4)


@pytest.mark.parametrize("batch,k", [(2, 1), (5, 1), (5, 3), (5, 5), (12, 4)])
def test_hard_mining_matches_numpy(batch, k):
    sat, grd = unit_pairs(batch, seed=batch + k)
    got = value(losses.weighted_soft_margin_triplet_loss(sat, grd, hard_top_k=k))
    assert got == pytest.approx(ref_weighted_triplet_hard(sat, grd, k), rel=RTOL, abs=ATOL)
    if k < batch:
        got = value(losses.weighted_soft_margin_triplet_loss(sat, grd, hard_top_k=k, exclude_diagonal=True))
        assert got == pytest.approx(ref_weighted_triplet_hard(sat, grd, k, exclude_diagonal=True),
                                    rel=RTOL, abs=ATOL)


def test_hard_mining_full_row_and_zero():
    """k = B averages the whole row: released divisor B*(B-1) vs B*B; 0 means no mining."""
    batch = 5
    sat, grd = unit_pairs(batch, seed=3)
    full = value(losses.weighted_soft_margin_triplet_loss(sat, grd, hard_top_k=batch))
    exhaustive = value(losses.weighted_soft_margin_triplet_loss(sat, grd))
    assert full == pytest.approx(exhaustive * (batch - 1) / batch, rel=1e-5)
    assert value(losses.weighted_soft_margin_triplet_loss(sat, grd, hard_top_k=0)) == pytest.approx(
        exhaustive, rel=1e-6)


def test_soft_margin_triplet_is_alpha_one():
    sat, grd = unit_pairs(6, seed=11)
    got = value(losses.soft_margin_triplet_loss(sat, grd))
    assert got == pytest.approx(ref_weighted_triplet(sat, grd, alpha=1.0), rel=RTOL, abs=ATOL)
    assert got != pytest.approx(ref_weighted_triplet(sat, grd, alpha=10.0), rel=1e-2)


@pytest.mark.parametrize("batch", (3, 4, 7))
@pytest.mark.parametrize("alpha", (10.0, 2.0))
def test_weighted_quadruplet(batch, alpha):
    sat, grd = unit_pairs(batch, seed=20 + batch)
    got = value(losses.weighted_quadruplet_loss(sat, grd, alpha=alpha))
    assert got == pytest.approx(ref_quadruplet(sat, grd, alpha), rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("margin", (1.0, 1.5))
def test_contrastive(batch, margin):
    sat, grd = unit_pairs(batch, seed=30 + batch)
    got = value(losses.contrastive_loss(sat, grd, margin=margin))
    assert got == pytest.approx(ref_contrastive(sat, grd, margin), rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("margin", (0.5, 1.0))
def test_max_margin_triplet(batch, margin):
    sat, grd = unit_pairs(batch, seed=41 + batch)
    got = value(losses.max_margin_triplet_loss(sat, grd, margin=margin))
    want = ref_max_margin(sat, grd, margin)
    assert want > 0
    assert got == pytest.approx(want, rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("margin,temperature", [(0.5, 0.1), (1.0, 1.0), (0.8, 0.02)])
def test_hard_exemplar_reweighting(batch, margin, temperature):
    sat, grd = unit_pairs(batch, seed=50 + batch)
    got = value(losses.hard_exemplar_reweighting_triplet_loss(sat, grd, margin=margin,
                                                              temperature=temperature))
    want = ref_hard_exemplar(sat, grd, margin, temperature)
    assert want > 0
    assert got == pytest.approx(want, rel=RTOL, abs=ATOL)


def test_hard_exemplar_limits():
    """Large temperature -> plain max-margin mean; tiny temperature -> hardest negative only."""
    sat, grd = unit_pairs(6, seed=5)
    hot = value(losses.hard_exemplar_reweighting_triplet_loss(sat, grd, margin=0.5, temperature=1e6))
    assert hot == pytest.approx(ref_max_margin(sat, grd, 0.5), rel=1e-4)
    cold = value(losses.hard_exemplar_reweighting_triplet_loss(sat, grd, margin=0.5, temperature=1e-4))
    want = []
    for direction in ("g2s", "s2g"):
        per_anchor = []
        for a, row in enumerate(ref_rows(sat, grd, direction)):
            p, q = min(((p, q) for n, (p, q) in enumerate(row) if n != a), key=lambda t: t[1])
            per_anchor.append(max(0.0, 0.5 + p - q))
        want.append(np.mean(per_anchor))
    assert cold == pytest.approx(np.mean(want), rel=1e-4)


# --------------------------------------------------------------------------- #
# gradients through Keras (backend-neutral): one SGD step with learning rate 1
# --------------------------------------------------------------------------- #
def keras_gradient(loss_fn, sat, grd):
    """d loss / d [sat | grd] from one SGD(lr=1) step of a model whose output is [sat | grd]."""
    batch, dim = sat.shape
    w0 = np.concatenate([sat, grd], axis=1).astype(np.float32)
    inputs = keras.Input((batch,))
    dense = keras.layers.Dense(2 * dim, use_bias=False)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([w0])

    def wrapped(y_true, y_pred):
        return loss_fn(y_pred[:, :dim], y_pred[:, dim:])

    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=wrapped)
    model.train_on_batch(np.eye(batch, dtype=np.float32), np.zeros((batch, 2 * dim), np.float32))
    w1 = keras.ops.convert_to_numpy(dense.kernel)
    return (w0 - w1).astype(np.float64)  # output = eye @ W, so d loss / d W = d loss / d output


def finite_difference(ref_fn, sat, grd, eps=1e-6):
    x = np.concatenate([sat, grd], axis=1)
    dim = sat.shape[1]
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = (ref_fn(plus[:, :dim], plus[:, dim:]) - ref_fn(minus[:, :dim], minus[:, dim:])) / (2 * eps)
    return grad


GRADIENT_CASES = {
    "weighted_soft_margin_triplet": (dict(), lambda s, g: ref_weighted_triplet(s, g)),
    "weighted_soft_margin_triplet_hard": (dict(hard_top_k=2), lambda s, g: ref_weighted_triplet_hard(s, g, 2)),
    "weighted_quadruplet": (dict(), lambda s, g: ref_quadruplet(s, g)),
    "contrastive": (dict(margin=1.5), lambda s, g: ref_contrastive(s, g, 1.5)),
    "max_margin_triplet": (dict(margin=0.5), lambda s, g: ref_max_margin(s, g, 0.5)),
}


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_gradients_match_finite_differences(case):
    kwargs, ref_fn = GRADIENT_CASES[case]
    name = case.replace("_hard", "")
    sat, grd = unit_pairs(4, dim=6, seed=60)
    grad = keras_gradient(losses.get_loss(name, **kwargs), sat, grd)
    fd = finite_difference(ref_fn, sat, grd)
    assert np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 1e-3
    np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-4 * np.abs(fd).max())


def test_hard_exemplar_gradient_treats_weights_as_constants():
    sat, grd = unit_pairs(4, dim=6, seed=61)
    weights = ref_hard_exemplar_weights(sat, grd, temperature=0.5)
    grad = keras_gradient(losses.get_loss("hard_exemplar_reweighting_triplet", margin=0.8, temperature=0.5),
                          sat, grd)
    fixed = finite_difference(lambda s, g: ref_hard_exemplar(s, g, 0.8, 0.5, weights=weights), sat, grd)
    full = finite_difference(lambda s, g: ref_hard_exemplar(s, g, 0.8, 0.5), sat, grd)
    assert np.abs(grad).max() > 1e-3
    np.testing.assert_allclose(grad, fixed, rtol=1e-3, atol=1e-4 * np.abs(fixed).max())
    assert np.abs(full - fixed).max() > 1e-3  # the test would see a differentiated weight


def test_diagonal_convention_has_same_gradient():
    sat, grd = unit_pairs(4, dim=6, seed=62)
    released = keras_gradient(losses.get_loss("weighted_soft_margin_triplet"), sat, grd)
    clean = keras_gradient(losses.get_loss("weighted_soft_margin_triplet", exclude_diagonal=True), sat, grd)
    assert np.abs(released).max() > 1e-3
    np.testing.assert_allclose(released, clean, rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------- #
# dtypes, registry, errors
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_float16_inputs_give_float32(name):
    sat, grd = unit_pairs(5, seed=70)
    sat16, grd16 = sat.astype(np.float16), grd.astype(np.float16)
    out = losses.get_loss(name)(keras.ops.convert_to_tensor(sat16), keras.ops.convert_to_tensor(grd16))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert tuple(out.shape) == ()
    # computed in float32 on the float16-rounded values
    want = value(losses.get_loss(name)(sat16.astype(np.float32), grd16.astype(np.float32)))
    assert value(out) == pytest.approx(want, rel=1e-6, abs=1e-7)


def test_get_loss_registry_and_defaults():
    assert losses.LOSS_NAMES == ("weighted_soft_margin_triplet", "weighted_quadruplet", "contrastive",
                                 "soft_margin_triplet", "max_margin_triplet",
                                 "hard_exemplar_reweighting_triplet")
    sat, grd = unit_pairs(5, seed=80)
    assert value(losses.get_loss("weighted_soft_margin_triplet")(sat, grd)) == pytest.approx(
        ref_weighted_triplet(sat, grd, 10.0), rel=RTOL, abs=ATOL)
    assert value(losses.get_loss("weighted_soft_margin_triplet", alpha=3.0, hard_top_k=2)(sat, grd)) == \
        pytest.approx(ref_weighted_triplet_hard(sat, grd, 2, alpha=3.0), rel=RTOL, abs=ATOL)
    assert value(losses.get_loss("contrastive", margin=1.2)(sat, grd)) == pytest.approx(
        ref_contrastive(sat, grd, 1.2), rel=RTOL, abs=ATOL)
    assert losses.get_loss("max_margin_triplet").__name__ == "max_margin_triplet"


def test_get_loss_errors():
    with pytest.raises(ValueError, match="unknown loss 'triplet'.*weighted_soft_margin_triplet.*contrastive"):
        losses.get_loss("triplet")
    with pytest.raises(ValueError, match="no argument.*alhpa.*accepted: alpha, hard_top_k, exclude_diagonal"):
        losses.get_loss("weighted_soft_margin_triplet", alhpa=10.0)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        losses.get_loss("weighted_quadruplet", alpha=0.0)
    with pytest.raises(ValueError, match="margin must be"):
        losses.get_loss("contrastive", margin=-1.0)
    with pytest.raises(ValueError, match="temperature must be"):
        losses.get_loss("hard_exemplar_reweighting_triplet", temperature=0)
    with pytest.raises(ValueError, match="hard_top_k must be"):
        losses.get_loss("weighted_soft_margin_triplet", hard_top_k=1.5)


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_input_errors(name):
    fn = losses.get_loss(name)
    sat, grd = unit_pairs(4, dim=16, seed=90)
    with pytest.raises(ValueError, match=r"batch size 1\b"):
        fn(sat[:1], grd[:1])
    with pytest.raises(ValueError, match=r"satellite \(4, 16\) and ground \(4, 8\)"):
        fn(sat, grd[:, :8])
    with pytest.raises(ValueError, match=r"satellite \(4, 16\) and ground \(3, 16\)"):
        fn(sat, grd[:3])
    with pytest.raises(ValueError, match="rank 2.*\\(4, 16, 1\\)"):
        fn(sat[..., None], grd[..., None])


def test_quadruplet_needs_three_and_top_k_limit():
    sat, grd = unit_pairs(2, seed=91)
    with pytest.raises(ValueError, match="at least 3 pairs.*batch size 2"):
        losses.weighted_quadruplet_loss(sat, grd)
    sat, grd = unit_pairs(4, seed=92)
    with pytest.raises(ValueError, match="hard_top_k=5 exceeds the 4 terms.*batch of size 4"):
        losses.weighted_soft_margin_triplet_loss(sat, grd, hard_top_k=5)
    with pytest.raises(ValueError, match="hard_top_k=4 exceeds the 3 terms.*exclude_diagonal=True"):
        losses.weighted_soft_margin_triplet_loss(sat, grd, hard_top_k=4, exclude_diagonal=True)


@pytest.mark.parametrize("name,kwargs", [(n, {}) for n in losses.LOSS_NAMES]
                         + [("weighted_soft_margin_triplet", {"hard_top_k": 2, "exclude_diagonal": True})])
def test_unknown_batch_size_while_tracing(name, kwargs):
    """Symbolic inputs with batch None (shape inference), then the traced model's value."""
    fn = losses.get_loss(name, **kwargs)
    s_in, g_in = keras.Input((4,)), keras.Input((4,))
    out = keras.layers.Lambda(lambda t: fn(t[0], t[1]))([s_in, g_in])  # infers the output spec
    assert tuple(out.shape) == () and keras.backend.standardize_dtype(out.dtype) == "float32"
    model = keras.Model([s_in, g_in], out)
    sat, grd = unit_pairs(5, seed=94)
    got = float(keras.ops.convert_to_numpy(model.predict_on_batch([sat.astype(np.float32),
                                                                   grd.astype(np.float32)])))
    assert got == pytest.approx(value(fn(sat, grd)), rel=1e-6, abs=1e-7)


def test_all_finite():
    sat, grd = unit_pairs(3, seed=93)
    assert bool(keras.ops.convert_to_numpy(losses.all_finite(sat, grd)))
    bad = grd.copy()
    bad[1, 2] = np.nan
    assert not bool(keras.ops.convert_to_numpy(losses.all_finite(sat, bad)))
    bad[1, 2] = np.inf
    assert not bool(keras.ops.convert_to_numpy(losses.all_finite(bad)))
    with pytest.raises(ValueError, match="at least one tensor"):
        losses.all_finite()
