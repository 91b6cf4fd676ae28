"""Published numbers (percent) to compare a run against, and a Markdown table.

Sources (see REFERENCE "Published numbers"):

- "CVM-Net Table 1": Hu et al. CVPR 2018, recall@1% on Vo & Hays ("cropped")
  and CVUSA ("panorama").
- "CVM-Net Table 2": CVUSA recall@1%, AlexNet / VGG16 backbones, weighted
  soft-margin triplet vs weighted quadruplet loss.
- "CVM-Net text": contrastive loss on CVUSA; localization experiment (Fig. 8).
- "later re-report": CVM-Net re-evaluated at top-1/5/10/1% in later papers
  (two different CVUSA rows circulate; which paper reports which is not
  verified here).
- SAFA (Shi et al. NeurIPS 2019) and Sample4Geo (Deuser et al. ICCV 2023), the
  state of the art for scale; their top-1% cut-offs differ from CVM-Net's.

Top-1% cut-off rules (a query counts when rank < K, N = database size):
"cvm_net" K = int(0.01 N) + 1 (CVM-Net, OriCNN); "safa" K = int(0.01 N);
"sample4geo" K = N // 100.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional

__all__ = ["PublishedResult", "PUBLISHED", "LOCALIZATION", "NUM_CVUSA_DISTRACTORS", "CUTOFF_RULE_TEXT",
           "find_published", "comparison_table", "normalize_name"]


@dataclasses.dataclass(frozen=True)
class PublishedResult:
    """One published row; recalls in percent (None where not reported)."""

    source: str
    model: str            # cvm_net_i, cvm_net_ii, siamese_alexnet, siamese_vgg, workman, vo_hays, zhai, safa, sample4geo
    dataset: str          # cvusa, vohays, cvact_val, cvact_test
    backbone: Optional[str] = None   # vgg16, alexnet (None: not stated / not applicable)
    loss: Optional[str] = None       # weighted_soft_margin_triplet, weighted_quadruplet, contrastive
    recall_at_1: Optional[float] = None
    recall_at_5: Optional[float] = None
    recall_at_10: Optional[float] = None
    recall_at_1_percent: Optional[float] = None
    cutoff_rule: str = "cvm_net"
    note: str = ""


_T1 = "CVM-Net Table 1"
_T2 = "CVM-Net Table 2"
_TXT = "CVM-Net text"
_RE = "later re-report"
_WT = "weighted_soft_margin_triplet"
_WQ = "weighted_quadruplet"


def _t1(model, backbone, vohays, cvusa, loss=None):
    rows = []
    if vohays is not None:
        rows.append(PublishedResult(_T1, model, "vohays", backbone, loss, recall_at_1_percent=vohays))
    if cvusa is not None:
        rows.append(PublishedResult(_T1, model, "cvusa", backbone, loss, recall_at_1_percent=cvusa))
    return rows


PUBLISHED: List[PublishedResult] = [
    *_t1("siamese_alexnet", "alexnet", 1.1, 4.7),
    *_t1("siamese_vgg", "vgg16", 1.3, 9.9),
    *_t1("workman", None, 15.4, 34.3),
    *_t1("vo_hays", None, 59.9, 63.7),
    *_t1("zhai", None, None, 43.2),
    *_t1("cvm_net_i", "vgg16", 67.9, 91.4, _WT),
    *_t1("cvm_net_ii", "vgg16", 66.6, 87.2, _WT),
    PublishedResult(_T2, "cvm_net_i", "cvusa", "alexnet", _WT, recall_at_1_percent=65.4),
    PublishedResult(_T2, "cvm_net_i", "cvusa", "alexnet", _WQ, recall_at_1_percent=73.7),
    PublishedResult(_T2, "cvm_net_i", "cvusa", "vgg16", _WT, recall_at_1_percent=91.4),
    PublishedResult(_T2, "cvm_net_i", "cvusa", "vgg16", _WQ, recall_at_1_percent=89.9),
    PublishedResult(_T2, "cvm_net_ii", "cvusa", "alexnet", _WT, recall_at_1_percent=63.0),
    PublishedResult(_T2, "cvm_net_ii", "cvusa", "alexnet", _WQ, recall_at_1_percent=83.9),
    PublishedResult(_T2, "cvm_net_ii", "cvusa", "vgg16", _WT, recall_at_1_percent=87.2),
    PublishedResult(_T2, "cvm_net_ii", "cvusa", "vgg16", _WQ, recall_at_1_percent=88.7),
    PublishedResult(_TXT, "cvm_net_i", "cvusa", "vgg16", "contrastive", recall_at_1_percent=87.8),
    PublishedResult(_TXT, "cvm_net_ii", "cvusa", "vgg16", "contrastive", recall_at_1_percent=79.8),
    PublishedResult(_RE, "cvm_net_i", "cvusa", "vgg16", _WT, 22.47, 49.98, 63.18, 93.62,
                    note="re-reported row A"),
    PublishedResult(_RE, "cvm_net_i", "cvusa", "vgg16", _WT, 18.80, 44.42, 57.47, 91.54,
                    note="re-reported row B"),
    PublishedResult(_RE, "cvm_net_i", "cvact_val", "vgg16", _WT, 20.15, 45.00, 56.87, 87.57),
    PublishedResult("SAFA (Shi et al. 2019)", "safa", "cvusa", None, None, 89.84, 96.93, 98.14, 99.64,
                    cutoff_rule="safa"),
    PublishedResult("SAFA (Shi et al. 2019)", "safa", "cvact_val", None, None, 81.03, 92.80, 94.84, 98.17,
                    cutoff_rule="safa"),
    PublishedResult("Sample4Geo (Deuser et al. 2023)", "sample4geo", "cvusa", None, None,
                    98.68, 99.68, 99.78, 99.87, cutoff_rule="sample4geo"),
    PublishedResult("Sample4Geo (Deuser et al. 2023)", "sample4geo", "cvact_val", None, None,
                    90.81, 96.74, 97.48, 98.77, cutoff_rule="sample4geo"),
]

#: Paper section 5.5 / Fig. 8 (Singapore map, CVM-Net-I trained on CVUSA).
LOCALIZATION = {"recall_within_100m_percent": 67.1, "mean_error_m": 676.7}

#: Extra satellite images added to the 8,884 CVUSA test database in paper Fig. 6.
NUM_CVUSA_DISTRACTORS = 15643

CUTOFF_RULE_TEXT = {
    "cvm_net": "rank < int(0.01 N) + 1 (CVM-Net/OriCNN)",
    "safa": "rank < int(0.01 N) (SAFA)",
    "sample4geo": "rank < N // 100 (Sample4Geo)",
}

_ALIASES = {
    "cvm_net_1": "cvm_net_i", "cvmnet_i": "cvm_net_i", "cvm_net_2": "cvm_net_ii", "cvmnet_ii": "cvm_net_ii",
    "vgg": "vgg16", "vgg_16": "vgg16", "siamese_vgg16": "siamese_vgg",
    "act_val": "cvact_val", "cvact": "cvact_val", "act_test": "cvact_test",
    "vo_and_hays": "vo_hays", "vohays_cropped": "vohays",
    "triplet": _WT, "weighted_triplet": _WT, "quadruplet": _WQ,
}


def normalize_name(name: Optional[str]) -> Optional[str]:
    """'CVM-Net-I' -> 'cvm_net_i', 'VGG16' -> 'vgg16', 'CVACT' -> 'cvact_val'."""
    if name is None:
        return None
    n = str(name).strip().lower().replace("-", "_").replace(" ", "_").replace("&", "and")
    return _ALIASES.get(n, n)


def find_published(model: Optional[str] = None, dataset: Optional[str] = None, backbone: Optional[str] = None,
                   loss: Optional[str] = None) -> List[PublishedResult]:
    """Published rows matching every given field (a row with no backbone/loss matches any)."""
    model, dataset, backbone, loss = map(normalize_name, (model, dataset, backbone, loss))
    out = []
    for r in PUBLISHED:
        if model is not None and r.model != model:
            continue
        if dataset is not None and r.dataset != dataset:
            continue
        if backbone is not None and r.backbone is not None and r.backbone != backbone:
            continue
        if loss is not None and r.loss is not None and r.loss != loss:
            continue
        out.append(r)
    return out


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}"


def comparison_table(results: Mapping[str, float], model: str, dataset: str, backbone: Optional[str] = None,
                     loss: Optional[str] = None, include_state_of_the_art: bool = False,
                     label: str = "this run") -> str:
    """Markdown table of our recalls next to the matching published ones.

    Args:
      results: dict from :func:`cvmnet_tf.evaluation.evaluate_retrieval`
        (fractions 0..1; keys "recall@1", "recall@5", "recall@10", "recall@1%",
        optional "num_database" and "top_percent_k").
      model, dataset, backbone, loss: the published setting(s) to match.
      include_state_of_the_art: also list SAFA / Sample4Geo on that dataset.

    Returns:
      Markdown text: a table in percent, then the top-1% cut-off rule of each row.

    Raises:
      ValueError when no published row matches.
    """
    rows = find_published(model, dataset, backbone, loss)
    if not rows:
        raise ValueError(f"no published numbers for model={model!r}, dataset={dataset!r}, backbone={backbone!r}, "
                         f"loss={loss!r}; known models: {sorted({r.model for r in PUBLISHED})}, "
                         f"datasets: {sorted({r.dataset for r in PUBLISHED})}")
    if include_state_of_the_art:
        rows += [r for m in ("safa", "sample4geo") for r in find_published(m, dataset)]
    pct = "recall@1%"

    def ours(key):
        v = results.get(key)
        return None if v is None else 100.0 * float(v)

    n_db = results.get("num_database")
    k = results.get("top_percent_k")
    ours_rule = CUTOFF_RULE_TEXT["cvm_net"]
    if n_db is not None and k is not None:
        ours_rule += f"; N = {int(n_db)}, K = {int(k)}"
    setting = ", ".join(x for x in (normalize_name(model), normalize_name(backbone), normalize_name(loss),
                                    normalize_name(dataset)) if x)
    lines = [
        "| Setting | Source | R@1 | R@5 | R@10 | R@1% | top-1% cut-off |",
        "|---|---|---|---|---|---|---|",
        f"| {setting} | {label} | {_fmt(ours('recall@1'))} | {_fmt(ours('recall@5'))} | "
        f"{_fmt(ours('recall@10'))} | {_fmt(ours(pct))} | {ours_rule} |",
    ]
    for r in rows:
        name = ", ".join(x for x in (r.model, r.backbone, r.loss, r.dataset) if x)
        src = r.source + (f" ({r.note})" if r.note else "")
        lines.append(f"| {name} | {src} | {_fmt(r.recall_at_1)} | {_fmt(r.recall_at_5)} | {_fmt(r.recall_at_10)} | "
                     f"{_fmt(r.recall_at_1_percent)} | {CUTOFF_RULE_TEXT[r.cutoff_rule]} |")
    lines.append("")
    lines.append("Recalls in percent, ground -> satellite. A query counts at top-1% when fewer than K database "
                 "images are strictly closer than its true match; K per row as stated (N = database size).")
    return "\n".join(lines) + "\n"


def as_dicts() -> List[Dict[str, object]]:
    """All published rows as plain dicts (for JSON)."""
    return [dataclasses.asdict(r) for r in PUBLISHED]
