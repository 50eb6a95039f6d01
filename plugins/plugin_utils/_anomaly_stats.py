# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The statistics of the checks: z-scores, histogram estimates, the family-wise threshold. Numbers only."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

# Steady synthetic traffic has a history stddev near zero: without a floor any wobble would alarm.
# A floor of 10% of the usual level means a steady service alarms from a change of sigma x 10%
# (20% at sigma 2; critical from 40%).
RELATIVE_STDDEV_FLOOR = 0.10

# Below a few milliseconds a service's mean latency moves with the node's CPU load, not with the code:
# on a busy 2-core node the same backends measured 1 ms, then 3 ms, then 15 ms. A latency change counts
# in units of at least 5 ms, so at sigma 2 it must be 10 ms or more before it alarms.
LATENCY_STDDEV_FLOOR_SECONDS = 0.005
P95 = 0.95
P99 = 0.99

# A shadow that completed fewer than a quarter of the copies its percentage predicts is not being
# delivered to (it hangs, or refuses connections). A healthy one sits at the expectation: mirroring is a
# counter, and the window is judged only once the percentage has held all of it (expected_copies); the
# margin absorbs Traefik applying the step a second or two late and Prometheus' extrapolation.
MIN_DELIVERED_SHARE = 0.25


@dataclass(frozen=True)
class HistogramBucket:
    """One cumulative bucket: how many observations were at most ``upper_bound`` (``le``)."""

    upper_bound: float
    cumulative_count: float


def two_proportion_z(
    hits_a: float, total_a: float, hits_b: float, total_b: float, *, continuity: bool = False
) -> float:
    """Pooled two-proportion z-score of ``hits_a/total_a`` above ``hits_b/total_b``.

    ``z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b))`` with ``p`` the pooled proportion. When both
    samples are all-hits or all-misses the proportions are equal and there is nothing to score: 0.

    ``continuity`` moves ``hits_a`` half a hit towards ``b``'s proportion when it is above it: hits
    are whole and rare (errors, requests in a 1% tail), and the normal approximation alone calls 5 of
    100 in a 1% tail (main 10 of 1,000) z 3.29, although 5 or more happen 0.37% of the time (z 2.68);
    corrected it scores 2.93.
    """
    if total_a <= 0 or total_b <= 0:
        raise ValueError("two_proportion_z needs two non-empty samples")
    if continuity and hits_a / total_a > hits_b / total_b:
        hits_a = max(hits_a - 0.5, hits_b / total_b * total_a)
    proportion_a = hits_a / total_a
    proportion_b = hits_b / total_b
    pooled = (hits_a + hits_b) / (total_a + total_b)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    return _safe_ratio(proportion_a - proportion_b, standard_error)


def welch_z(
    mean_a: float, variance_a: float, count_a: float, mean_b: float, variance_b: float, count_b: float
) -> float:
    """z-score of ``mean_a`` above ``mean_b`` for two independent samples (Welch's standard error).

    With hundreds of requests per window the t distribution is indistinguishable from the normal one,
    so the statistic is read as a z-score against ``sigma``.
    """
    if count_a <= 0 or count_b <= 0:
        raise ValueError("welch_z needs two non-empty samples")
    standard_error = math.sqrt(variance_a / count_a + variance_b / count_b)
    return _safe_ratio(mean_a - mean_b, standard_error)


