"""The continual-learning policies as pure functions of the monitored figures.

Each takes the figures already computed (daily realised metrics, PSI per day) and
returns a :class:`~runway_mlops.monitoring.store.PolicyDecision` — what to do, why, and
the figures it was decided on. Nothing here reads or writes anything; the monitoring
stage gathers the figures, records the decisions and acts on them.

* :func:`evaluate_retrain` — the champion's realised metric worse than a threshold on N
  of the last M monitored days, or a key feature's (or the score's) PSI above a limit on
  N of the last M days; at most one trigger per cooldown.
* :func:`evaluate_shadow_promotion` — a challenger better than the champion on the same
  rows: the lower confidence bound of its mean daily gain over its shadow days (after its
  training window) above a margin, by a paired test whose error is spent over a fixed
  horizon of daily looks.
* :func:`evaluate_rollback` — in a new champion's probation, the upper confidence bound
  of its mean daily change against the previous champion (same rows) below minus a
  margin, the error spent over the probation's looks.

Why paired tests: one day's ROC AUC moves by ~0.07 and two models that differ only in
their seed differ by ~0.013 a day, so comparing two means over a few days follows noise
(an equal challenger was promoted within 10 days 47 % of the time). Each look uses the
one-sided Student-t bound of the mean paired difference at level ``(1 - confidence) /
looks`` (Bonferroni over the looks of the horizon), so the chance of a wrong promotion
or rollback over the whole horizon is at most ``1 - confidence``; ``bench/decisions.py``
measures both error rates and the detection rates on the real data.

Days with fewer labelled rows than ``policies.min_rows`` are not evidence.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runway_mlops.config import LOWER_IS_BETTER
from runway_mlops.monitoring.store import PolicyDecision

if TYPE_CHECKING:
    from runway_mlops.config import PoliciesConfig

RETRAIN, SHADOW_PROMOTION, ROLLBACK = "retrain", "shadow_promotion", "rollback"
POLICIES = (ROLLBACK, SHADOW_PROMOTION, RETRAIN)


@dataclass(frozen=True)
class DayValue:
    """One model's realised metric on one monitored day."""

    ds: dt.date
    value: float | None
    rows: int


@dataclass(frozen=True)
class DayPair:
    """Two models' realised metrics on the same rows of one day."""

    ds: dt.date
    ours: float | None  # the champion (retrain/rollback) or the challenger (shadow)
    theirs: float | None
    rows: int


def gain(metric: str, value: float, other: float) -> float:
    """How much better ``value`` is than ``other`` (negative: worse), for ``metric``."""
    return (other - value) if metric in LOWER_IS_BETTER else (value - other)


@dataclass(frozen=True)
class PairedBound:
    """The mean daily gain of ``ours`` over ``theirs`` with a one-sided confidence bound."""

    days: int
    mean: float
    sd: float
    lower: float
    upper: float
    level: float  # the one-sided error of this look


@functools.cache
def _t_quantile(p: float, df: int) -> float:
    from scipy.stats import t as student

    return float(student.ppf(p, df))


