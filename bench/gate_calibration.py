"""Calibration of the champion/challenger gate: false promotions and detection, seeded.

Synthetic paired holdouts with a known truth: labels ~ Bernoulli(0.5) on ``n`` rows; each
model scores a row ``mu * label + noise`` with standard normal noise, so its true AUC is
``Phi(mu / sqrt(2))`` (binormal); the two models' noise has correlation ``rho`` (two
models scoring the same rows err on the same rows). The champion's true AUC is 0.80; the
challenger's is 0.80 (no real difference: every promotion is false) or 0.83 (a true
difference of 0.03: a promotion is a detection). ``rho`` = 0.8 was set before any run (two
retrains of one model on overlapping data); detection at 0.5 and 0.9 is shown beside it,
because it depends on ``rho`` more than on anything else.

Each run draws its own holdout (seeded by condition and run) and calls
:func:`amlretrain.champion.judge` (AUC, one-sided 95%, ``min_change`` = 0, the bootstrap
seeded by the run). The time per comparison is set beside the same bootstrap done the
way it was before (each resample's rows through the AUC function: ``compare`` with the
AUC as an opaque callable), which also checks that both give the same bound.
"""

from __future__ import annotations

import math
import random
import time
from statistics import NormalDist

import attrs

from bench import Report, Row, median

NAME = "gate_calibration"
TITLE = "false promotions and detection of the champion/challenger gate (paired bootstrap)"

CHAMPION_AUC = 0.80
DIFFERENCE = 0.03
RHO = 0.8
SENSITIVITY = (0.5, 0.9)  # other noise correlations, detection only (full mode)


def _mu(auc: float) -> float:
    """The binormal separation with this true AUC: ``Phi(mu / sqrt(2)) = auc``."""
    return math.sqrt(2) * NormalDist().inv_cdf(auc)


def holdout(
    n: int, challenger_auc: float, rho: float, seed: str
) -> tuple[list[int], list[float], list[float]]:
    """Labels and both models' scores of ``n`` synthetic rows (see the module docstring)."""
    rng = random.Random(seed)
    mu_a, mu_b = _mu(CHAMPION_AUC), _mu(challenger_auc)
    own = math.sqrt(1 - rho * rho)
    labels, champion, challenger = [], [], []
    for _ in range(n):
        y = int(rng.random() < 0.5)
        shared, apart = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        labels.append(y)
        champion.append(mu_a * y + shared)
        challenger.append(mu_b * y + rho * shared + own * apart)
    return labels, champion, challenger


def _wilson(hits: int, runs: int) -> tuple[float, float]:
    """The 95% Wilson interval of a rate."""
    z = 1.959963984540054
    p = hits / runs
    centre = (p + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / (1 + z * z / runs)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(hits: int, runs: int) -> str:
    low, high = _wilson(hits, runs)
    return f"{hits / runs:.1%} ({hits}/{runs}; 95% CI {low:.1%}-{high:.1%})"


def run(quick: bool, *, runs: int | None = None) -> Report:
    """Judge ``runs`` seeded holdouts per condition and count the promotions."""
    from amlretrain.bootstrap import auc, compare
    from amlretrain.champion import ChampionGate, judge

    n = 300 if quick else 1000
    resamples = 200 if quick else 1000
    runs = runs or (10 if quick else 400)
    side_runs = 0 if quick else 200
    gate = ChampionGate(label="y", holdout_fraction=0.2, resamples=resamples, min_change=0.0)
    report = Report(name=NAME, title=TITLE)
    began = time.perf_counter()
    timings: list[float] = []
    found: dict[tuple[float, float], tuple[int, int]] = {}
    conditions = [(0.0, RHO, runs), (DIFFERENCE, RHO, runs)]
    conditions += [(DIFFERENCE, rho, side_runs) for rho in SENSITIVITY if side_runs]
    for difference, rho, count in conditions:
        promoted = 0
        for r in range(count):
            data = holdout(n, CHAMPION_AUC + difference, rho, f"{NAME}/{difference}/{rho}/{r}")
            start = time.perf_counter()
            verdict = judge(attrs.evolve(gate, seed=r), *data)
            timings.append(time.perf_counter() - start)
            promoted += verdict.promoted
        found[(difference, rho)] = (promoted, count)
    total = time.perf_counter() - began

    # the bootstrap as it was: each resample's rows through auc() (same draws, same bound)
    baseline: list[float] = []
    ours: list[float] = []
    same = True
    for r in range(1 if quick else 3):
        data = holdout(n, CHAMPION_AUC + DIFFERENCE, RHO, f"{NAME}/baseline/{r}")
        start = time.perf_counter()
        fast = compare(*data, resamples=resamples, seed=r)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        slow = compare(*data, metric=lambda y, s: auc(y, s), resamples=resamples, seed=r)
        baseline.append(time.perf_counter() - start)
        same = same and math.isclose(fast.lower, slow.lower, abs_tol=1e-12)

    false, null_runs = found[(0.0, RHO)]
    hits, alt_runs = found[(DIFFERENCE, RHO)]
    report.rows.append(
        Row(
            what=f"false promotions, no real difference (AUC {CHAMPION_AUC:.2f} both, rho {RHO})",
            figure=_rate(false, null_runs),
            target="<= 5%",
            passed=None if quick else false / null_runs <= 0.05,
        )
    )
    report.rows.append(
        Row(
            what=f"detection, true AUC difference {DIFFERENCE} (rho {RHO})",
            figure=_rate(hits, alt_runs),
            target=">= 80%",
            passed=None if quick else hits / alt_runs >= 0.80,
        )
    )
    for rho in SENSITIVITY:
        if (DIFFERENCE, rho) in found:
            side, side_count = found[(DIFFERENCE, rho)]
            report.rows.append(
                Row(
                    what=f"detection, true AUC difference {DIFFERENCE} (rho {rho})",
                    figure=_rate(side, side_count),
                )
            )
    per = median(timings)
    old = median(baseline)
    report.rows.append(
        Row(
            what=f"time per comparison ({n} rows, {resamples} resamples)",
            figure=f"{per:.3f} s",
            baseline=f"{old:.3f} s",
            ratio=old / median(ours),
            ratio_label="x faster",
            target="<= 0.3 s" if not quick else "-",
            passed=per <= 0.3 if not quick else None,
        )
    )
    report.rows.append(
        Row(
            what=f"total run time ({len(timings)} comparisons)",
            figure=f"{total:.0f} s",
        )
    )
    if quick:
        report.notes.append("quick: too few runs and rows to judge the targets (info only)")
    report.notes.append(
        f"binormal scores, labels ~ Bernoulli(0.5), n = {n}, AUC, {resamples} resamples, "
        f"one-sided {gate.confidence:.0%}, min_change = 0; the run's seed seeds the holdout "
        "and the bootstrap"
    )
    report.notes.append(
        "time per comparison: the median of judge() over every run; baseline: the same "
        "bootstrap with each resample's rows through auc() (the way compare worked before), "
        f"median of {len(baseline)}, the ratio against compare() on the same holdouts "
        f"({median(ours):.3f} s); same lower bound: {'yes' if same else 'NO'}"
    )
    report.data = {"found": {f"{d}/{r}": v for (d, r), v in found.items()}, "same": same}
    return report
