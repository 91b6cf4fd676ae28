"""Published numbers (percent) to compare a run against, and a Markdown table.

Sources:

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
- "U1652 leaderboard": the maintainers' leaderboard of University-1652 (Zheng,
  Wei, Yang, ACM MM 2020), file ``State-of-the-art/README.md`` of
  github.com/layumi/University1652-Baseline (stored version at commit
  01e7c1e30c5d04cf9354c44b5f7e5cf921fa2f62, read 2026-11-23). From it we took
  the University-1652 drone <-> satellite rows of the loss baselines
  (R@1 and AP per direction, dataset "university1652", ``task`` set), and the
  Siam-FCANet row (Cai et al. ICCV 2019, "Hard Exemplar Reweighting triplet
  loss") on CVUSA: top-1% only, 98.3. The same page lists CVM-Net as
  18.80/44.42/57.47/91.54 on CVUSA (our "re-reported row B") and
  20.15/45.00/56.87/87.57 on CVACT_val, and SAFA as above: verified there.
  NOT verified: whether these University-1652 rows are identical to the
  paper's table (the paper PDF was not available here; the instance-loss row
  may be a later re-run of the released code), and whether Cai et al. report
  Vo & Hays or R@1 numbers (not on that page; left out). Siam-FCANet's top-1%
  cut-off rule is not known ("unstated").

- "TransGeo issue #40": VIGOR same-area, TransGeo (Zhu, Shah, Chen, CVPR 2022), as
  re-reported in github Jeff-Zilence/TransGeo2022 issue #40 (a user quoting the paper:
  "top1: 61.48, top5: 87.54, top10: 91.88, and top1%: 99.56"; issue #16 repeats R@1 61.48
  as the paper's). Second-hand; no hit rate quoted. TransGeo's top-1% cut-off is
  ``M // 100`` (its ``train.py``).
- "HyperAI (Papers with Code mirror)": Sample4Geo's VIGOR rows (Deuser, Habel, Oswald, ICCV
  2023), as re-reported on https://beta.hyper.ai/cn/papers/2303.11851 (read 2026-12-02 through
  the search tool's stored copy; its section "基准测试" (benchmarks) lists the Papers with Code
  leaderboard entries of the paper). Cross-area ("image-based-localization-on-vigor-cross-area"):
  R@1 61.70, R@5 83.50, R@10 88.00, R@1% 98.17, hit rate 69.87. Same-area
  ("image-based-localization-on-vigor-same-area"): R@1 77.86, R@1% 99.61, hit rate 89.82; the
  stored copy is cut off after "99.61", so R@5 / R@10 were not read (left None). Second-hand
  (not the paper's own table). Cross-check: the same page lists Sample4Geo's CVUSA and
  CVACT_val rows exactly as the rows above (98.68/99.68/99.78/99.87 and 90.81/96.74/97.48/98.77);
  the released weights' file names quoted in github halisyucel/Sample4Geo ``PROGRESS.md``
  (commit 0b4860ada94505c4385a363ec831d95543c2a668) are ``weights_e40_0.7786.pth`` for VIGOR
  same-area (R@1 77.86 agrees) and ``weights_e40_0.6109.pth`` for cross-area (61.09, not the
  reported 61.70: no cross-check for the cross-area row). A third-party planning note in a GitHub
  repository (search-index file id 53938286187; the index does not name the repository) lists the
  same same-area R@1 77.86 / hit rate 89.82, and TransGeo same-area hit rate 73.09: that number is
  NOT added (the note gives no source and its cross-area figures, "~40" for Sample4Geo, contradict
  the row above). Sample4Geo's VIGOR cut-off is
  ``M // 100`` and its hit rate VIGOR's rule (:mod:`cvmnet_tf.evaluation.vigor_metrics`).
- NOT available here (the search tool's stored web pages hold only each page's opening
  (about 2,000 characters), never the tables of a paper; the repositories' READMEs have no
  result tables; GitHub issues quote no further numbers): the VIGOR paper's retrieval table
  (Zhu, Yang, Chen, CVPR 2021: Siamese-VGG, SAFA, SAFA+Mining, VIGOR; same-area and
  cross-area, R@1/5/10/1% and hit rate), TransGeo's cross-area row and its hit rates, Sample4Geo's
  same-area R@5 / R@10, DSM's limited-FoV tables (Shi et al., CVPR 2020: CVUSA and CVACT at FoV
  360/180/90/70 with unknown orientation; its abstract gives only ratios: top-1 recall on CVUSA
  x3.3 for panoramas with unknown orientation and x6 for 180-degree FoV images with unknown
  orientation), TransGeo's FoV rows (CVUSA at FoV 90 / 70), and the tables of later papers that re-report them (ConGeo,
  arXiv 2403.13965, ECCV 2024: CVUSA / CVACT / VIGOR under North-aligned, unknown orientation
  and FoV 180/90/70; SinGeo, arXiv 2603.09377; CV-Cities, arXiv 2411.12431: CVUSA / CVACT /
  VIGOR same and cross). Add rows here with the table they come from when a copy is read.

University-1652 metrics (layumi/University1652-Baseline ``evaluate_gpu.py``):
R@K = first true match within the top K; AP = trapezoid average precision
over all true matches (one per query drone -> satellite, about 54 satellite ->
drone); see :mod:`cvmnet_tf.evaluation.multi_match`.

Top-1% cut-off rules (a query counts when rank < K, N = database size):
"cvm_net" K = int(0.01 N) + 1 (CVM-Net, OriCNN, VIGOR's ``validate_top``); "safa" K =
int(0.01 N); "sample4geo" K = N // 100 (also TransGeo, "transgeo").

VIGOR rows (datasets "vigor_same", "vigor_cross"): recall with the positive only, ``hit_rate``
(every satellite ranked above the positive is a semi-positive), N = the satellite pool.
Limited-FoV rows: ``fov_deg`` and ``orientation`` ("unknown": random heading; rows without
``fov_deg`` are the standard north-aligned 360-degree setting).
"""
from __future__ import annotations