def paired_bound(gains: list[float], alpha: float) -> PairedBound:
    """Student-t one-sided bounds (each at error ``alpha``) of the mean of daily ``gains``."""
    n = len(gains)
    mean = statistics.fmean(gains)
    sd = statistics.stdev(gains) if n > 1 else 0.0
    half = _t_quantile(1 - alpha, n - 1) * sd / math.sqrt(n) if n > 1 else math.inf
    return PairedBound(n, mean, sd, mean - half, mean + half, alpha)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def evaluate_retrain(
    config: PoliciesConfig,
    ds: dt.date,
    quality: list[DayValue],
    drift: dict[dt.date, dict[str, float | None]],
    last_fired: dt.date | None,
    drift_limits: dict[str, float] | None = None,
) -> PolicyDecision:
    """Whether to trigger the training pipeline after monitoring ``ds``.

    ``quality``: the current champion's daily realised metric up to ``ds``;
    ``drift``: per day, PSI per watched feature (``score`` included) of the champion;
    ``last_fired``: the last earlier day a retraining was triggered;
    ``drift_limits``: per feature, the PSI above which it breaches when that is above
    ``drift_psi`` (calibrated on the champion's validation days; ``inf``: never).
    """
    limits = drift_limits or {}
    policy = config.retrain
    metric = config.metric
    evidence = [
        d for d in quality if d.ds <= ds and d.rows >= config.min_rows and d.value is not None
    ]
    recent = evidence[-policy.of_last :]
    figures: dict[str, object] = {
        "metric": metric,
        "window_end": ds.isoformat(),
        "of_last": policy.of_last,
        "days": [{"ds": d.ds.isoformat(), "value": d.value, "rows": d.rows} for d in recent],
        "cooldown_days": policy.cooldown_days,
        "last_fired": last_fired.isoformat() if last_fired else None,
    }
    if not policy.enabled:
        return PolicyDecision(RETRAIN, "disabled", "the retrain policy is disabled", figures)

    why: list[str] = []
    fired: list[str] = []
    if policy.threshold is not None and policy.confidence is not None:
        # The champion's mean realised metric over the last of_last days shown worse than
        # the threshold: the one-sided bound (Student t over days) on the wrong side of it.
        # (fewer than of_last days of evidence: held below, as for the count)
        worse = "above" if metric in LOWER_IS_BETTER else "below"
        margins = [gain(metric, d.value, policy.threshold) for d in recent]  # type: ignore[arg-type]
        bound = paired_bound(margins, 1 - policy.confidence) if len(margins) > 1 else None
        if bound is not None:
            figures.update(
                threshold=policy.threshold,
                confidence=policy.confidence,
                mean_margin=round(bound.mean, 5),
                upper_bound=round(bound.upper, 5),
            )
            text = (
                f"realised {metric} {worse} {policy.threshold} over the last {len(recent)} days "
                f"at {policy.confidence:.0%} confidence (mean margin {bound.mean:+.4f}, upper "
                f"bound {bound.upper:+.4f}; fires below 0)"
            )
            (fired if bound.upper < 0 else why).append(text)
    elif policy.threshold is not None:
        breaches = [d for d in recent if gain(metric, d.value, policy.threshold) < 0]  # type: ignore[arg-type]
        figures.update(
            threshold=policy.threshold, breaches=len(breaches), breaches_needed=policy.breaches
        )
        worse = "above" if metric in LOWER_IS_BETTER else "below"
        text = (
            f"realised {metric} {worse} {policy.threshold} on {len(breaches)} of the last "
            f"{len(recent)} days (fires at {policy.breaches} of {policy.of_last})"
        )
        (fired if len(breaches) >= policy.breaches else why).append(text)
    if policy.drift_psi is not None:
        days = [d.ds for d in recent]
        drifted = []
        for day in days:
            over = {
                name: value
                for name, value in drift.get(day, {}).items()
                if name in policy.drift_features
                and value is not None
                and value > max(policy.drift_psi, limits.get(name, 0.0))
            }
            if over:
                drifted.append((day, over))
        figures.update(
            # null: a day-level feature, never a breach (JSON has no infinity)
            drift_limits={
                n: None if math.isinf(limits[n]) else round(limits[n], 4)
                for n in policy.drift_features
                if n in limits
            },
            drift_psi=policy.drift_psi,
            drift_features=policy.drift_features,
            drift_breaches=len(drifted),
            drift_breaches_needed=policy.drift_breaches,
            drifted_days={d.isoformat(): over for d, over in drifted},
        )
        latest = drift.get(ds, {})
        shown = ", ".join(f"{n} {_fmt(latest.get(n))}" for n in policy.drift_features)
        raised = [
            f"{n} {'never (day-level)' if math.isinf(limits[n]) else f'{limits[n]:.3f}'}"
            for n in policy.drift_features
            if limits.get(n, 0.0) > policy.drift_psi
        ]
        calibrated = f", calibrated: {', '.join(raised)}" if raised else ""
        text = (
            f"PSI above {policy.drift_psi}{calibrated} on {len(drifted)} of the last "
            f"{len(days)} days (fires at {policy.drift_breaches}; today: {shown})"
        )
        (fired if len(drifted) >= policy.drift_breaches else why).append(text)
    if policy.threshold is None and policy.drift_psi is None:
        return PolicyDecision(
            RETRAIN, "disabled", "no threshold and no drift_psi configured", figures
        )
    if len(recent) < policy.of_last:
        # "N of the last M days" needs M days: a champion promoted days ago is not judged
        # on its first few (noisy) days.
        return PolicyDecision(
            RETRAIN,
            "hold",
            f"{len(recent)} of the {policy.of_last} days of evidence the policy needs "
            f"(days with at least {config.min_rows} labelled rows) for this champion so far",
            figures,
        )
    if not fired:
        return PolicyDecision(RETRAIN, "hold", "; ".join(why), figures)
    if last_fired is not None and (ds - last_fired).days < policy.cooldown_days:
        until = last_fired + dt.timedelta(days=policy.cooldown_days)
        return PolicyDecision(
            RETRAIN,
            "cooldown",
            f"{'; '.join(fired)} — but a retraining was triggered for {last_fired}, within the "
            f"{policy.cooldown_days}-day cooldown (until {until})",
            figures,
        )
    return PolicyDecision(RETRAIN, "fire", "; ".join(fired), figures)


