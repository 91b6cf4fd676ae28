"""Metric-learning losses of CVM-Net (Hu et al., CVPR 2018), ``keras.ops`` only.

Every loss takes two descriptor batches and returns a scalar float32 tensor::

    loss = fn(satellite, ground)

``satellite`` and ``ground`` have shape ``(B, dim)``; row ``i`` of one matches row
``i`` of the other (the positive pair), every other row of the other view is a
negative. The descriptors are meant to be l2-normalised, so the distance used by
all losses, ``d[i, j] = 2 - 2 * satellite_i . ground_j`` (:func:`pairwise_distance`),
is the squared Euclidean distance, in ``[0, 4]`` (unitless: descriptor units squared).

Inputs of any float dtype are cast to float32 first, so under the
``mixed_float16`` policy float16 descriptors still give a float32 loss computed in
float32. Nothing here imports TensorFlow: the module runs under every Keras
backend (tested with TensorFlow and JAX).

In-batch conventions (see each function for details):

* "g2s" (ground -> satellite): the anchor is ground ``a``, the positive is
  satellite ``a``, the negatives are the other satellites ``n``:
  ``d_pos = d[a, a]``, ``d_neg = d[n, a]``.
* "s2g" (satellite -> ground): anchor satellite ``a``, negatives the other
  grounds: ``d_neg = d[a, n]``.
* Every loss averages its two directional losses: ``(L_g2s + L_s2g) / 2``.

Checks: rank 2, equal shapes and a batch size of at least 2 (3 for the
quadruplet loss) are checked from the static shapes, which costs nothing. A batch
whose size is unknown while tracing (``None``) is not checked. Non-finite inputs
are NOT checked inside the losses: doing so needs a host synchronisation (a
Python ``if`` on a tensor value) on every step, which TensorFlow graphs and JAX
jit cannot do cheaply. Use :func:`all_finite` instead: it returns a scalar
boolean tensor (no host sync) that the training loop can fetch with its logged
metrics and act on.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers

from keras import ops

__all__ = [
    "LOSS_NAMES",
    "all_finite",
    "contrastive_loss",
    "check_loss_arguments",
    "get_loss",
    "loss_parameters",
    "min_batch_size",
    "hard_exemplar_reweighting_triplet_loss",
    "max_margin_triplet_loss",
    "pairwise_distance",
    "soft_margin_triplet_loss",
    "weighted_quadruplet_loss",
    "weighted_soft_margin_triplet_loss",
]

_MODULE = "cvmnet_tf.losses"


# --------------------------------------------------------------------------- #
# input handling
# --------------------------------------------------------------------------- #
def _static_dim(d):
    if d is None:
        return None
    try:  # a symbolic dimension (JAX shape polymorphism) is not an int: unknown
        return int(d)
    except Exception:  # noqa: BLE001 - backend-specific symbolic-dimension errors
        return None


def _static_shape(x):
    try:
        dims = list(x.shape)
    except (TypeError, ValueError):  # unknown rank while tracing
        return None
    return tuple(_static_dim(d) for d in dims)


def _prepare(satellite, ground, loss_name, min_batch=2):
    """Cast both inputs to float32 and check rank / shapes / batch size statically."""
    if satellite is None or ground is None:
        raise ValueError(f"{_MODULE}.{loss_name}: satellite and ground descriptors are required, got None")
    sat = ops.cast(ops.convert_to_tensor(satellite), "float32")
    grd = ops.cast(ops.convert_to_tensor(ground), "float32")
    s_shape, g_shape = _static_shape(sat), _static_shape(grd)
    for name, shape in (("satellite", s_shape), ("ground", g_shape)):
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"{_MODULE}.{loss_name}: {name} descriptors must have rank 2 (batch, dim), "
                f"got shape {shape}")
    if s_shape is not None and g_shape is not None:
        mismatch = any(a is not None and b is not None and a != b for a, b in zip(s_shape, g_shape))
        if mismatch:
            raise ValueError(
                f"{_MODULE}.{loss_name}: satellite and ground descriptors must have the same shape "
                f"(row i of one matches row i of the other), got satellite {s_shape} and ground {g_shape}")
    batch = None
    for shape in (s_shape, g_shape):
        if shape is not None and shape[0] is not None:
            batch = shape[0]
    if batch is not None and batch < min_batch:
        raise ValueError(
            f"{_MODULE}.{loss_name}: needs a batch of at least {min_batch} pairs "
            f"(in-batch negatives), got batch size {batch}")
    return sat, grd, batch


# --------------------------------------------------------------------------- #
# hyper-parameter checks (shared by the losses and get_loss)
# --------------------------------------------------------------------------- #
def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_hyperparameters(loss_name, **params):
    for key, value in params.items():
        where = f"{_MODULE}.{loss_name}: argument {key}"
        if key in ("alpha", "temperature"):
            if not _is_real(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{where} must be a finite number > 0, got {value!r}")
        elif key == "margin":
            if not _is_real(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{where} must be a finite number >= 0, got {value!r}")
        elif key == "hard_top_k":
            if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                                      or value < 0):
                raise ValueError(f"{where} must be None, 0 (no mining) or a positive integer, got {value!r}")
        elif key == "exclude_diagonal":
            if not isinstance(value, bool):
                raise ValueError(f"{where} must be True or False, got {value!r}")


# --------------------------------------------------------------------------- #
# building blocks
# --------------------------------------------------------------------------- #
def pairwise_distance(satellite, ground):
    """Cross-view distance matrix ``d = 2 - 2 * satellite @ ground^T``.

    Args:
        satellite: (B, dim) satellite descriptors (any float dtype; cast to float32).
        ground: (B, dim) ground descriptors, same shape.

    Returns:
        float32 (B, B) tensor, ``d[i, j] = 2 - 2 * satellite_i . ground_j``: the squared
        Euclidean distance between satellite ``i`` and ground ``j`` when both are unit
        vectors (range [0, 4]). Rows index satellites, columns grounds, as the
        released code's ``dist_array``.
    """
    sat, grd, _ = _prepare(satellite, ground, "pairwise_distance", min_batch=1)
    return _distance(sat, grd)


def _distance(sat, grd):
    return 2.0 - 2.0 * ops.matmul(sat, ops.transpose(grd))


def _directional_differences(dist):
    """``d_pos(anchor) - d_neg(anchor, n)`` for both directions, row = anchor.

    Returns (g2s, s2g), each (B, B): ``g2s[a, n] = d[a, a] - d[n, a]`` (ground anchor a,
    satellite negative n) and ``s2g[a, n] = d[a, a] - d[a, n]`` (satellite anchor a,
    ground negative n). The diagonal of both is exactly 0.
    """
    pos = ops.expand_dims(ops.diagonal(dist), 1)
    return pos - ops.transpose(dist), pos - dist


def _off_diagonal_mask(dist):
    n = ops.shape(dist)[0]
    r = ops.arange(n)
    return ops.cast(ops.not_equal(ops.expand_dims(r, 1), ops.expand_dims(r, 0)), "float32")


def _batch_float(dist):
    return ops.cast(ops.shape(dist)[0], "float32")


def all_finite(*tensors):
    """Scalar boolean tensor: True when every element of every tensor is finite.

    A cheap guard for the training loop (no host synchronisation: the result stays
    on the device until the loop fetches it, e.g. with its logged loss). The losses
    themselves do not check finiteness (see the module docstring).
    """
    if not tensors:
        raise ValueError(f"{_MODULE}.all_finite: give at least one tensor")
    flags = [ops.all(ops.isfinite(ops.convert_to_tensor(t))) for t in tensors]
    out = flags[0]
    for f in flags[1:]:
        out = ops.logical_and(out, f)
    return out


# --------------------------------------------------------------------------- #
# losses
# --------------------------------------------------------------------------- #
def weighted_soft_margin_triplet_loss(satellite, ground, alpha=10.0, hard_top_k=None,
                                      exclude_diagonal=False):
    """Weighted soft-margin triplet loss (paper Eq. 5), exhaustive in-batch or hard-mined.

    Per triplet: ``log(1 + exp(alpha * (d_pos - d_neg)))`` (computed as a stable
    softplus), ``d`` from :func:`pairwise_distance`, in both directions (g2s, s2g);
    ``loss = (L_g2s + L_s2g) / 2``.

    Exhaustive mode (``hard_top_k`` None or 0), as the released ``compute_loss``:
    each directional loss is the sum over ALL ``B * B`` entries of its (B, B) term
    matrix divided by ``B * (B - 1)``. The ``B`` diagonal entries (anchor compared
    with its own positive) are ``log(1 + e^0) = log 2`` each: a constant with no
    gradient, so the released value is the paper's ``M x 2(M-1)`` mean plus
    ``log(2) / (B - 1)``. ``exclude_diagonal=True`` drops the diagonal and gives the
    paper's clean mean over the ``B * (B - 1)`` triplets of each direction (same
    gradient, value lower by exactly ``log(2) / (B - 1)``).
    The released code divides by its configured batch size (12); here the actual
    batch size ``B`` is used (identical for full batches).

    Hard-mining mode (``hard_top_k=k``, the code's ``batch_hard_count``): per anchor
    (each ground for g2s, each satellite for s2g) keep the ``k`` largest terms of
    its row and average over all ``B * k`` kept terms, then average the two
    directions. As in the code the row includes the diagonal ``log 2`` term, which is
    selected whenever fewer than ``k`` negatives are harder than it; with
    ``exclude_diagonal=True`` the diagonal is never selected (``k <= B - 1``).

    Args:
        satellite, ground: (B, dim) descriptors (l2-normalised), any float dtype.
        alpha: the weight (10 in the paper and code; 1 gives the plain soft margin).
        hard_top_k: None or 0 for exhaustive; k >= 1 for in-batch hard mining
            (k <= B, or k <= B - 1 with exclude_diagonal).
        exclude_diagonal: False (default) reproduces the released value; True the
            paper's clean mean.

    Returns:
        float32 scalar (nats).
    """
    name = "weighted_soft_margin_triplet_loss"
    _check_hyperparameters(name, alpha=alpha, hard_top_k=hard_top_k, exclude_diagonal=exclude_diagonal)
    sat, grd, batch = _prepare(satellite, ground, name)
    dist = _distance(sat, grd)
    directions = _directional_differences(dist)
    alpha = float(alpha)
    if not hard_top_k:
        offdiag = _off_diagonal_mask(dist)
        b = _batch_float(dist)
        pair_n = b * (b - 1.0)
        losses = []
        for diff in directions:
            terms = ops.softplus(alpha * diff)
            if exclude_diagonal:
                terms = terms * offdiag
            losses.append(ops.sum(terms) / pair_n)
        return (losses[0] + losses[1]) / 2.0

    k = int(hard_top_k)
    limit = None if batch is None else (batch - 1 if exclude_diagonal else batch)
    if limit is not None and k > limit:
        raise ValueError(
            f"{_MODULE}.{name}: argument hard_top_k={k} exceeds the {limit} terms per anchor of a batch "
            f"of size {batch}" + (" with exclude_diagonal=True" if exclude_diagonal else ""))
    losses = []
    for diff in directions:
        terms = ops.softplus(alpha * diff)
        if exclude_diagonal:
            # -1 < 0 <= every softplus term: the diagonal is never among the top k.
            offdiag = _off_diagonal_mask(dist)
            terms = terms * offdiag - (1.0 - offdiag)
        top, _ = ops.top_k(terms, k)
        losses.append(ops.mean(top))
    return (losses[0] + losses[1]) / 2.0


def soft_margin_triplet_loss(satellite, ground, alpha=1.0, hard_top_k=None, exclude_diagonal=False):
    """Soft-margin triplet loss ``log(1 + exp(d_pos - d_neg))`` (paper's alpha = 1 baseline).

    Exactly :func:`weighted_soft_margin_triplet_loss` with ``alpha=1`` by default (same
    in-batch conventions, diagonal convention and hard mining). Returns a float32 scalar.
    """
    return weighted_soft_margin_triplet_loss(satellite, ground, alpha=alpha, hard_top_k=hard_top_k,
                                             exclude_diagonal=exclude_diagonal)


def weighted_quadruplet_loss(satellite, ground, alpha=10.0):
    """Weighted soft-margin quadruplet loss (paper Eq. 6; Chen et al. CVPR 2017 form).

    A quadruplet is (anchor ``i``, its positive, a negative ``j``, and a second
    negative pair not involving ``i``). Per quadruplet::

        log(1 + exp(alpha * (d_pos - d_neg))) + log(1 + exp(alpha * (d_pos - d_neg2)))

    with ``d_pos = d[i, i]``; for g2s (ground anchor ``i``) ``d_neg = d[j, i]``, for s2g
    (satellite anchor ``i``) ``d_neg = d[i, j]``; ``d_neg2`` is the distance of a
    non-matching cross-view pair ``(satellite j, ground k)`` or ``(satellite k,
    ground j)`` with ``i, j, k`` pairwise different (both sets are the same, so the
    second term does not depend on the direction).

    In-batch sampling is exhaustive and deterministic: every ordered triple of
    distinct indices ``(i, j, k)`` is one quadruplet; each directional loss is the
    mean over those ``B (B-1) (B-2)`` quadruplets (no diagonal terms), and
    ``loss = (L_g2s + L_s2g) / 2``. Equivalently: mean of the triplet terms over the
    ``B (B-1)`` (anchor, negative) pairs plus mean of the second terms over the
    ``B (B-1) (B-2)`` (anchor, negative pair) combinations. Memory is O(B^3).

    The released code has no quadruplet loss; this is a reconstruction from the
    paper and Chen et al. (the paper's exact sampling is not published).

    Args:
        satellite, ground: (B, dim) descriptors, B >= 3.
        alpha: weight of both soft-margin terms (10 as the triplet loss).

    Returns:
        float32 scalar (nats).
    """
    name = "weighted_quadruplet_loss"
    _check_hyperparameters(name, alpha=alpha)
    sat, grd, _ = _prepare(satellite, ground, name, min_batch=_MIN_BATCH["weighted_quadruplet"])
    alpha = float(alpha)
    dist = _distance(sat, grd)
    b = _batch_float(dist)
    offdiag = _off_diagonal_mask(dist)
    pair_n = b * (b - 1.0)
    triplet = []
    for diff in _directional_differences(dist):
        triplet.append(ops.sum(ops.softplus(alpha * diff) * offdiag) / pair_n)
    # second term: anchor i (its d_pos) against every off-diagonal d[j, k] with j, k != i
    pos = ops.diagonal(dist)
    diff2 = ops.reshape(pos, (-1, 1, 1)) - ops.expand_dims(dist, 0)  # (i, j, k)
    # mask[i, j, k] = (j != k) & (i != j) & (i != k)
    mask = (ops.expand_dims(offdiag, 0) * ops.expand_dims(offdiag, 2) * ops.expand_dims(offdiag, 1))
    second = ops.sum(ops.softplus(alpha * diff2) * mask) / (pair_n * (b - 2.0))
    return (triplet[0] + triplet[1]) / 2.0 + second


def contrastive_loss(satellite, ground, margin=1.0):
    """Contrastive loss (Hadsell et al. 2006) over all in-batch cross-view pairs.

    With the Euclidean distance ``e = sqrt(d)`` (``d`` clamped to >= 1e-12 inside the
    square root so the gradient stays finite)::

        loss = mean_i d[i, i] + mean_{i != j} max(0, margin - e[i, j]) ** 2

    i.e. the positive pairs and the ``B (B-1)`` negative pairs are each averaged
    (so the negatives do not outweigh the positives by B - 1). The set of negative
    pairs is the same in both directions, so the two directional losses coincide.

    Args:
        satellite, ground: (B, dim) descriptors.
        margin: in Euclidean distance units (unit vectors are 0..2 apart), >= 0.

    Returns:
        float32 scalar (squared distance units).
    """
    name = "contrastive_loss"
    _check_hyperparameters(name, margin=margin)
    sat, grd, _ = _prepare(satellite, ground, name)
    dist = _distance(sat, grd)
    b = _batch_float(dist)
    offdiag = _off_diagonal_mask(dist)
    positive = ops.mean(ops.diagonal(dist))
    euclid = ops.sqrt(ops.maximum(dist, 1e-12))
    hinge = ops.relu(float(margin) - euclid)
    negative = ops.sum(ops.square(hinge) * offdiag) / (b * (b - 1.0))
    return positive + negative


def max_margin_triplet_loss(satellite, ground, margin=0.2):
    """Max-margin (hinge) triplet loss ``max(0, margin + d_pos - d_neg)``.

    Exhaustive in-batch: every anchor against its ``B - 1`` negatives, in both
    directions; each directional loss is the mean over its ``B (B-1)`` triplets
    (diagonal excluded), ``loss = (L_g2s + L_s2g) / 2``.

    Args:
        satellite, ground: (B, dim) descriptors.
        margin: in squared-distance units (``d`` in [0, 4] for unit vectors), >= 0.

    Returns:
        float32 scalar.
    """
    name = "max_margin_triplet_loss"
    _check_hyperparameters(name, margin=margin)
    sat, grd, _ = _prepare(satellite, ground, name)
    dist = _distance(sat, grd)
    b = _batch_float(dist)
    offdiag = _off_diagonal_mask(dist)
    losses = [ops.sum(ops.relu(float(margin) + diff) * offdiag) / (b * (b - 1.0))
              for diff in _directional_differences(dist)]
    return (losses[0] + losses[1]) / 2.0


def hard_exemplar_reweighting_triplet_loss(satellite, ground, margin=0.2, temperature=0.1):
    """Max-margin triplet loss with softmax re-weighting of the in-batch negatives.

    For anchor ``a`` and negative ``n != a`` (both directions as the other losses)::

        t[a, n] = max(0, margin + d_pos(a) - d_neg(a, n))
        w[a, n] = softmax_{n != a}( -d_neg(a, n) / temperature )
        L_dir   = mean_a sum_{n != a} w[a, n] * t[a, n]

    Harder negatives (smaller ``d_neg``) get larger weights; the weights of each anchor
    sum to 1 over its ``B - 1`` negatives and are computed over all of them (also those
    whose hinge is already 0). The weights are treated as constants
    (``stop_gradient``): the gradient only flows through the hinge terms, so the
    re-weighting selects which triplets to learn from rather than being a loss term of
    its own. ``loss = (L_g2s + L_s2g) / 2``. As ``temperature`` grows this tends to
    :func:`max_margin_triplet_loss`; as it shrinks, to batch-hard mining.

    Args:
        satellite, ground: (B, dim) descriptors.
        margin: hinge margin in squared-distance units, >= 0.
        temperature: softmax temperature in squared-distance units, > 0.

    Returns:
        float32 scalar.
    """
    name = "hard_exemplar_reweighting_triplet_loss"
    _check_hyperparameters(name, margin=margin, temperature=temperature)
    sat, grd, _ = _prepare(satellite, ground, name)
    dist = _distance(sat, grd)
    offdiag = _off_diagonal_mask(dist)
    neg_dists = (ops.transpose(dist), dist)  # row = anchor: g2s d[n, a], s2g d[a, n]
    losses = []
    for diff, neg in zip(_directional_differences(dist), neg_dists):
        hinge = ops.relu(float(margin) + diff)
        # the diagonal (the positive itself) gets logit -1e30: weight exactly 0
        logits = ops.where(offdiag > 0, -neg / float(temperature), -1e30)
        weights = ops.stop_gradient(ops.softmax(logits, axis=-1))
        losses.append(ops.mean(ops.sum(weights * hinge * offdiag, axis=-1)))
    return (losses[0] + losses[1]) / 2.0


# --------------------------------------------------------------------------- #
# registry
# --------------------------------------------------------------------------- #
_LOSSES = {
    "weighted_soft_margin_triplet": weighted_soft_margin_triplet_loss,
    "weighted_quadruplet": weighted_quadruplet_loss,
    "contrastive": contrastive_loss,
    "soft_margin_triplet": soft_margin_triplet_loss,
    "max_margin_triplet": max_margin_triplet_loss,
    "hard_exemplar_reweighting_triplet": hard_exemplar_reweighting_triplet_loss,
}
LOSS_NAMES = tuple(_LOSSES)
#: Pairs a batch needs for a loss's in-batch negatives (2 unless listed).
_MIN_BATCH = {"weighted_quadruplet": 3}  # a quadruplet needs the anchor's pair and two other pairs


def _loss_function(name):
    if name not in _LOSSES:
        raise ValueError(f"{_MODULE}.get_loss: unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    return _LOSSES[name]


def loss_parameters(name) -> tuple:
    """The hyper-parameters loss ``name`` takes (its signature after ``satellite, ground``),
    e.g. ``("alpha", "hard_top_k", "exclude_diagonal")``. The training options are checked
    against these, so a ``--margin`` given to a loss without a margin is refused."""
    return tuple(inspect.signature(_loss_function(name)).parameters)[2:]


def min_batch_size(name) -> int:
    """The fewest pairs per batch loss ``name`` works with (its in-batch negatives)."""
    _loss_function(name)
    return _MIN_BATCH.get(name, 2)


def check_loss_arguments(name, **kwargs) -> None:
    """Raise ValueError for an unknown loss, an argument it does not take (listing the
    accepted ones) or an invalid value."""
    fn = _loss_function(name)
    params = loss_parameters(name)
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(
            f"{_MODULE}.get_loss: loss {name!r} has no argument(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(params) or 'none'}")
    _check_hyperparameters(fn.__name__, **kwargs)


def get_loss(name, **kwargs):
    """Return ``fn(satellite, ground) -> float32 scalar`` for a loss name.

    Args:
        name: one of :data:`LOSS_NAMES`.
        **kwargs: the loss's hyper-parameters (e.g. ``alpha``, ``hard_top_k``,
            ``exclude_diagonal``, ``margin``, ``temperature``); checked now
            (:func:`check_loss_arguments`), so a typo or a bad value fails here rather
            than in the first training step.

    Raises:
        ValueError: unknown name (lists the choices), unknown argument (lists the
            accepted ones) or invalid value.
    """
    check_loss_arguments(name, **kwargs)
    fn = _loss_function(name)
    loss = functools.partial(fn, **kwargs)
    functools.update_wrapper(loss, fn)
    loss.__name__ = name
    return loss