import dataclasses
from typing import List, Mapping, Optional

from cvmnet_tf.data.university1652 import TASKS

__all__ = ["PublishedResult", "PUBLISHED", "LOCALIZATION", "LOCALIZATION_SETTING", "NUM_CVUSA_DISTRACTORS", "CUTOFF_RULE_TEXT",
           "UNIVERSITY1652_TASKS", "MISSING_TABLES", "find_published", "comparison_table", "vigor_comparison_table",
           "fov_comparison_table", "normalize_name"]


@dataclasses.dataclass(frozen=True)
class PublishedResult:
    """One published row; recalls in percent (None where not reported)."""

    source: str
    model: str            # cvm_net_i, cvm_net_ii, siamese_alexnet, siamese_vgg, workman, vo_hays, zhai, safa,
                          # sample4geo, siam_fcanet, university1652_baseline, transgeo
    dataset: str          # cvusa, vohays, cvact_val, cvact_test, university1652, vigor_same, vigor_cross
    backbone: Optional[str] = None   # vgg16, alexnet (None: not stated / not applicable)
    loss: Optional[str] = None       # weighted_soft_margin_triplet, weighted_quadruplet, contrastive
    recall_at_1: Optional[float] = None
    recall_at_5: Optional[float] = None
    recall_at_10: Optional[float] = None
    recall_at_1_percent: Optional[float] = None
    cutoff_rule: str = "cvm_net"
    note: str = ""
    ap: Optional[float] = None       # University-1652 mean average precision, percent
    task: Optional[str] = None       # University-1652: drone_to_satellite | satellite_to_drone
    hit_rate: Optional[float] = None  # VIGOR hit rate, percent
    fov_deg: Optional[float] = None   # limited field of view (None: 360, north-aligned)
    orientation: Optional[str] = None  # "unknown" (random heading) | "known"; None: north-aligned


_T1 = "CVM-Net Table 1"
_T2 = "CVM-Net Table 2"
_TXT = "CVM-Net text"
_RE = "later re-report"
_WT = "weighted_soft_margin_triplet"
_WQ = "weighted_quadruplet"
_U1652 = "U1652 leaderboard"
_S4G_VIGOR = "Sample4Geo (Deuser et al. 2023), as re-reported on HyperAI (Papers with Code mirror)"
UNIVERSITY1652_TASKS = TASKS  # one list of the tasks: the University-1652 loader's
D2S, S2D = TASKS


