"""The data, the metric and the in-process baselines of ``recommender.py``: no gateway.

* :func:`load_movielens` reads MovieLens 100k's ``ua.base`` / ``ua.test`` (tab-separated
  ``user item rating timestamp``; ids are the file's integers, 1-based);
* :func:`ranking_metrics` is the ONE metric function every model's ranked lists go through
  (Recall@k, NDCG@k, HR@k, numpy), so the comparison is exact;
* :func:`popularity` and :func:`als` are the baselines: the count of positives per item in
  ``ua.base``, and ``implicit.als.AlternatingLeastSquares`` on the user x item positives
  matrix; both rank every item except the user's ``ua.base`` items;
* :func:`synthetic_interactions` makes the 100k-item table of the latency check;
* :class:`Results`, :func:`report` and :func:`to_json`: the result table (every figure next
  to its baseline, the ratio, the target and MET/MISSED) and the JSON.

scipy and implicit are imported inside the functions, so ``--help`` stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _common
import numpy as np

K = 10
#: An interaction is positive when its rating is at least this (implicit feedback).
POSITIVE_MIN_RATING = 4
ALS_SETTINGS = {"factors": 64, "regularization": 0.05, "iterations": 15}
SEED = 42


@dataclass(frozen=True)
class MovieLens:
    """``base`` and ``test`` as ``(rows, 3)`` int arrays of ``user, item, rating``."""

    base: np.ndarray
    test: np.ndarray
    n_users: int  # the largest user id (ids run 1..n_users)
    n_items: int  # the largest item id

    @property
    def base_positives(self) -> np.ndarray:
        return self.base[self.base[:, 2] >= POSITIVE_MIN_RATING]

    @property
    def test_positives(self) -> np.ndarray:
        return self.test[self.test[:, 2] >= POSITIVE_MIN_RATING]

    def relevant(self) -> dict[int, set[int]]:
        """The users to score (a positive in ``ua.test``) -> their positive test items."""
        out: dict[int, set[int]] = {}
        for user, item, _ in self.test_positives.tolist():
            out.setdefault(user, set()).add(item)
        return dict(sorted(out.items()))

    def seen(self) -> dict[int, set[int]]:
        """Every user's ``ua.base`` items, whatever the rating: never recommended."""
        out: dict[int, set[int]] = {}
        for user, item, _ in self.base.tolist():
            out.setdefault(user, set()).add(item)
        return out

    def matrix(self, rows: np.ndarray) -> Any:
        """A ``(n_users, n_items)`` float32 CSR matrix with 1.0 at each (user, item) of
        ``rows``; row/column ``i`` is id ``i + 1``."""
        from scipy.sparse import csr_matrix

        data = np.ones(len(rows), dtype=np.float32)
        shape = (self.n_users, self.n_items)
        matrix = csr_matrix((data, (rows[:, 0] - 1, rows[:, 1] - 1)), shape=shape)
        matrix.data[:] = 1.0  # a duplicated pair stays 1
        return matrix


def _read(path: Path) -> np.ndarray:
    rows = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    if rows.shape[1] != 4:
        raise ValueError(f"{path}: expected 'user item rating timestamp' per line")
    return rows[:, :3]


def load_movielens(folder: Path) -> MovieLens:
    base, test = _read(folder / "ua.base"), _read(folder / "ua.test")
    both = np.concatenate([base, test])
    return MovieLens(base, test, int(both[:, 0].max()), int(both[:, 1].max()))


# -- the one metric function -----------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    recall: float  # mean of hits / min(k, |test positives|)
    ndcg: float  # binary relevance, ideal DCG of min(k, |test positives|) hits on top
    hr: float  # share of users with at least one hit
    users: int


