"""The continual-learning policies as pure functions of the monitored figures.

Each takes the figures already computed (daily realised metrics, PSI per day) and
returns a :class:`~runway_mlops.monitoring.store.PolicyDecision` — what to do, why, and
the figures it was decided on. Nothing here reads or writes anything; the monitoring
stage gathers the figures, records the decisions and acts on them.

* :func:`evaluate_retrain` — the champion's realised metric worse than a threshold on N
  of the last M monitored days, or a key feature's (or the score's) PSI above a limit on
  N of the last M days; at most one trigger per cooldown.
* :func:`evaluate_shadow_promotion` — a challenger whose mean daily metric over its last
  N shadow days (after its training window, on the same rows as the champion) beats the
  champion's by a margin.
* :func:`evaluate_rollback` — in a new champion's probation, its mean daily metric worse
  than the previous champion's on the same rows by more than a margin.

Days with fewer labelled rows than ``policies.min_rows`` are not evidence.
"""

from __future__ import annotations

import datetime as dt
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


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def evaluate_retrain(
    config: PoliciesConfig,
    ds: dt.date,
    quality: list[DayValue],
    drift: dict[dt.date, dict[str, float | None]],
    last_fired: dt.date | None,
) -> PolicyDecision:
    """Whether to trigger the training pipeline after monitoring ``ds``.

    ``quality``: the current champion's daily realised metric up to ``ds``;
    ``drift``: per day, PSI per watched feature (``score`` included) of the champion;
    ``last_fired``: the last earlier day a retraining was triggered.
    """
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
    if policy.threshold is not None:
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
                if name in policy.drift_features and value is not None and value > policy.drift_psi
            }
            if over:
                drifted.append((day, over))
        figures.update(
            drift_psi=policy.drift_psi,
            drift_features=policy.drift_features,
            drift_breaches=len(drifted),
            drift_breaches_needed=policy.drift_breaches,
            drifted_days={d.isoformat(): over for d, over in drifted},
        )
        latest = drift.get(ds, {})
        shown = ", ".join(f"{n} {_fmt(latest.get(n))}" for n in policy.drift_features)
        text = (
            f"PSI above {policy.drift_psi} on {len(drifted)} of the last {len(days)} days "
            f"(fires at {policy.drift_breaches}; today: {shown})"
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
    on days after the challenger's training window, up to ``ds``)."""
    policy = config.shadow_promotion
    metric = config.metric
    if not policy.enabled:
        return PolicyDecision(
            SHADOW_PROMOTION, "disabled", "the shadow promotion policy is disabled"
        )
    if challenger is None or champion is None:
        return PolicyDecision(SHADOW_PROMOTION, "no_challenger", "no challenger in shadow")
    usable = _pairs([p for p in pairs if p.ds <= ds], config.min_rows)[-policy.intervals :]
    figures: dict[str, object] = {
        "metric": metric,
        "challenger": challenger,
        "champion": champion,
        "intervals_needed": policy.intervals,
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
    ours = statistics.fmean(p.ours for p in usable)  # type: ignore[misc]
    theirs = statistics.fmean(p.theirs for p in usable)  # type: ignore[misc]
    delta = gain(metric, ours, theirs)
    figures.update(challenger_mean=ours, champion_mean=theirs, gain=delta)
    text = (
        f"mean daily {metric} over the last {len(usable)} shadow days: challenger v{challenger} "
        f"{ours:.4f} vs champion {theirs:.4f} (gain {delta:+.4f}, needs {policy.min_margin:+.4f})"
    )
    if delta < policy.min_margin:
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
    """Whether to put ``previous`` back (``pairs``: champion vs previous, same rows)."""
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
    figures: dict[str, object] = {
        "metric": metric,
        "champion": champion,
        "previous": previous,
        "probation": f"{probation_start}..{end - dt.timedelta(days=1)}",
        "margin": policy.margin,
        "min_intervals": policy.min_intervals,
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
    ours = statistics.fmean(p.ours for p in usable)  # type: ignore[misc]
    theirs = statistics.fmean(p.theirs for p in usable)  # type: ignore[misc]
    delta = gain(metric, ours, theirs)
    figures.update(champion_mean=ours, previous_mean=theirs, gain=delta)
    text = (
        f"mean daily {metric} in probation ({len(usable)} days): champion v{champion} {ours:.4f} "
        f"vs previous v{previous} {theirs:.4f} (change {delta:+.4f}, rollback below {-policy.margin:+.4f})"
    )
    if delta < -policy.margin:
        return PolicyDecision(ROLLBACK, "rollback", text, figures, champion)
    return PolicyDecision(ROLLBACK, "hold", text, figures, champion)