def _u1652(loss, d2s_r1, d2s_ap, s2d_r1, s2d_ap, note=""):
    """One leaderboard row = two PublishedResults (drone -> satellite, satellite -> drone)."""
    return [PublishedResult(_U1652, "university1652_baseline", "university1652", None, loss, recall_at_1=r1, ap=ap,
                            cutoff_rule="none", note=note, task=task)
            for task, r1, ap in ((D2S, d2s_r1, d2s_ap), (S2D, s2d_r1, s2d_ap))]


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
                    note="re-reported row B; also on the U1652 leaderboard"),
    PublishedResult(_RE, "cvm_net_i", "cvact_val", "vgg16", _WT, 20.15, 45.00, 56.87, 87.57),
    PublishedResult("SAFA (Shi et al. 2019)", "safa", "cvusa", None, None, 89.84, 96.93, 98.14, 99.64,
                    cutoff_rule="safa"),
    PublishedResult("SAFA (Shi et al. 2019)", "safa", "cvact_val", None, None, 81.03, 92.80, 94.84, 98.17,
                    cutoff_rule="safa"),
    PublishedResult("Sample4Geo (Deuser et al. 2023)", "sample4geo", "cvusa", None, None,
                    98.68, 99.68, 99.78, 99.87, cutoff_rule="sample4geo"),
    PublishedResult("Sample4Geo (Deuser et al. 2023)", "sample4geo", "cvact_val", None, None,
                    90.81, 96.74, 97.48, 98.77, cutoff_rule="sample4geo"),
    # Cai et al. ICCV 2019 (Hard Exemplar Reweighting triplet loss), as listed on the U1652 leaderboard.
    PublishedResult(_U1652 + " (Cai et al. 2019)", "siam_fcanet", "cvusa", None, "hard_exemplar_reweighting_triplet",
                    recall_at_1_percent=98.3, cutoff_rule="unstated"),
    # University-1652 drone <-> satellite, the loss baselines of the benchmark (U1652 leaderboard, verified there).
    *_u1652("contrastive", 52.39, 57.44, 63.91, 52.24),
    *_u1652("triplet_margin_0.3", 55.18, 59.97, 63.62, 53.85),
    *_u1652("triplet_margin_0.5", 53.58, 58.60, 64.48, 53.15),
    *_u1652(_WT, 53.21, 58.03, 65.62, 54.47),
    *_u1652("instance", 58.23, 62.91, 74.47, 59.45),
    *_u1652("instance+" + _WT, 65.93, 70.18, 76.03, 66.36),
    # VIGOR same-area, TransGeo, as re-reported (quoting the paper) in TransGeo issue #40.
    PublishedResult("TransGeo (Zhu et al. 2022), as re-reported in TransGeo issue #40", "transgeo", "vigor_same",
                    None, None, 61.48, 87.54, 91.88, 99.56, cutoff_rule="transgeo",
                    note="second-hand; hit rate not quoted"),
    # VIGOR, Sample4Geo, as re-reported on HyperAI's mirror of the Papers with Code entries (module docstring).
    PublishedResult(_S4G_VIGOR, "sample4geo", "vigor_cross", None, None, 61.70, 83.50, 88.00, 98.17,
                    cutoff_rule="sample4geo", hit_rate=69.87,
                    note="second-hand; beta.hyper.ai/cn/papers/2303.11851, vigor-cross-area"),
    PublishedResult(_S4G_VIGOR, "sample4geo", "vigor_same", None, None, 77.86, None, None, 99.61,
                    cutoff_rule="sample4geo", hit_rate=89.82,
                    note="second-hand; beta.hyper.ai/cn/papers/2303.11851, vigor-same-area; R@5/R@10 not read"),
]

