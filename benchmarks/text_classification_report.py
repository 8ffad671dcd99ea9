"""The result table and JSON of ``text_classification.py``: every figure next to its
baseline, the ratio, the target and MET/MISSED, and what each timing includes."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import _common
import text_classification_baselines as baselines

WARMUP_ROWS = 32  # the `warmup` table: a first JOIN so Serve's start-up is not timed
POLL_SECONDS = 1.0
#: Torch threads of a serving replica: builtin_models.deployments.DeployOptions.num_threads.
SERVING_THREADS = 1


@dataclass
class GatewayTraining:
    seconds: float
    record: dict[str, Any]
    #: (seconds since the CREATE, phase) when DESCRIBE first showed each phase
    timeline: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class JoinRun:
    rows: int
    seconds: float
    predictions: list[Any]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


@dataclass
class Results:
    """Every figure of a run; None where that part did not run."""

    train_rows: int
    test_rows: int
    hyperparams: dict[str, Any]
    tfidf: baselines.TfidfRun
    plain: baselines.PlainRun
    plain_scores: dict[str, float]
    plain_pipeline: baselines.PipelineRun
    gateway_scores: dict[str, float] | None = None
    gateway_training: GatewayTraining | None = None
    join: JoinRun | None = None
    join_scores: dict[str, float] | None = None
    pipeline: baselines.PipelineRun | None = None
    environment: dict[str, Any] = field(default_factory=dict)


def environment(args: argparse.Namespace) -> dict[str, Any]:
    versions = {}
    for package in ("torch", "transformers", "scikit-learn", "ray", "mlflow"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "train_threads": args.train_threads,
        "predict_threads": args.predict_threads,
        "pipeline_batch_size": args.pipeline_batch_size,
    }


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("MET" if met else "MISSED")


def figures(r: Results) -> list[dict[str, Any]]:
    """The four target figures: gateway, baseline, ratio, target, met."""
    out = []
    for metric, name in (("accuracy", "test accuracy"), ("f1", "test macro F1")):
        gw = r.gateway_scores.get(metric) if r.gateway_scores else None
        base = r.tfidf.metrics[metric]
        diff = None if gw is None else 100 * (gw - base)
        out.append({
            "figure": name, "gateway": gw, "baseline": base, "baseline_name": "TF-IDF + LR",
            "ratio": diff, "ratio_kind": "points", "target": ">= +5.0 points",
            "met": None if diff is None else diff >= 5.0,
        })  # fmt: skip
    gw_s = r.gateway_training.seconds if r.gateway_training else None
    ratio = None if gw_s is None else gw_s / r.plain.seconds
    out.append({
        "figure": "training seconds", "gateway": gw_s, "baseline": r.plain.seconds,
        "baseline_name": "plain Trainer", "ratio": ratio, "ratio_kind": "gw/base",
        "target": "<= 1.20x", "met": None if ratio is None else ratio <= 1.2,
    })  # fmt: skip
    base_rate = (r.pipeline or r.plain_pipeline).rate
    gw_rate = r.join.rate if r.join else None
    ratio = None if gw_rate is None else gw_rate / base_rate
    out.append({
        "figure": "JOIN rows/s", "gateway": gw_rate, "baseline": base_rate,
        "baseline_name": "pipeline()", "ratio": ratio, "ratio_kind": "gw/base",
        "target": ">= 0.80x", "met": None if ratio is None else ratio >= 0.8,
    })  # fmt: skip
    return out


def report(r: Results, gateway_ran: bool) -> None:
    env = r.environment
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    print(f"machine: {env['cores']} cores ({env['machine']}), Python {env['python']}, "
          f"{versions}; load average {', '.join(map(str, env['load_average']))}")  # fmt: skip
    print(f"rows: train {r.train_rows:,}, test {r.test_rows:,}; hyperparams: "
          f"{json.dumps(r.hyperparams)}")  # fmt: skip
    print()
    rows = []
    for f in figures(r):
        if f["ratio_kind"] == "points":
            cells = [pct(f["gateway"]), pct(f["baseline"])]
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:+.2f} pts"
        elif f["figure"] == "training seconds":
            cells = ["-" if f["gateway"] is None else f"{f['gateway']:.1f}", f"{f['baseline']:.1f}"]
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x"
        else:
            cells = ["-" if f["gateway"] is None else f"{f['gateway']:,.1f}",
                     f"{f['baseline']:,.1f}"]  # fmt: skip
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x"
        rows.append([f["figure"], *cells, f["baseline_name"], ratio, f["target"],
                     _verdict(f["met"])])  # fmt: skip
    headers = ["figure", "gateway", "baseline", "baseline is", "ratio", "target", "result"]
    _common.print_table(headers, rows)
    print()
    ps = r.plain_scores
    pp = r.plain_pipeline
    print(
        f"reference: the plain Trainer loop's own model scores accuracy {pct(ps['accuracy'])}"
        f", macro F1 {pct(ps['f1'])} on the test rows (pipeline, {pp.rate:,.1f} rows/s)"
    )
    if r.join_scores:
        js = r.join_scores
        print(f"cross-check: the JOIN's predictions score accuracy {pct(js['accuracy'])}, "
              f"macro F1 {pct(js['f1'])}")  # fmt: skip
    p = r.plain
    print()
    print("what the timings include:")
    print(
        f"- plain Trainer ({p.threads} torch thread(s), in this process): load tokenizer + "
        f"model {p.load_seconds:.1f} s, tokenize {p.tokenize_seconds:.1f} s, Trainer.train "
        f"{p.train_seconds:.1f} s ({p.steps} steps, loss {p.train_loss:.4f}), save_pretrained "
        f"{p.save_seconds:.1f} s"
    )
    if r.gateway_training is not None:
        print(
            "- gateway training: from sending CREATE MODEL to DESCRIBE answering 'complete' "
            f"(polled every {POLL_SECONDS:g} s): Ray's start on first use, scheduling the "
            "training task, reading the rows through the datasource, loading, tokenizing, "
            "Trainer.train, saving and logging the model to MLflow, and deploying the "
            "version on Serve (the gateway reports 'complete' once it serves)"
        )
        steps = ", ".join(f"{phase} {at:.0f}" for at, phase in r.gateway_training.timeline)
        print(f"  phases as DESCRIBE first showed them (s after the CREATE): {steps}")
    print(f"- TF-IDF + LR fit: {r.tfidf.fit_seconds:.2f} s (not a target)")
    if gateway_ran:
        print(f"- JOIN: one POST /api/sql (ndjson) to its last row, {r.test_rows:,} rows, after a "
              f"{WARMUP_ROWS}-row warm-up JOIN; the replica predicts on "
              f"{SERVING_THREADS} torch thread(s)")  # fmt: skip
    base = r.pipeline or r.plain_pipeline
    which = "the gateway's model from MLflow" if r.pipeline else "the plain loop's model"
    print(
        f"- pipeline(): {which}, {base.threads} torch thread(s), batch_size "
        f"{base.batch_size}, truncation to 128 tokens; loading and a warm-up call not timed"
    )


def to_json(r: Results) -> dict[str, Any]:
    return {
        "environment": r.environment,
        "train_rows": r.train_rows,
        "test_rows": r.test_rows,
        "hyperparams": r.hyperparams,
        "figures": figures(r),
        "plain_trainer": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(r.plain).items()
        },  # fmt: skip
        "plain_model_scores": r.plain_scores,
        "tfidf": {"scores": r.tfidf.metrics, "fit_seconds": r.tfidf.fit_seconds},
        "gateway_scores": r.gateway_scores,
        "join_scores": r.join_scores,
        "gateway_record": r.gateway_training.record if r.gateway_training else None,
        "gateway_timeline": r.gateway_training.timeline if r.gateway_training else None,
    }
