"""Benchmark: the report matcher's accuracy on held-out labelled pairs, and scoring latency per report.

The labelled pairs (`game/data/match_pairs.yaml`) are split in two halves by a hash of each pair; the
matcher is fitted on the calibration half (as `pinhole game calibrate` does) and measured on the other:
accuracy, precision, recall and F1 of "match", overall and per kind of pair (paraphrase, near miss...).
Beside it, in the same run, a plain cosine rule (the best single threshold on the description's cosine,
chosen on the calibration half) shows what the extra features buy. Then it times `score_report` on a
perfect report and on a 50-claim report for each shipped spec (embeddings warm after the first).

    python bench/scoring.py [--repeats 5]
Prints tables and writes bench/results/scoring.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from game.matcher import calibrate, features_of, load_pairs, split_pairs
from game.report import Report
from game.scoring import score_report
from game.truth import shipped_truths
from pinhole.workspace import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "scoring.json"


def rates(predicted: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": int(len(truth)), "accuracy": round(float((predicted == truth).mean()), 3),
            "precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def best_cosine_threshold(cosines: np.ndarray, labels: np.ndarray) -> float:
    candidates = np.unique(np.round(cosines, 3))
    return float(max(candidates, key=lambda t: ((cosines >= t) == labels).mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed scorings per report (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console()

    truths = shipped_truths()
    calibration, held_out = split_pairs(load_pairs())
    matcher = calibrate(calibration, truths)
    held_features = features_of(held_out, truths)
    labels = np.array([p.match for p in held_out])
    z = held_features @ np.asarray(matcher.weights) + matcher.bias
    predicted = 1 / (1 + np.exp(-z)) >= matcher.threshold
    cal_features = features_of(calibration, truths)
    cal_labels = np.array([p.match for p in calibration])
    cosine_t = best_cosine_threshold(cal_features[:, 0], cal_labels)
    cosine_only = held_features[:, 0] >= cosine_t

    table = Table(title=f"Matcher on the held-out half ({len(held_out)} pairs; fitted on {len(calibration)})")
    for column in ("pairs", "n", "accuracy", "precision", "recall", "F1", "cosine-only accuracy"):
        table.add_column(column, justify="right" if column != "pairs" else "left")
    results: dict = {"overall": {**rates(predicted, labels), "cosine_only": rates(cosine_only, labels),
                                 "cosine_threshold": round(cosine_t, 3)}, "by_kind": {}}
    overall = results["overall"]
    table.add_row("all", str(overall["n"]), f"{overall['accuracy']:.3f}", f"{overall['precision']:.3f}",
                  f"{overall['recall']:.3f}", f"{overall['f1']:.3f}", f"{overall['cosine_only']['accuracy']:.3f}")
    for kind in sorted({p.kind for p in held_out}):
        mask = np.array([p.kind == kind for p in held_out])
        part = rates(predicted[mask], labels[mask])
        part["cosine_only_accuracy"] = round(float((cosine_only[mask] == labels[mask]).mean()), 3)
        results["by_kind"][kind] = part
        table.add_row(kind, str(part["n"]), f"{part['accuracy']:.3f}", f"{part['precision']:.3f}",
                      f"{part['recall']:.3f}", f"{part['f1']:.3f}", f"{part['cosine_only_accuracy']:.3f}")
    console.print(table)

    latency = Table(title="score_report latency (warm embeddings)")
    for column in ("spec", "claims", "median ms", "max ms"):
        latency.add_column(column, justify="right" if column != "spec" else "left")
    results["latency"] = []
    for spec_id, truth in truths.items():
        perfect = [b.text for b in truth.behaviours]
        for claims in (perfect, (perfect * 50)[:50]):
            report = Report(verdict="hidden_objective", root_cause=truth.root_cause.text, confidence=0.9,
                            behaviours=[{"description": f"{c} ({i})"} for i, c in enumerate(claims)])
            score_report(report, truth, matcher)  # warm: embeds the claims once
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                score_report(report, truth, matcher)
                times.append((time.perf_counter() - start) * 1000)
            row = {"spec": spec_id, "claims": len(claims), "median_ms": round(statistics.median(times), 1),
                   "max_ms": round(max(times), 1)}
            results["latency"].append(row)
            latency.add_row(spec_id, str(len(claims)), f"{row['median_ms']:.1f}", f"{row['max_ms']:.1f}")
    console.print(latency)
    results["machine"] = {"platform": platform.platform(), "processor": platform.processor()}
    results["matcher"] = matcher.model_dump()
    atomic_write_json(args.out, results)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