def ranking_metrics(
    ranked: Mapping[int, Sequence[int]], relevant: Mapping[int, Iterable[int]], k: int = K
) -> Metrics:
    """Mean Recall@k, NDCG@k and HR@k over the users of ``relevant``.

    ``ranked[user]`` is the user's list, best first; a user missing from ``ranked`` (or
    with a shorter list) gets misses for the missing ranks. Items are compared as ints.
    """
    users = list(relevant)
    hits = np.zeros((len(users), k), dtype=bool)
    n_relevant = np.zeros(len(users), dtype=np.int64)
    for row, user in enumerate(users):
        chosen = np.fromiter(relevant[user], dtype=np.int64)
        n_relevant[row] = len(chosen)
        items = np.asarray(list(ranked.get(user, ()))[:k], dtype=np.int64)
        if len(items):
            hits[row, : len(items)] = np.isin(items, chosen)
    ideal_hits = np.minimum(n_relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits.astype(np.float64) @ discounts
    ideal = np.cumsum(discounts)[ideal_hits - 1]
    return Metrics(
        recall=float((hits.sum(axis=1) / ideal_hits).mean()),
        ndcg=float((dcg / ideal).mean()),
        hr=float(hits.any(axis=1).mean()),
        users=len(users),
    )


def violations(
    ranked: Mapping[int, Sequence[int]], seen: Mapping[int, set[int]], users: Iterable[int], k: int
) -> dict[str, int]:
    """Protocol checks of ranked lists: seen items, duplicates, short or missing lists."""
    out = {"seen_items": 0, "duplicates": 0, "short_lists": 0, "missing_users": 0}
    for user in users:
        items = list(ranked.get(user, ()))
        if not items:
            out["missing_users"] += 1
            continue
        out["seen_items"] += sum(item in seen.get(user, ()) for item in items)
        out["duplicates"] += len(items) - len(set(items))
        out["short_lists"] += len(items) < k
    return out


# -- baselines -------------------------------------------------------------------------------


@dataclass
class BaselineRun:
    name: str
    ranked: dict[int, list[int]]
    fit_seconds: float  # counting, or ALS.fit
    rank_seconds: float  # top-k of every scored user, seen items removed


def top_k(scores: np.ndarray, seen_rows: Any, k: int = K) -> np.ndarray:
    """Item indices of the ``k`` best scores per row, best first, with the row's seen items
    (a CSR matrix, one row per score row) removed; ties go to the lower item id."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    coo = seen_rows.tocoo()
    scores[coo.row, coo.col] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]  # a full sort: exact ties


def _ranked(users: Sequence[int], best: np.ndarray) -> dict[int, list[int]]:
    return {user: [int(i) + 1 for i in row] for user, row in zip(users, best, strict=True)}


def popularity(data: MovieLens, users: Sequence[int], k: int = K) -> BaselineRun:
    """Every user gets the most positive-counted items of ``ua.base`` he has not seen."""
    seen = data.matrix(data.base)
    started = time.perf_counter()
    counts = np.bincount(data.base_positives[:, 1] - 1, minlength=data.n_items)
    fitted = time.perf_counter()
    rows = np.asarray(users) - 1
    scores = np.broadcast_to(counts.astype(np.float64), (len(rows), data.n_items))
    best = top_k(scores, seen[rows], k)
    ranked_at = time.perf_counter()
    return BaselineRun("popularity", _ranked(users, best), fitted - started, ranked_at - fitted)


def als(data: MovieLens, users: Sequence[int], threads: int, k: int = K) -> BaselineRun:
    """implicit's ALS (``ALS_SETTINGS``, binary confidence) on the positives matrix; the
    score of an item is ``user_factors . item_factors``, computed here for every item."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    positives = data.matrix(data.base_positives)
    seen = data.matrix(data.base)
    with threadpool_limits(1, "blas"):  # implicit's own threads; BLAS on one (its advice)
        model = AlternatingLeastSquares(
            **ALS_SETTINGS, num_threads=threads, random_state=SEED, use_gpu=False
        )
        started = time.perf_counter()
        model.fit(positives, show_progress=False)
        fitted = time.perf_counter()
    rows = np.asarray(users) - 1
    scores = np.asarray(model.user_factors)[rows] @ np.asarray(model.item_factors).T
    best = top_k(scores, seen[rows], k)
    ranked_at = time.perf_counter()
    return BaselineRun("ALS", _ranked(users, best), fitted - started, ranked_at - fitted)


# -- the synthetic 100k-item table -----------------------------------------------------------


def synthetic_interactions(
    n_users: int = 2_000, per_user: int = 60, n_items: int = 100_000, seed: int = SEED
) -> tuple[list[str], list[str]]:
    """``(user_ids, item_ids)`` as strings (``s<n>`` / ``i<n>``): ``per_user`` rows per user,
    every one of ``n_items`` items at least once (a permutation, then uniform draws)."""
    total = n_users * per_user
    if total < n_items:
        raise ValueError(f"{n_users} x {per_user} rows cannot cover {n_items} items")
    rng = np.random.default_rng(seed)
    items = np.concatenate([rng.permutation(n_items), rng.integers(0, n_items, total - n_items)])
    rng.shuffle(items)
    users = np.repeat(np.arange(n_users), per_user)
    return [f"s{u}" for u in users.tolist()], [f"i{i}" for i in items.tolist()]


# -- results and the report ------------------------------------------------------------------


@dataclass
class Training:
    seconds: float
    record: dict[str, Any]
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (s after CREATE, phase)


@dataclass
class JoinRun:
    users: int
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


@dataclass
class Latency:
    path: str
    ms: list[float]

    def summary(self) -> dict[str, float]:
        return {
            "n": len(self.ms),
            "mean_ms": _common.mean(self.ms),
            "p50_ms": _common.percentile(self.ms, 50),
            "p99_ms": _common.percentile(self.ms, 99),
        }


@dataclass
class Results:
    users: int
    metrics: dict[str, Metrics]  # model -> its figures, same function for all
    fit_seconds: dict[str, float]
    rank_seconds: dict[str, float]
    violations: dict[str, int] | None = None
    training: Training | None = None
    join: JoinRun | None = None
    latency: list[Latency] = field(default_factory=list)
    gateway_cpu_ms: float | None = None
    synth_training: Training | None = None
    synth_latency: Latency | None = None
    synth_predict: Latency | None = None
    synth_rows: int = 0
    environment: str = ""
    #: what the report mentions: poll_seconds, warmup_users, latency_user, synth_hyperparams
    settings: dict[str, Any] = field(default_factory=dict)


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("MET" if met else "MISSED")


def figures(r: Results) -> list[dict[str, Any]]:
    """The target rows: figure, gateway, baseline, baseline is, ratio, target, met."""
    gw = r.metrics.get("TwoTower (gateway)")
    out = []
    for name, strict in (("popularity", True), ("ALS", False)):
        base = r.metrics[name].ndcg
        ratio = None if gw is None else gw.ndcg / base
        met = None if ratio is None else (ratio > 1.0 if strict else ratio >= 1.0)
        target = "> 1.00x" if strict else ">= 1.00x"
        out.append({"figure": f"NDCG@{K}", "gateway": gw and gw.ndcg, "baseline": base,
                    "baseline_name": name, "ratio": ratio, "target": target,
                    "met": met})  # fmt: skip
    train_s = r.training.seconds if r.training else None
    out.append({"figure": "training s", "gateway": train_s, "baseline": r.fit_seconds["ALS"],
                "baseline_name": "ALS fit (not compared)", "ratio": None, "target": "< 60 s",
                "met": None if train_s is None else train_s < 60})  # fmt: skip
    join_s = r.join.seconds if r.join else None
    out.append({"figure": f"JOIN s ({r.users} users)", "gateway": join_s,
                "baseline": r.rank_seconds["ALS"], "baseline_name": "ALS top-10, in-process",
                "ratio": None, "target": "< 60 s", "met": None if join_s is None
                else join_s < 60})  # fmt: skip
    for lat, how in ((r.synth_latency, "POST url_predict"), (r.synth_predict, "model predict")):
        p50 = lat.summary()["p50_ms"] if lat else None
        out.append({"figure": "100k items p50 ms", "gateway": p50, "baseline": None,
                    "baseline_name": how, "ratio": None, "target": "<= 5 ms",
                    "met": None if p50 is None else p50 <= 5.0})  # fmt: skip
    return out


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(r: Results) -> None:
    print(r.environment)
    print(
        f"protocol: positive = rating >= {POSITIVE_MIN_RATING}; train on ua.base "
        f"positives; {r.users} users with a ua.test positive; rank all items minus the user's "
        f"ua.base items; top {K}. Recall@{K} = hits / min({K}, |test positives|); NDCG@{K} "
        f"binary relevance; HR@{K} = at least one hit. One metric function for every model."
    )
    print()
    rows = [
        [name, _num(m.recall), _num(m.ndcg), _num(m.hr), m.users,
         _num(r.fit_seconds.get(name), 2), _num(r.rank_seconds.get(name), 2)]
        for name, m in r.metrics.items()
    ]  # fmt: skip
    _common.print_table(
        ["model", f"Recall@{K}", f"NDCG@{K}", f"HR@{K}", "users", "fit s", "top-10 s"], rows
    )
    print()
    table = []
    for f in figures(r):
        ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x"
        digits = 4 if f["figure"].startswith("NDCG") else 2
        table.append([f["figure"], _num(f["gateway"], digits), _num(f["baseline"], digits),
                      f["baseline_name"], ratio, f["target"], _verdict(f["met"])])  # fmt: skip
    _common.print_table(
        ["figure", "gateway", "baseline", "baseline is", "ratio", "target", "result"], table
    )
    if r.violations is not None:
        v = r.violations
        total = v["seen_items"] + v["duplicates"] + v["short_lists"] + v["missing_users"]
        print(f"\nprotocol violations in the gateway's answer: {total} (seen items "
              f"{v['seen_items']}, duplicates {v['duplicates']}, lists under {K} "
              f"{v['short_lists']}, users with no row {v['missing_users']})")  # fmt: skip
    latencies = [(f"MovieLens (user {r.settings['latency_user']})", lat) for lat in r.latency]
    for lat in (r.synth_latency, r.synth_predict):
        if lat is not None:
            latencies.append(("100k synthetic items", lat))
    if latencies:
        print()
        rows = [[what, lat.path, len(lat.ms), *(_num(lat.summary()[key], 2) for key in
                 ("mean_ms", "p50_ms", "p99_ms"))] for what, lat in latencies]  # fmt: skip
        _common.print_table(["model", "path", "n", "mean ms", "p50 ms", "p99 ms"], rows)
        if r.gateway_cpu_ms is not None and len(r.latency) >= 2:
            overhead = r.latency[1].summary()["p50_ms"] - r.latency[0].summary()["p50_ms"]
            print(f"gateway overhead at p50: {overhead:.2f} ms; gateway CPU "
                  f"{r.gateway_cpu_ms:.2f} ms/request")  # fmt: skip
    print("\nwhat the timings include:")
    print(f"- ALS fit: implicit {ALS_SETTINGS}, 2 threads, BLAS on 1; top-10 s: "
          "scores of every item for every scored user, seen masked, full sort (numpy)")  # fmt: skip
    for name, t in (("TwoTower", r.training), ("synthetic", r.synth_training)):
        if t is not None:
            steps = ", ".join(f"{phase} {at:.0f}" for at, phase in t.timeline)
            print(f"- {name} training: sending CREATE MODEL to DESCRIBE 'complete' (polled "
                  f"every {r.settings['poll_seconds']:g} s; includes Ray's start on first use, "
                  "reading the rows, training, logging, deploying); phases (s after CREATE): "
                  f"{steps}")  # fmt: skip
    if r.join is not None:
        print(f"- JOIN: one POST /api/sql (ndjson) to its last row, {r.join.rows:,} rows for "
              f"{r.join.users} users ({r.join.rate:,.0f} rows/s), after a "
              f"{r.settings['warmup_users']}-user warm-up JOIN")  # fmt: skip
    if r.latency:
        print("- direct: POST of {\"df\": ..., \"params\": ...} to the version's url_predict "
              "(Ray Serve proxy, @serve.batch wait, replica); gateway: POST /api/sql of the "
              "one-user SELECT; model predict: mlflow.pyfunc predict of the logged model in "
              "this process (what a replica runs, without HTTP); all after the "
              "warm-up")  # fmt: skip
    if r.synth_training is not None:
        print(f"- 100k: {r.synth_rows:,} interactions, 2,000 users x 60, 100,000 distinct items, "
              f"hyperparams {r.settings['synth_hyperparams']}")  # fmt: skip


def to_json(r: Results) -> dict[str, Any]:
    out = asdict(r)
    out["figures"] = figures(r)
    out["latency"] = [{"path": lat.path, **lat.summary()} for lat in r.latency]
    out["synth_latency"] = r.synth_latency.summary() if r.synth_latency else None
    out["synth_predict"] = r.synth_predict.summary() if r.synth_predict else None
    return out