#: Published tables not available here (module docstring), shown beside VIGOR / FoV results.
MISSING_TABLES = {
    "vigor": ("VIGOR paper (Zhu et al., CVPR 2021), retrieval table: Siamese-VGG, SAFA, SAFA+Mining, VIGOR, "
              "same-area and cross-area (R@1/5/10/1%, hit rate); TransGeo (CVPR 2022) cross-area row and hit "
              "rates; Sample4Geo (ICCV 2023) same-area R@5/R@10; re-reported in ConGeo (arXiv 2403.13965) and "
              "CV-Cities (arXiv 2411.12431)"),
    "fov": ("DSM (Shi et al., CVPR 2020) CVUSA and CVACT tables at FoV 360/180/90/70 with unknown orientation; "
            "TransGeo (CVPR 2022) CVUSA at FoV 90/70; re-reported in ConGeo (arXiv 2403.13965) and SinGeo "
            "(arXiv 2603.09377)"),
}

#: Paper section 5.5 / Fig. 8 (Singapore map, CVM-Net-I trained on CVUSA).
LOCALIZATION = {"recall_within_100m_percent": 67.1, "mean_error_m": 676.7}
LOCALIZATION_SETTING = "10 x 5 km Singapore map, 5 m stride, CVM-Net-I trained on CVUSA"

#: Extra satellite images added to the 8,884 CVUSA test database in paper Fig. 6.
NUM_CVUSA_DISTRACTORS = 15643

CUTOFF_RULE_TEXT = {
    "cvm_net": "rank < int(0.01 N) + 1 (CVM-Net/OriCNN)",
    "safa": "rank < int(0.01 N) (SAFA)",
    "sample4geo": "rank < N // 100 (Sample4Geo)",
    "transgeo": "rank < N // 100 (TransGeo)",
    "unstated": "cut-off rule not verified",
    "none": "-",
}

_ALIASES = {
    "cvm_net_1": "cvm_net_i", "cvmnet_i": "cvm_net_i", "cvm_net_2": "cvm_net_ii", "cvmnet_ii": "cvm_net_ii",
    "vgg": "vgg16", "vgg_16": "vgg16", "siamese_vgg16": "siamese_vgg",
    "act_val": "cvact_val", "cvact": "cvact_val", "act_test": "cvact_test",
    "vo_and_hays": "vo_hays", "vohays_cropped": "vohays",
    "triplet": _WT, "weighted_triplet": _WT, "quadruplet": _WQ,
    "university_1652": "university1652", "u1652": "university1652",
    "instance_loss": "instance", "drone2satellite": D2S, "satellite2drone": S2D,
    "drone_to_sat": D2S, "sat_to_drone": S2D, "her": "hard_exemplar_reweighting_triplet",
}


def normalize_name(name: Optional[str]) -> Optional[str]:
    """'CVM-Net-I' -> 'cvm_net_i', 'VGG16' -> 'vgg16', 'CVACT' -> 'cvact_val'."""
    if name is None:
        return None
    n = str(name).strip().lower().replace("-", "_").replace(" ", "_").replace("&", "and")
    return _ALIASES.get(n, n)


def find_published(model: Optional[str] = None, dataset: Optional[str] = None, backbone: Optional[str] = None,
                   loss: Optional[str] = None, task: Optional[str] = None, fov: Optional[float] = None,
                   orientation: Optional[str] = None) -> List[PublishedResult]:
    """Published rows matching every given field (a row with no backbone/loss/task matches any).

    ``fov`` / ``orientation``: the limited-FoV setting (None: the standard north-aligned
    360-degree rows only; a FoV of 360 with ``orientation="unknown"`` is the unknown
    orientation setting)."""
    model, dataset, backbone, loss, task = map(normalize_name, (model, dataset, backbone, loss, task))
    standard = (fov is None or float(fov) == 360.0) and orientation in (None, "known")
    out = []
    for r in PUBLISHED:
        row_standard = r.fov_deg is None and r.orientation is None
        if standard != row_standard:
            continue
        if not standard and (float(r.fov_deg or 360.0) != float(fov or 360.0)
                             or (orientation is not None and r.orientation != orientation)):
            continue
        if task is not None and r.task is not None and r.task != task:
            continue
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