def _pairs(pairs: list[DayPair], min_rows: int) -> list[DayPair]:
    return [p for p in pairs if p.rows >= min_rows and p.ours is not None and p.theirs is not None]


def evaluate_shadow_promotion(
    config: PoliciesConfig,
    ds: dt.date,
    challenger: str | None,
    champion: str | None,
    pairs: list[DayPair],
    *,
    promotion_policy: str,
) -> PolicyDecision:
    """Whether the challenger has won in shadow (``pairs``: challenger vs served champion,
    on days after the challenger's training window, up to ``ds``).

    The first ``horizon_days`` usable days are the challenger's evidence; from
    ``intervals`` days on, each look asks whether the lower confidence bound of the mean
    daily gain is above ``min_margin`` (error spent over the horizon's looks).
    """
    policy = config.shadow_promotion
    metric = config.metric
    if not policy.enabled:
        return PolicyDecision(
            SHADOW_PROMOTION, "disabled", "the shadow promotion policy is disabled"
        )
    if challenger is None or champion is None:
        return PolicyDecision(SHADOW_PROMOTION, "no_challenger", "no challenger in shadow")
    usable = _pairs(sorted((p for p in pairs if p.ds <= ds), key=lambda p: p.ds), config.min_rows)
    usable = usable[: policy.horizon_days]
    looks = policy.horizon_days - policy.intervals + 1
    figures: dict[str, object] = {
        "metric": metric,
        "challenger": challenger,
        "champion": champion,
        "intervals_needed": policy.intervals,
        "horizon_days": policy.horizon_days,
        "confidence": policy.confidence,
        "min_margin": policy.min_margin,
        "days": [
            {"ds": p.ds.isoformat(), "challenger": p.ours, "champion": p.theirs, "rows": p.rows}
            for p in usable
        ],
    }
    if len(usable) < policy.intervals:
        return PolicyDecision(
            SHADOW_PROMOTION,
            "hold",
            f"challenger v{challenger} has {len(usable)} of {policy.intervals} shadow days of evidence",
            figures,
            challenger,
        )
    bound = paired_bound(
        [gain(metric, p.ours, p.theirs) for p in usable],  # type: ignore[arg-type]
        (1 - policy.confidence) / looks,
    )
    ours = statistics.fmean(p.ours for p in usable)  # type: ignore[misc]
    theirs = statistics.fmean(p.theirs for p in usable)  # type: ignore[misc]
    figures.update(
        challenger_mean=ours,
        champion_mean=theirs,
        gain=bound.mean,
        gain_sd=bound.sd,
        gain_lower=bound.lower,
        look_error=bound.level,
    )
    text = (
        f"{len(usable)} shadow days: mean daily {metric} challenger v{challenger} {ours:.4f} vs "
        f"champion {theirs:.4f}, gain {bound.mean:+.4f} (lower bound {bound.lower:+.4f} at "
        f"{policy.confidence:.0%} over {looks} looks; needs above {policy.min_margin:+.4f})"
    )
    if bound.lower <= policy.min_margin:
        if len(usable) >= policy.horizon_days:
            text += f"; not better within its {policy.horizon_days}-day horizon: stays challenger"
        return PolicyDecision(SHADOW_PROMOTION, "hold", text, figures, challenger)
    if promotion_policy == "manual":
        return PolicyDecision(
            SHADOW_PROMOTION,
            "recommend",
            text + "; promotion policy is manual: promote it by hand (runway promote)",
            figures,
            challenger,
        )
    return PolicyDecision(SHADOW_PROMOTION, "promote", text, figures, challenger)


