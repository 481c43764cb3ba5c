"""Per-tag thresholds from labelled examples: maximise F1, or the best recall at a precision floor.

A threshold ``t`` predicts "tag applies" when ``score >= t``. For each tag, every distinct
score is a candidate cut; precision, recall and F1 are computed for all cuts at once (sorted
cumulative sums). The chosen threshold is the midpoint between the chosen cut score and the
next lower distinct score, so that a score equal to a labelled one is classified the way the
labels were. Tags with too few positive or negative labels keep their taxonomy threshold.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CALIBRATED = "calibrated"
TOO_FEW_LABELS = "too_few_labels"
FLOOR_UNREACHABLE = "floor_unreachable"
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


@dataclass(frozen=True)
class PrCurve:
    cuts: np.ndarray  # distinct scores, descending: predict positive when score >= cut
    thresholds: np.ndarray  # midpoint below each cut (what would be stored)
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray


@dataclass(frozen=True)
class ThresholdResult:
    tag: str
    status: str
    method: str
    positives: int
    negatives: int
    threshold: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None


def pr_curve(scores: Iterable[float], labels: Iterable[bool]) -> PrCurve:
    """Precision/recall/F1 at every distinct score cut (needs at least one positive)."""
    s = np.asarray(list(scores), dtype=np.float64)
    y = np.asarray(list(labels), dtype=bool)
    if s.shape != y.shape or s.ndim != 1 or not len(s):
        raise ValueError("scores and labels must be equal-length, non-empty 1-d sequences")
    positives = int(y.sum())
    if positives == 0:
        raise ValueError("a precision/recall curve needs at least one positive label")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last_of_run = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the cut includes every tie
    tp, fp, cuts = tp[last_of_run], fp[last_of_run], s[last_of_run]
    precision = tp / (tp + fp)
    recall = tp / positives
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
    lower = np.r_[cuts[1:], 0.0]
    thresholds = (cuts + lower) / 2.0
    return PrCurve(cuts, thresholds, precision, recall, f1)


def choose_threshold(
    tag: str,
    scores: Iterable[float],
    labels: Iterable[bool],
    *,
    precision_floor: float | None = None,
    min_positives: int = 3,
    min_negatives: int = 3,
) -> ThresholdResult:
    s = np.asarray(list(scores), dtype=np.float64)
    y = np.asarray(list(labels), dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    method = "max_f1" if precision_floor is None else "precision_floor"
    if pos < min_positives or neg < min_negatives:
        return ThresholdResult(tag, TOO_FEW_LABELS, method, pos, neg)
    curve = pr_curve(s, y)
    if precision_floor is None:
        j = int(np.argmax(curve.f1))  # ties: the first, i.e. the highest threshold
    else:
        ok = np.nonzero(curve.precision >= precision_floor)[0]
        if not len(ok):
            return ThresholdResult(tag, FLOOR_UNREACHABLE, method, pos, neg)
        # best recall at the floor; among equal recall the best F1; then the highest threshold
        key = np.lexsort((-curve.cuts[ok], -curve.f1[ok], -curve.recall[ok]))
        j = int(ok[key[0]])
    threshold = float(np.clip(curve.thresholds[j], 1e-6, 1.0))
    return ThresholdResult(tag, CALIBRATED, method, pos, neg, threshold, float(curve.precision[j]),
                           float(curve.recall[j]), float(curve.f1[j]))


def calibrate(
    labelled: pd.DataFrame,
    *,
    precision_floor: float | None = None,
    min_positives: int = 3,
    min_negatives: int = 3,
) -> tuple[list[ThresholdResult], dict[str, PrCurve]]:
    """``labelled`` has columns ``tag``, ``score``, ``label``; one result per tag (sorted by name)."""
    results: list[ThresholdResult] = []
    curves: dict[str, PrCurve] = {}
    for tag, group in labelled.groupby("tag", sort=True):
        result = choose_threshold(str(tag), group["score"], group["label"].astype(bool),
                                  precision_floor=precision_floor, min_positives=min_positives,
                                  min_negatives=min_negatives)
        results.append(result)
        if result.status != TOO_FEW_LABELS:
            curves[str(tag)] = pr_curve(group["score"], group["label"].astype(bool))
    return results, curves


def results_frame(results: list[ThresholdResult]) -> pd.DataFrame:
    columns = ["tag", "status", "method", "threshold", "precision", "recall", "f1", "positives", "negatives"]
    return pd.DataFrame([{c: getattr(r, c) for c in columns} for r in results], columns=columns)


def report_markdown(results: list[ThresholdResult]) -> str:
    if not results:
        return "_no labelled examples_"
    lines = ["| tag | status | method | threshold | precision | recall | F1 | positives | negatives |",
             "|---|---|---|---|---|---|---|---|---|"]

    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    for r in results:
        lines.append(f"| {r.tag} | {r.status} | {r.method} | {fmt(r.threshold)} | {fmt(r.precision)} | "
                     f"{fmt(r.recall)} | {fmt(r.f1)} | {r.positives} | {r.negatives} |")
    return "\n".join(lines)


def pr_curve_png(curves: dict[str, PrCurve], results: list[ThresholdResult], *, max_tags: int = 12) -> bytes:
    """One PNG: the precision/recall curve of each calibrated tag, its chosen point marked."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.add_subplot()
    chosen = {r.tag: r for r in results if r.status == CALIBRATED}
    for tag, curve in list(curves.items())[:max_tags]:
        (line,) = ax.step(curve.recall, curve.precision, where="post", label=tag)
        if tag in chosen:
            ax.plot([chosen[tag].recall], [chosen[tag].precision], "o", color=line.get_color())
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("precision / recall per tag (dot: chosen threshold)")
    if curves:
        ax.legend(fontsize="small", loc="lower left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def png_markdown(png: bytes, alt: str = "PR curves") -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def parse_label(value: object) -> bool | None:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def read_labels_csv(path: str | Path) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Labelled examples (``image_key,tag,label``) and the rejected lines with their reason."""
    rows: list[dict[str, object]] = []
    rejects: list[tuple[int, str]] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"image_key", "tag", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected image_key,tag,label")
        for record in reader:
            line = reader.line_num
            label = parse_label(record.get("label"))
            if not record.get("image_key") or not record.get("tag"):
                rejects.append((line, "empty image_key or tag"))
            elif label is None:
                rejects.append((line, f"label {record.get('label')!r} is not one of 1/0/true/false/yes/no"))
            else:
                rows.append({"image_key": record["image_key"].strip(), "tag": record["tag"].strip(), "label": label})
    frame = pd.DataFrame(rows, columns=["image_key", "tag", "label"])
    return frame, rejects


# One-sided 95%: a tag's precision target is met when the lower bound of its observed precision is.
Z_95 = 1.645


def labels_needed(results: list[ThresholdResult], *, precision_floor: float | None, min_labels: int,
                  tags: Iterable[str] = (), z: float = Z_95) -> list[dict]:
    """Per tag, how many more labels calibration needs: the positives and negatives short of
    ``min_labels``, and with a precision target (``precision_floor``) the labelled predictions it takes
    for the observed precision's lower bound (normal approximation, ``z``) to clear the target:
    ``n >= z² p (1 - p) / (p - target)²``. ``more_labels`` is None while no threshold reaches the target."""
    out: list[dict] = []
    seen = {r.tag for r in results}
    empty = [ThresholdResult(t, TOO_FEW_LABELS, "", 0, 0) for t in sorted(set(tags) - seen)]
    for r in [*results, *empty]:
        pos_short, neg_short = max(0, min_labels - r.positives), max(0, min_labels - r.negatives)
        more: int | None = pos_short + neg_short
        why = f"{pos_short} positives and {neg_short} negatives short of {min_labels} each" if more else "enough"
        if precision_floor is not None and r.status == FLOOR_UNREACHABLE:
            more, why = None, f"no threshold reaches precision {precision_floor:.2f} yet: label more examples"
        elif precision_floor is not None and r.status == CALIBRATED and r.precision and r.recall:
            p = r.precision
            predicted = round(r.recall * r.positives / p)
            if p >= 1.0:  # no errors seen: n predictions all right bound precision by 0.05 ** (1 / n)
                need = int(np.ceil(np.log(0.05) / np.log(precision_floor))) if precision_floor < 1 else 10**6
            elif p > precision_floor:
                need = int(np.ceil(z * z * p * (1 - p) / (p - precision_floor) ** 2))
            else:  # exactly at the target: as many again as it took to get here, at least
                need = 2 * max(predicted, 1)
            more = max(more, need - predicted)
            why = (f"precision {p:.2f} on {predicted} predicted positives; {need} needed to show >= "
                   f"{precision_floor:.2f}" if more else f"precision {p:.2f} shown on {predicted} predictions")
        out.append({"tag": r.tag, "status": r.status, "positives": r.positives, "negatives": r.negatives,
                    "positives_short": pos_short, "negatives_short": neg_short, "more_labels": more, "why": why})
    return out