def comparison_table(results: Mapping[str, float], model: Optional[str], dataset: str,
                     backbone: Optional[str] = None, loss: Optional[str] = None,
                     include_state_of_the_art: bool = False, label: str = "this run",
                     task: Optional[str] = None) -> str:
    """Markdown table of our recalls next to the matching published ones.

    Args:
      results: dict from :func:`cvmnet_tf.evaluation.evaluate_retrieval`
        (fractions 0..1; keys "recall@1", "recall@5", "recall@10", "recall@1%",
        optional "num_database" and "top_percent_k"); for dataset
        "university1652" the dict of
        :func:`cvmnet_tf.evaluation.labelled_retrieval` (adds "AP").
      model, dataset, backbone, loss: the published setting(s) to match.
        For "university1652" no CVM-Net number is published: when ``model``
        matches no row there, the benchmark's baselines are listed (filtered
        by ``loss`` when given).
      include_state_of_the_art: also list SAFA / Sample4Geo on that dataset.
      task: University-1652 only: "drone_to_satellite" or
        "satellite_to_drone" (default: results["task"] if present, else both).

    Returns:
      Markdown text: a table in percent, then the top-1% cut-off rule of each
      row (University-1652: R@1/5/10 and AP columns instead).

    Raises:
      ValueError when no published row matches.
    """
    if normalize_name(dataset) == "university1652":
        return _university1652_table(results, model, backbone, loss, label, task)
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


def _university1652_table(results, model, backbone, loss, label, task) -> str:
    task = normalize_name(task if task is not None else results.get("task"))
    if task is not None and task not in UNIVERSITY1652_TASKS:
        raise ValueError(f"task must be one of {UNIVERSITY1652_TASKS}; got {task!r}")
    rows = find_published(model, "university1652", backbone, loss, task) if model else []
    if not rows:
        rows = find_published(None, "university1652", None, loss, task)
    if not rows:
        known = sorted({r.loss for r in PUBLISHED if r.dataset == "university1652"})
        raise ValueError(f"no published University-1652 numbers for loss={loss!r}, task={task!r}; "
                         f"known losses: {known}")

    def ours(key):
        v = results.get(key)
        return None if v is None else 100.0 * float(v)

    setting = ", ".join(x for x in (normalize_name(model), normalize_name(backbone), normalize_name(loss)) if x)
    lines = [
        "| Setting | Source | Task | R@1 | R@5 | R@10 | AP |",
        "|---|---|---|---|---|---|---|",
        f"| {setting or '-'} | {label} | {task or '-'} | {_fmt(ours('recall@1'))} | {_fmt(ours('recall@5'))} | "
        f"{_fmt(ours('recall@10'))} | {_fmt(ours('AP'))} |",
    ]
    for r in rows:
        name = ", ".join(x for x in (r.model, r.backbone, r.loss) if x)
        src = r.source + (f" ({r.note})" if r.note else "")
        lines.append(f"| {name} | {src} | {r.task} | {_fmt(r.recall_at_1)} | {_fmt(r.recall_at_5)} | "
                     f"{_fmt(r.recall_at_10)} | {_fmt(r.ap)} |")
    lines.append("")
    lines.append("University-1652, percent. R@K: the first true match is within the top K; AP: mean over queries of "
                 "University-1652's average precision (evaluate_gpu.py compute_mAP).")
    return "\n".join(lines) + "\n"


def _percent(results, key):
    v = results.get(key)
    return None if v is None else 100.0 * float(v)