def evaluate_rollback(
    config: PoliciesConfig,
    ds: dt.date,
    champion: str | None,
    previous: str | None,
    probation_start: dt.date | None,
    pairs: list[DayPair],
) -> PolicyDecision:
    """Whether to put ``previous`` back (``pairs``: champion vs previous, same rows).

    From ``min_intervals`` days of probation on, each look asks whether the upper
    confidence bound of the champion's mean daily change is below ``-margin`` (error
    spent over the probation's looks).
    """
    policy = config.rollback
    metric = config.metric
    if not policy.enabled:
        return PolicyDecision(ROLLBACK, "disabled", "the rollback policy is disabled")
    if champion is None or previous is None or probation_start is None:
        return PolicyDecision(
            ROLLBACK,
            "not_in_probation",
            "no promotion with a previous champion to go back to",
            {},
            champion,
        )
    end = probation_start + dt.timedelta(days=policy.probation_days)
    looks = policy.probation_days - policy.min_intervals + 1
    figures: dict[str, object] = {
        "metric": metric,
        "champion": champion,
        "previous": previous,
        "probation": f"{probation_start}..{end - dt.timedelta(days=1)}",
        "margin": policy.margin,
        "min_intervals": policy.min_intervals,
        "confidence": policy.confidence,
    }
    if not probation_start <= ds < end:
        return PolicyDecision(
            ROLLBACK,
            "not_in_probation",
            f"v{champion}'s probation is {figures['probation']}; {ds} is outside it",
            figures,
            champion,
        )
    usable = _pairs([p for p in pairs if probation_start <= p.ds <= ds], config.min_rows)
    figures["days"] = [
        {"ds": p.ds.isoformat(), "champion": p.ours, "previous": p.theirs, "rows": p.rows}
        for p in usable
    ]
    if len(usable) < policy.min_intervals:
        return PolicyDecision(
            ROLLBACK,
            "hold",
            f"v{champion} in probation: {len(usable)} of {policy.min_intervals} days of evidence "
            f"against v{previous} so far",
            figures,
            champion,
        )
    bound = paired_bound(
        [gain(metric, p.ours, p.theirs) for p in usable],  # type: ignore[arg-type]
        (1 - policy.confidence) / looks,
    )
    ours = statistics.fmean(p.ours for p in usable)  # type: ignore[misc]
    theirs = statistics.fmean(p.theirs for p in usable)  # type: ignore[misc]
    figures.update(
        champion_mean=ours,
        previous_mean=theirs,
        gain=bound.mean,
        gain_sd=bound.sd,
        gain_upper=bound.upper,
        look_error=bound.level,
    )
    text = (
        f"{len(usable)} days in probation: mean daily {metric} champion v{champion} {ours:.4f} "
        f"vs previous v{previous} {theirs:.4f}, change {bound.mean:+.4f} (upper bound "
        f"{bound.upper:+.4f} at {policy.confidence:.0%} over {looks} looks; rollback below "
        f"{-policy.margin:+.4f})"
    )
    if bound.upper < -policy.margin:
        return PolicyDecision(ROLLBACK, "rollback", text, figures, champion)
    return PolicyDecision(ROLLBACK, "hold", text, figures, champion)
