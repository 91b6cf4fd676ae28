"""Decision rules that turn the similarities of a query to every map tile into one tile.

``argmax`` (the paper's): the most similar tile. ``votes``: each of the ``top_k`` most
similar tiles casts one vote, spread as a Gaussian of ``sigma_m`` metres around its centre;
the query goes to the one among those ``top_k`` tiles whose centre collects the most votes.
On a dense grid the tiles next to the true position all score high, while a false match
far away is a lone peak: votes prefer a cluster of good tiles to a single best one.

Both rules stream over tile batches with bounded memory: :class:`TopTiles` keeps, per
query, the ``top_k`` highest similarities seen so far (O(queries x (top_k + batch))), never
the whole (queries x tiles) matrix. Ties are broken towards the lower tile index in both
the top-k selection and the vote, so that the result does not depend on the batch size.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DECISION_RULES", "DEFAULT_VOTE_TOP_K", "DEFAULT_VOTE_SIGMA_M", "TopTiles", "vote_for_tiles",
           "check_decision", "describe_decision"]

#: Decision rules of :func:`cvmnet_tf.evaluation.localization.localize`.
DECISION_RULES = ("argmax", "votes")
#: Defaults of ``votes``: the 20 most similar tiles vote with a Gaussian of 20 m.
DEFAULT_VOTE_TOP_K = 20
DEFAULT_VOTE_SIGMA_M = 20.0


def check_decision(decision: str, top_k: int, sigma_m: float) -> None:
    """ValueError naming the flag for an unknown ``decision`` or, with ``"votes"``, ``top_k`` < 1
    or a ``sigma_m`` that is not a positive distance in metres."""
    if decision not in DECISION_RULES:
        raise ValueError(f"--decision={decision!r}: must be one of {', '.join(DECISION_RULES)}")
    if decision != "votes":
        return
    if int(top_k) != top_k or top_k < 1:
        raise ValueError(f"--vote_top_k={top_k}: must be an integer >= 1")
    if not (np.isfinite(sigma_m) and sigma_m > 0):
        raise ValueError(f"--vote_sigma_m={sigma_m}: must be a positive distance in metres")


def describe_decision(decision: str, top_k: int, sigma_m: float) -> str:
    """The rule in words, for printed lines, plot titles and ``localization.json``."""
    if decision == "argmax":
        return "the most similar tile"
    return f"votes of the {int(top_k)} most similar tiles, sigma {float(sigma_m):g} m"


class TopTiles:
    """The ``top_k`` most similar tiles per query, accumulated batch by batch.

    ``index`` int64 (Nq, k') and ``similarity`` float32 (Nq, k'), k' = min(top_k, tiles
    seen), each row sorted by decreasing similarity, then increasing tile index.
    """

    def __init__(self, num_queries: int, top_k: int):
        self.top_k = int(top_k)
        self.index = np.zeros((int(num_queries), 0), np.int64)
        self.similarity = np.zeros((int(num_queries), 0), np.float32)

    def update(self, similarity: np.ndarray, tile_index: np.ndarray) -> None:
        """Merge one batch: ``similarity`` float (Nq, B) to tiles ``tile_index`` int (B,)."""
        sim = np.concatenate([self.similarity, np.asarray(similarity, np.float32)], axis=1)
        batch = np.asarray(tile_index, np.int64)
        idx = np.concatenate([self.index, np.broadcast_to(batch, (sim.shape[0], batch.size))], axis=1)
        # Sort key: similarity descending, tile index ascending (lexsort: last key first).
        order = np.lexsort((idx, -sim), axis=1)[:, :self.top_k]
        self.similarity = np.take_along_axis(sim, order, axis=1)
        self.index = np.take_along_axis(idx, order, axis=1)


def vote_for_tiles(top_centres: np.ndarray, sigma_m: float) -> np.ndarray:
    """The column, in each row of ``top_centres`` (float (Nq, k, 2) metres: the centres of a
    query's k most similar tiles, best first), of the tile whose centre collects the most
    Gaussian votes: ``score_i = sum_j exp(-|c_i - c_j|^2 / (2 sigma_m^2))`` over the row's k
    centres. Ties go to the more similar tile (the earlier column). Returns int64 (Nq,)."""
    c = np.asarray(top_centres, np.float64)
    d2 = ((c[:, :, None, :] - c[:, None, :, :]) ** 2).sum(-1)  # (Nq, k, k)
    score = np.exp(-d2 / (2.0 * float(sigma_m) ** 2)).sum(-1)
    return np.argmax(score, axis=1).astype(np.int64)  # first maximum: the more similar tile