def vigor_comparison_table(results: Mapping[str, float], area: str, label: str = "this run",
                           model: Optional[str] = None, top_percent_rule: str = "cvm_net") -> str:
    """Markdown table: our :func:`cvmnet_tf.evaluation.vigor_metrics.evaluate_vigor` dict
    (fractions) beside the published VIGOR rows of ``area`` ("same" | "cross"), with each
    row's cut-off rule, the chance levels of a random ranking, and the published tables not
    read here (:data:`MISSING_TABLES`)."""
    if area not in ("same", "cross"):
        raise ValueError(f"area must be 'same' or 'cross'; got {area!r}")
    rows = find_published(model, f"vigor_{area}")
    ours_rule = CUTOFF_RULE_TEXT[top_percent_rule]
    if results.get("num_database") is not None:
        ours_rule += f"; N = {int(results['num_database'])}, K = {int(results['top_percent_k'])}"
    lines = ["| Method | Source | R@1 | R@5 | R@10 | R@1% | Hit rate | top-1% cut-off |",
             "|---|---|---|---|---|---|---|---|",
             f"| {normalize_name(model) or 'ours'} | {label} | {_fmt(_percent(results, 'recall@1'))} | "
             f"{_fmt(_percent(results, 'recall@5'))} | {_fmt(_percent(results, 'recall@10'))} | "
             f"{_fmt(_percent(results, 'recall@1%'))} | {_fmt(_percent(results, 'hit_rate'))} | {ours_rule} |"]
    if "chance/recall@1" in results:
        lines.append(f"| random ranking | chance | {_fmt(_percent(results, 'chance/recall@1'))} | "
                     f"{_fmt(_percent(results, 'chance/recall@5'))} | {_fmt(_percent(results, 'chance/recall@10'))} | "
                     f"{_fmt(_percent(results, 'chance/recall@1%'))} | {_fmt(_percent(results, 'chance/hit_rate'))} | "
                     f"{ours_rule} |")
    for r in rows:
        lines.append(f"| {r.model} | {r.source}{f' ({r.note})' if r.note else ''} | {_fmt(r.recall_at_1)} | "
                     f"{_fmt(r.recall_at_5)} | {_fmt(r.recall_at_10)} | {_fmt(r.recall_at_1_percent)} | "
                     f"{_fmt(r.hit_rate)} | {CUTOFF_RULE_TEXT[r.cutoff_rule]} |")
    lines.append("")
    lines.append(f"VIGOR {area}-area, percent, ground -> satellite, positive only; hit rate: every satellite ranked "
                 "above the positive is a semi-positive.")
    if "meter/mean_error_m" in results:
        lines.append(f"Metre-level error of the top-1 tile centre: mean {results['meter/mean_error_m']:.1f} m, median "
                     f"{results['meter/median_error_m']:.1f} m (a random tile: "
                     f"{results.get('chance/mean_error_m', float('nan')):.1f} m on average).")
    if not rows:
        lines.append(f"No published {area}-area row could be read here; to fill in: {MISSING_TABLES['vigor']}.")
    else:
        lines.append(f"Published tables not read here (to fill in): {MISSING_TABLES['vigor']}.")
    return "\n".join(lines) + "\n"


def fov_comparison_table(results: Mapping[str, float], dataset: str, fov_deg: float, orientation: str = "unknown",
                         label: str = "this run", test_protocol: str = "fixed headings, seed 2019 (DSM)") -> str:
    """Markdown table of our recalls (fractions, :func:`cvmnet_tf.evaluation.evaluate_retrieval`
    keys) at ``fov_deg`` beside the published rows of the same dataset, FoV and orientation;
    names the tables to fill in when there are none."""
    rows = find_published(None, dataset, fov=fov_deg, orientation=orientation)
    lines = ["| Method | Source | FoV | orientation | test crops | R@1 | R@5 | R@10 | R@1% |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| ours | {label} | {float(fov_deg):g} | {orientation} | {test_protocol} | "
             f"{_fmt(_percent(results, 'recall@1'))} | {_fmt(_percent(results, 'recall@5'))} | "
             f"{_fmt(_percent(results, 'recall@10'))} | {_fmt(_percent(results, 'recall@1%'))} |"]
    for r in rows:
        lines.append(f"| {r.model} | {r.source}{f' ({r.note})' if r.note else ''} | {float(r.fov_deg or 360):g} | "
                     f"{r.orientation} | - | {_fmt(r.recall_at_1)} | {_fmt(r.recall_at_5)} | "
                     f"{_fmt(r.recall_at_10)} | {_fmt(r.recall_at_1_percent)} |")
    lines.append("")
    if not rows:
        lines.append(f"No published {normalize_name(dataset)} row at FoV {float(fov_deg):g} ({orientation} orientation) "
                     f"could be read here; to fill in: {MISSING_TABLES['fov']}.")
    return "\n".join(lines) + "\n"