def mean_and_stddev(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for a single value)."""
    if not values:
        raise ValueError("mean_and_stddev needs at least one value")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


def history_z(current: float, history_mean: float, history_stddev: float, stddev_floor: float) -> float:
    """``(current - mean) / max(stddev, floor)``: the floor keeps a flat history from alarming on noise."""
    return _safe_ratio(current - history_mean, max(history_stddev, stddev_floor))


def family_wise_sigma(sigma: float, comparisons: int) -> float:
    """The per-comparison z threshold that keeps the chance of ANY false alarm among ``comparisons``
    one-sided tests at that of a single ``sigma`` test (Bonferroni).

    Cluster-wide, thousands of healthy services are each compared three times: at a plain sigma 2
    (2.3% per comparison) about 7% of them would be flagged on every check. Holding the whole answer to
    sigma's false-alarm rate turns sigma 2 over 3,000 comparisons into z >= 4.3. A launch's gate holds
    each step to it: one shadow and one main (8 deciding comparisons) over 5 checks is z >= 3.3.
    """
    if comparisons <= 1:
        return sigma
    normal = NormalDist()
    tail = (1.0 - normal.cdf(sigma)) / comparisons
    return max(sigma, normal.inv_cdf(1.0 - tail))


def normalise_buckets(buckets: Iterable[HistogramBucket]) -> tuple[HistogramBucket, ...] | None:
    """Sort buckets, make counts monotonic (``increase()`` extrapolation can break that, as Prometheus'
    own ``histogram_quantile`` also corrects) and require the ``+Inf`` bucket; ``None`` if unusable."""
    ordered = sorted(buckets, key=lambda bucket: bucket.upper_bound)
    if len(ordered) < 2 or not math.isinf(ordered[-1].upper_bound):
        return None
    monotonic: list[HistogramBucket] = []
    running = 0.0
    for bucket in ordered:
        running = max(running, bucket.cumulative_count)
        monotonic.append(HistogramBucket(bucket.upper_bound, running))
    return tuple(monotonic)


def histogram_total(buckets: Sequence[HistogramBucket]) -> float:
    usable = normalise_buckets(buckets)
    return usable[-1].cumulative_count if usable else 0.0


def histogram_quantile(quantile: float, buckets: Sequence[HistogramBucket]) -> float | None:
    """The same estimate as PromQL's ``histogram_quantile``: linear interpolation inside the bucket
    that holds the rank, and the highest finite bound when the rank falls into ``+Inf``.

    Computed here rather than in PromQL so the p95 and the share of requests above the main service's
    p95 come from the very same bucket counts (and without a further query).
    """
    usable = normalise_buckets(buckets)
    if usable is None or not 0 < quantile < 1:
        return None
    observations = usable[-1].cumulative_count
    if observations <= 0:
        return None
    rank = quantile * observations
    index = next(i for i, bucket in enumerate(usable) if bucket.cumulative_count >= rank)
    if index == len(usable) - 1:
        return usable[-2].upper_bound
    if index == 0 and usable[0].upper_bound <= 0:
        return usable[0].upper_bound
    lower_bound = usable[index - 1].upper_bound if index > 0 else 0.0
    below = usable[index - 1].cumulative_count if index > 0 else 0.0
    in_bucket = usable[index].cumulative_count - below
    return lower_bound + (usable[index].upper_bound - lower_bound) * (rank - below) / in_bucket


def histogram_share_at_or_below(value: float, buckets: Sequence[HistogramBucket]) -> float | None:
    """Share of observations at most ``value``, interpolating linearly inside a bucket (the inverse
    of ``histogram_quantile``). Beyond the highest finite bound nothing is known, so that bound's
    share is returned."""
    usable = normalise_buckets(buckets)
    if usable is None or usable[-1].cumulative_count <= 0:
        return None
    total = usable[-1].cumulative_count
    lower_bound, below = 0.0, 0.0
    for bucket in usable:
        if math.isinf(bucket.upper_bound) or value <= lower_bound:
            return below / total
        if value <= bucket.upper_bound:
            fraction = (value - lower_bound) / (bucket.upper_bound - lower_bound)
            return (below + (bucket.cumulative_count - below) * fraction) / total
        lower_bound, below = bucket.upper_bound, bucket.cumulative_count
    return below / total  # pragma: no cover - normalise_buckets guarantees a +Inf bucket


def histogram_variance(buckets: Sequence[HistogramBucket], total_sum: float) -> float | None:
    """Variance of the observations estimated from the buckets and the exact ``_sum``.

    Each finite bucket counts as uniform over its width: its observations contribute
    ``(midpoint - mean)^2 + width^2 / 12``. The overflow (``+Inf``) bucket is placed where the exact
    sum says its observations are on average (at least the highest finite bound). The width term
    keeps the estimate above zero even when all requests land in one bucket, so a z-score never
    divides by zero.
    """
    usable = normalise_buckets(buckets)
    if usable is None or usable[-1].cumulative_count <= 0:
        return None
    total = usable[-1].cumulative_count
    mean = total_sum / total
    squares = 0.0
    finite_sum = 0.0
    lower_bound, below = 0.0, 0.0
    for bucket in usable[:-1]:
        count = bucket.cumulative_count - below
        midpoint = (lower_bound + bucket.upper_bound) / 2
        width = bucket.upper_bound - lower_bound
        squares += count * ((midpoint - mean) ** 2 + width**2 / 12)
        finite_sum += count * midpoint
        lower_bound, below = bucket.upper_bound, bucket.cumulative_count
    overflow = total - below
    if overflow > 0:
        overflow_mean = max(lower_bound, (total_sum - finite_sum) / overflow)
        squares += overflow * (overflow_mean - mean) ** 2
    return squares / total


def _safe_ratio(numerator: float, denominator: float) -> float:
    # Callers floor their denominators; should a zero slip through, a huge finite z keeps results
    # JSON-serialisable (JSON has no infinity).
    if denominator > 0:
        return numerator / denominator
    return 0.0 if numerator == 0 else math.copysign(1e9, numerator)


def delivery_z(delivered: float, expected: float) -> float:
    """How far below ``expected`` the completed copies are, in Poisson standard deviations; 0 unless fewer
    than MIN_DELIVERED_SHARE of them completed. Mirroring is a counter (every n-th request), so a healthy
    shadow sits at the expectation give or take requests in flight; a shortfall this large is a shadow
    that does not answer, not chance."""
    if expected <= 0 or delivered >= MIN_DELIVERED_SHARE * expected:
        return 0.0
    return (expected - delivered) / math.sqrt(expected)


def latency_effect_z(
    statistical_z: float,
    value: float,
    baseline: float,
    *,
    relative: float = RELATIVE_STDDEV_FLOOR,
    floor: float = LATENCY_STDDEV_FLOOR_SECONDS,
) -> float:
    """A shadow-vs-main latency z-score that also requires a difference worth reporting.

    With thousands of requests per window a significance test flags differences of a few percent
    (on the local cluster, mirrored copies are routinely 0.1 ms slower than the user-facing requests
    at about 1 ms). The difference is therefore also measured in units of the history check's floor,
    ``max(10% of the baseline, 5 ms)``, and the smaller of the two z-scores counts: at sigma 2 a
    shadow alarms only when it is significantly AND at least 20% (and 10 ms) slower. ``relative`` and
    ``floor`` set that unit (the tails use a larger one: TAIL_RELATIVE_FLOOR, TAIL_FLOOR_SECONDS).
    """
    if statistical_z <= 0:
        return statistical_z
    tolerance = max(relative * baseline, floor)
    return min(statistical_z, (value - baseline) / tolerance)


def tail_z(
    quantile: float, shadow_buckets: Sequence[HistogramBucket], main_buckets: Sequence[HistogramBucket]
) -> float:
    """Is the shadow's tail heavier? Take the main service's ``quantile`` (p95, p99) as a threshold and
    compare the shares of requests slower than it (5% or 1% on main) with a two-proportion z-test. A
    quantile has no simple standard error of its own; a share of requests does. A regression on 5% of
    requests barely moves the p95 but puts five times the main's share beyond its p99."""
    threshold = histogram_quantile(quantile, main_buckets)
    shadow_share = histogram_share_at_or_below(threshold, shadow_buckets) if threshold is not None else None
    main_share = histogram_share_at_or_below(threshold, main_buckets) if threshold is not None else None
    if shadow_share is None or main_share is None:
        raise ValueError("tail_z needs two non-empty histograms")
    shadow_total = histogram_total(shadow_buckets)
    main_total = histogram_total(main_buckets)
    return two_proportion_z(
        (1 - shadow_share) * shadow_total,
        shadow_total,
        (1 - main_share) * main_total,
        main_total,
        continuity=True,
    )


def error_rate_stddev_floor(history_mean: float, current_requests: float) -> float:
    """Binomial sampling noise of an error rate over ``current_requests`` requests. A history without
    errors (mean 0) is treated as one error per window's worth of requests, so the floor stays > 0."""
    proportion = min(max(history_mean, 1 / current_requests), 1 - 1 / current_requests)
    return math.sqrt(proportion * (1 - proportion) / current_requests)


def continuity_corrected(rate: float, baseline: float, requests: float) -> float:
    """``rate`` moved half an error towards ``baseline`` (never past it).

    Errors are whole counts and rare, so the normal approximation behind the z-score is skewed: with
    about one error per window as usual, three errors already score z 2 although that happens about
    8% of the time. On Poisson-like synthetic traffic (bench/anomaly_bench.py) the uncorrected history
    check flagged ~4% of healthy services at sigma 2 instead of the promised 2.3%; corrected, ~2%.
    """
    if rate <= baseline:
        return rate
    return max(baseline, rate - 0.5 / requests)
