"""Table-driven tests of the ported controllers, in the style of Kubernetes' HPA tests.

Each row feeds a sequence of observations to a fresh policy and lists the target
each decision must produce, computed by hand from the source's formulas (the
arithmetic is in the comments), plus a substring the last reason must contain.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from adaptive_lab.policies import (
    AIMDPolicy,
    Gradient2Policy,
    HillClimbingPolicy,
    Observation,
    OccupancyPolicy,
    Policy,
    TargetTrackingPolicy,
    UtilizationBandPolicy,
    VegasPolicy,
)

NAN = float("nan")


def o(t: float = 0.0, workers: int = 10, **kw: Any) -> Observation:
    kw.setdefault("min_workers", 1)
    kw.setdefault("max_workers", 100)
    return Observation(t=t, workers=workers, **kw)


@dataclass
class Row:
    id: str
    policy: Policy
    obs: list[Observation]
    targets: list[int]
    reason: str  # substring of the last decision's reason
    reasons: dict[int, str] = field(default_factory=dict)  # index -> substring


def check(row: Row) -> None:
    policy = row.policy.with_params()  # fresh state, whatever ran before
    decisions = [policy(ob) for ob in row.obs]
    assert [d.target for d in decisions] == row.targets, [d.reason for d in decisions]
    assert row.reason in decisions[-1].reason, decisions[-1].reason
    for i, sub in row.reasons.items():
        assert sub in decisions[i].reason, (i, decisions[i].reason)


# -- Netflix AIMD ---------------------------------------------------------------------
AIMD_ROWS = [
    # limit starts at the pool size 10; 5*2 >= 10 -> 11; 6*2 >= 11 -> 12; 5*2 < 12 -> hold
    Row("grow-then-app-limited", AIMDPolicy(),
        [o(0, 10, busy=5, latency_mean=0.01), o(1, 11, busy=6, latency_mean=0.01),
         o(2, 12, busy=5, latency_mean=0.01)],
        [11, 12, 12], "app-limited (inflight 5 * 2 < 12)", {0: "+1 -> 11"}),
    # rtt 6 s > timeout 5 s: int(20 * 0.9) = 18, then int(18 * 0.9) = int(16.2) = 16
    Row("timeout-backoff", AIMDPolicy(),
        [o(0, 20, busy=20, latency_mean=6.0), o(1, 18, busy=18, latency_mean=6.0)],
        [18, 16], "rtt 6.000 s > timeout 5 s"),
    # first: 10*2 >= 10 -> 11; then 2 failures: int(11 * 0.9) = int(9.9) = 9
    Row("failure-is-a-drop", AIMDPolicy(),
        [o(0, 10, busy=10, latency_mean=0.01, failed=0),
         o(1, 11, busy=10, latency_mean=0.01, failed=2)],
        [11, 9], "2 task(s) failed"),
    # no task finished: rtt NaN, no failure -> hold the limit (10)
    Row("nan-rtt-holds", AIMDPolicy(), [o(0, 10, busy=10)], [10], "rtt unknown"),
    # nothing finished, running or queued: a pool gives its workers back
    Row("idle-drops-to-min", AIMDPolicy(), [o(0, 10, min_workers=2)], [2], "idle"),
    Row("queued-is-not-idle", AIMDPolicy(), [o(0, 10, queue_depth=3)], [10], "rtt unknown"),
    # int(5 * 0.9) = 4 < min 5 -> bounded to 5 (source: minLimit)
    Row("min-bound", AIMDPolicy(), [o(0, 5, busy=5, latency_mean=9.0, min_workers=5)],
        [5], "bounded to [5, 100]"),
    # int(1 * 0.9) = 0 -> bounded to min 1
    Row("tiny-limit", AIMDPolicy(), [o(0, 1, busy=1, latency_mean=9.0)], [1], "-> 0"),
    # initial_limit 20 over a pool of 4: 4*2 < 20 -> hold at 20
    Row("initial-limit", AIMDPolicy(initial_limit=20), [o(0, 4, busy=4, latency_mean=0.01)],
        [20], "app-limited"),
    # backoff 0.5: int(20 * 0.5) = 10; timeout 0.05: rtt 0.06 is a drop
    Row("params", AIMDPolicy(backoff_ratio=0.5, timeout=0.05),
        [o(0, 20, busy=20, latency_mean=0.06)], [10], "limit 20 * 0.5 -> 10"),
    # p50 as rtt: p50 6 s > 5 s -> drop although the mean is small; 10 * 0.9 = 9
    Row("p50", AIMDPolicy(use_p50=True),
        [o(0, 10, busy=10, latency_mean=0.01, latency_p50=6.0)], [9], "timeout"),
]

# -- Netflix Gradient2 ----------------------------------------------------------------
_warm = [o(i, 20, busy=0, latency_mean=0.01) for i in range(10)]  # 10 app-limited samples
GRADIENT2_ROWS = [
    # steady rtt: gradient = min(1, 1.5 * 0.01/0.01) = 1; new = L + 4;
    # L' = 0.8 L + 0.2 (L + 4) = L + 0.8: 20.8 -> 20, 21.6 -> 21, 22.4 -> 22
    Row("steady-grows-0.8-per-step", Gradient2Policy(),
        [o(i, 20, busy=20, latency_mean=0.01) for i in range(3)],
        [20, 21, 22], "limit 21.60 -> 22.40", {0: "gradient 1.000"}),
    # busy 9 < 20 / 2 -> hold
    Row("app-limited", Gradient2Policy(), [o(0, 20, busy=9, latency_mean=0.01)], [20],
        "app-limited (inflight 9 < 20.00 / 2)"),
    # long = mean of 10 warm-up samples = 0.01; then rtt 0.1:
    # long = 0.01 + (0.1 - 0.01) * 2/601 = 0.0102995; gradient = max(0.5, 1.5*0.0103/0.1) = 0.5
    # new = 20 * 0.5 + 4 = 14; L = 0.8*20 + 0.2*14 = 18.8 -> 18
    Row("latency-spike-shrinks", Gradient2Policy(),
        [*_warm, o(10, 20, busy=20, latency_mean=0.1)], [20] * 10 + [18],
        "gradient 0.500", {9: "app-limited"}),
    # tolerance 1, smoothing 1: long = 0.01 + 0.01 * 2/601 = 0.0100333; gradient =
    # 0.0100333 / 0.02 = 0.501664; new = 20 * 0.501664 + 4 = 14.03 -> 14
    Row("no-smoothing", Gradient2Policy(rtt_tolerance=1.0, smoothing=1.0),
        [*_warm, o(10, 20, busy=20, latency_mean=0.02)], [20] * 10 + [14], "-> 14.03"),
    # warm-up mean: rtt 0.1 then 0.01 -> long 0.055; 0.055 / 0.01 > 2 -> long *= 0.95
    Row("long-rtt-decays", Gradient2Policy(),
        [o(0, 20, busy=0, latency_mean=0.1), o(1, 20, busy=0, latency_mean=0.01)],
        [20, 20], "long rtt decayed to 0.0522"),  # 0.05225 in binary is just below
    Row("nan-rtt-holds", Gradient2Policy(), [o(0, 20, busy=20)], [20], "rtt unknown"),
    # queue_size 10, smoothing 0.5: L = 0.5*20 + 0.5*(20 + 10) = 25
    Row("queue-size", Gradient2Policy(queue_size=10, smoothing=0.5),
        [o(0, 20, busy=20, latency_mean=0.01)], [25], "-> 25.00"),
    # max bound 21: 20.8 -> 20, 21.6 -> bounded 21, 22.4 -> bounded 21
    Row("max-bound", Gradient2Policy(),
        [o(i, 20, busy=20, latency_mean=0.01, max_workers=21) for i in range(3)],
        [20, 21, 21], "-> 21.00"),
]

# -- Netflix Vegas --------------------------------------------------------------------
# no probe within these rows: the first probe needs jitter (>= 0.5) * 30 * 20 >= 300 samples
_r2 = 0.01 / 0.85  # 1 - 0.01/_r2 = 0.15
_r3 = 0.01 / 0.94  # 1 - 0.01/_r3 = 0.06
VEGAS_ROWS = [
    Row("vegas-sequence", VegasPolicy(), [
        o(0, 20, busy=20, latency_mean=0.01),  # first rtt: rtt_noload = 0.01, hold 20
        # queue = ceil(20 * (1 - 1)) = 0 <= log10 -> 1: +beta 6 -> 26
        o(1, 20, busy=20, latency_mean=0.01),
        # queue = ceil(26 * (1 - 0.5)) = 13 > beta 6 -> 26 - 1 = 25
        o(2, 26, busy=26, latency_mean=0.02),
        # queue = ceil(25 * 0.15) = ceil(3.75) = 4 in [alpha 3, beta 6] -> hold 25
        o(3, 25, busy=25, latency_mean=_r2),
        # queue = ceil(25 * 0.06) = ceil(1.5) = 2; 1 < 2 < alpha 3 -> +1 = 26
        o(4, 25, busy=25, latency_mean=_r3),
        # busy 12 * 2 < 26 -> hold
        o(5, 26, busy=12, latency_mean=0.02),
        # a failure: 26 - 1 = 25
        o(6, 26, busy=26, latency_mean=0.02, failed=1),
        # rtt below noload: new min, hold
        o(7, 25, busy=25, latency_mean=0.005),
    ], [20, 26, 25, 25, 26, 26, 25, 25], "new min rtt 0.0050 s",
        {0: "new min rtt", 1: "+beta 6", 2: "> beta 6", 3: "in [3, 6]", 4: "< alpha 3: +1",
         5: "app-limited", 6: "drop (1 task(s) failed)"}),
    # smoothing 0.5: 0.5 * 20 + 0.5 * 26 = 23
    Row("vegas-smoothing", VegasPolicy(smoothing=0.5),
        [o(0, 20, busy=20, latency_mean=0.01), o(1, 20, busy=20, latency_mean=0.01)],
        [20, 23], "limit 23.00"),
    # log10(200) = 2.3 -> 2: queue 0 <= 2 -> + 6*2 = 212 -> bounded by max 205
    Row("vegas-log10", VegasPolicy(initial_limit=200),
        [o(0, 200, busy=200, latency_mean=0.01, max_workers=205),
         o(1, 200, busy=200, latency_mean=0.01, max_workers=205)],
        [200, 205], "+beta 12"),
]


def test_vegas_probe_resets_noload() -> None:
    # probe when jitter * 30 * limit <= count; with limit 1, jitter in [0.5, 1): the
    # probe comes at sample ceil(jitter * 30) (max_workers 1 keeps the limit at 1).
    jitter = random.Random(7).uniform(0.5, 1.0)
    due = math.ceil(jitter * 30)
    p = VegasPolicy(seed=7, initial_limit=1)
    reasons = [p(o(i, 1, busy=1, latency_mean=0.01, max_workers=1)).reason for i in range(due)]
    assert "probe, rtt_noload = 0.0100 s" in reasons[-1]
    assert not any("probe" in r for r in reasons[:-1])


# -- Kubernetes HPA -------------------------------------------------------------------
HPA_ROWS = [
    # util 100 %: ratio 100/80 = 1.25 -> ceil(12.5) = 13; at t=15: ceil(1.25*13=16.25) = 17
    # (the t=0 event is outside the 15 s rate period: 0 > 15 - 15 is false)
    Row("scale-up", TargetTrackingPolicy(),
        [o(0, 10, busy=10), o(15, 13, busy=13)], [13, 17], "ceil(1.250 * 13) = 17"),
    # util 80 %: ratio 1.0 -> within tolerance
    Row("at-target", TargetTrackingPolicy(), [o(0, 10, busy=8)], [10], "within tolerance"),
    # 3 of 4 busy: 75/80 = 0.9375, |1 - 0.9375| <= 0.1 -> hold (Kubernetes #116984)
    Row("coarse-tolerance-small-pool", TargetTrackingPolicy(), [o(0, 4, busy=3)], [4],
        "utilisation 75%"),
    # util 90 %: 1.125 -> ceil(11.25) = 12
    Row("just-outside-tolerance", TargetTrackingPolicy(), [o(0, 10, busy=9)], [12], "= 12"),
    # util 70 %: ceil(0.875 * 10) = 9, but the initial recommendation (10 at t=0) is in
    # the 300 s scale-down window -> stabilised to 10
    Row("scale-down-stabilised", TargetTrackingPolicy(), [o(0, 10, busy=7)], [10],
        "stabilised to 10"),
    # t=0: 13 as above; t=15 and t=285: util int(200/13) = 15 % -> ceil(0.1875*13) = 3,
    # but max over (0, 300]-window recommendations is 13 -> 13; at t=300 the t=0
    # records fall out (0 > 300 - 300 is false): max(3, 3, 3) = 3; down rate 100 %
    Row("scale-down-after-window", TargetTrackingPolicy(),
        [o(0, 10, busy=10), o(15, 13, busy=2), o(285, 13, busy=2), o(300, 13, busy=2)],
        [13, 13, 13, 3], "13 -> 3", {1: "stabilised to 13"}),
    # include_queue: util = 100 * (4 + 96) // 4 = 2500 % -> ceil(31.25 * 4) = 125;
    # rate: max(4 + 4, ceil(4 * 2)) = 8. t=15: 1250 % -> 125, rate max(8+4, 16) = 16.
    # t=20: between syncs -> hold.
    Row("queue-and-rate-limit", TargetTrackingPolicy(include_queue=True),
        [o(0, 4, busy=4, queue_depth=96), o(15, 8, busy=8, queue_depth=92),
         o(20, 16, busy=16, queue_depth=84)],
        [8, 16, 16], "next HPA sync in 10.0 s", {0: "rate-limited to 8", 1: "rate-limited to 16"}),
    # source-faithful metric ignores the queue: util 100 % -> ceil(1.25 * 4) = 5
    Row("queue-ignored-by-default", TargetTrackingPolicy(),
        [o(0, 4, busy=4, queue_depth=96)], [5], "utilisation 100%"),
    # sync every 5 s: t=5, the t=0 event (+4) is in the 15 s period: start = 8 - 4 = 4,
    # limit max(4 + 4, ceil(4 * 2)) = 8 -> stays 8
    Row("rate-period-counts-events", TargetTrackingPolicy(include_queue=True, sync_period=5),
        [o(0, 4, busy=4, queue_depth=96), o(5, 8, busy=8, queue_depth=92)],
        [8, 8], "period start 4"),
    Row("zero-workers", TargetTrackingPolicy(), [o(0, 0, busy=0, min_workers=0)], [0],
        "autoscaling disabled"),
    # target 50 %: util 100 -> ratio 2 -> 20 (= max(10+4, ceil(10*2)) = 20, not limited)
    Row("target-param", TargetTrackingPolicy(target_utilization=50), [o(0, 10, busy=10)],
        [20], "ceil(2.000 * 10) = 20"),
]

# -- Dask adaptive --------------------------------------------------------------------
OCCUPANCY_ROWS = [
    # (2 + 18) * 1 s = 20 s / 5 s = 4; min(4, 20) = 4 >= 2 -> up to 4
    Row("up", OccupancyPolicy(), [o(0, 2, busy=2, queue_depth=18, latency_mean=1.0)], [4],
        "up to 4"),
    # long tasks: (2 + 1) * 60 = 180 s / 5 = 36; min(36, 3 tasks) = 3
    Row("few-long-tasks", OccupancyPolicy(),
        [o(0, 2, busy=2, queue_depth=1, latency_mean=60.0)], [3], "cpu 3"),
    # (2 + 0) * 0.1 / 5 -> 1 < 10 workers: Dask closes idle workers -> target busy = 2;
    # wait_count 3: hold, hold, then close 8
    Row("down-after-wait-count", OccupancyPolicy(),
        [o(i, 10, busy=2, latency_mean=0.1) for i in range(3)], [10, 10, 2],
        "8 closed", {0: "recommended 1 of 3", 1: "recommended 2 of 3"}),
    # down, down, then busy 10 -> target 10 = same (counts cleared), then down: 1 of 3
    Row("same-clears-counts", OccupancyPolicy(),
        [o(0, 10, busy=2, latency_mean=0.1), o(1, 10, busy=2, latency_mean=0.1),
         o(2, 10, busy=10, latency_mean=1.0), o(3, 10, busy=2, latency_mean=0.1)],
        [10, 10, 10, 10], "recommended 1 of 3", {2: "same"}),
    # targets 4, 2, 6 from 10: 6, 8, 4 chosen; the 4 chosen all three times close -> 6
    Row("closes-workers-chosen-every-tick", OccupancyPolicy(),
        [o(0, 10, busy=4, latency_mean=0.1), o(1, 10, busy=2, latency_mean=0.1),
         o(2, 10, busy=6, latency_mean=0.1)], [10, 10, 6], "4 closed"),
    # no task finished: 0.5 s each: (1 + 99) * 0.5 = 50 s / 5 = 10
    Row("unknown-duration", OccupancyPolicy(), [o(0, 1, busy=1, queue_depth=99)], [10],
        "unknown-task-duration"),
    # t=0.5 is before the next 1 s tick -> hold
    Row("tick", OccupancyPolicy(),
        [o(0, 2, busy=2, queue_depth=18, latency_mean=1.0),
         o(0.5, 4, busy=4, queue_depth=96, latency_mean=1.0)], [4, 4], "between adaptive ticks"),
    # down_to_busy False: 8 * 1 / 5 -> ceil(1.6) = 2, wait 1 -> 2; default: busy 8
    Row("down-to-cpu", OccupancyPolicy(down_to_busy=False, wait_count=1),
        [o(0, 10, busy=8, latency_mean=1.0)], [2], "down to 2"),
    Row("down-to-busy", OccupancyPolicy(wait_count=1), [o(0, 10, busy=8, latency_mean=1.0)],
        [8], "close idle -> 8"),
    # empty pool, 3 queued tasks of 0.01 s: ceil(0.006) = 1, at least 1 with no workers
    Row("no-workers", OccupancyPolicy(),
        [o(0, 0, queue_depth=3, latency_mean=0.01, min_workers=0)], [1], "up to 1"),
    # safe_target: cpu 40 clamped to max 30
    Row("clamp", OccupancyPolicy(),
        [o(0, 10, busy=10, queue_depth=190, latency_mean=1.0, max_workers=30)], [30],
        "safe_target 30"),
]

# -- futurist ---------------------------------------------------------------------------
BAND_ROWS = [
    # (4 + 0) / 5 = 0.8 >= 0.8 -> 6; 4/6 = 0.67 < 0.8 stops
    Row("grow-at-threshold", UtilizationBandPolicy(), [o(0, 5, busy=4)], [6], "grow to 6"),
    # (5 + 20) / m >= 0.8 while m <= 31.25: grows to 32
    Row("maintain-loop", UtilizationBandPolicy(), [o(0, 5, busy=5, queue_depth=20)], [32],
        "5.00 >= 0.8"),
    # one _maybe_spin_up step: +1
    Row("one-step", UtilizationBandPolicy(max_steps=1), [o(0, 5, busy=5, queue_depth=20)],
        [6], "max_steps 1"),
    # 2 / m <= 0.4 while m >= 5: 10 -> ... -> 5 -> 4 (2/4 = 0.5 stops)
    Row("shrink", UtilizationBandPolicy(), [o(0, 10, busy=2)], [4], "shrink to 4"),
    # 4 / 10 = 0.4 <= 0.4 -> 9 (4/9 = 0.44)
    Row("shrink-at-threshold", UtilizationBandPolicy(), [o(0, 10, busy=4)], [9], "0.40 <= 0.4"),
    Row("in-band", UtilizationBandPolicy(), [o(0, 10, busy=5)], [10], "within band"),
    # all idle: shrinks to min 3
    Row("idle-to-min", UtilizationBandPolicy(), [o(0, 10, busy=0, min_workers=3)], [3],
        "shrink to 3"),
    Row("at-min", UtilizationBandPolicy(), [o(0, 1, busy=0)], [1], "at min 1"),
    # below min 2 with 3 queued: fill to 2, then 3/m >= 0.8 until m = 4
    Row("fill-min-then-grow", UtilizationBandPolicy(),
        [o(0, 0, queue_depth=3, min_workers=2)], [4], "below min 2"),
    # thresholds 0.5 / 0.2: (8 + 0)/10 = 0.8 >= 0.5 -> 8/m >= 0.5 while m <= 16 -> 17
    Row("params", UtilizationBandPolicy(grow_threshold=0.5, shrink_threshold=0.2),
        [o(0, 10, busy=8)], [17], "grow to 17"),
    # at max: hold
    Row("at-max", UtilizationBandPolicy(), [o(0, 10, busy=10, max_workers=10)], [10],
        "at max 10"),
]


# -- .NET hill climbing -----------------------------------------------------------------
def _hc_run(policy: Policy, tput, n_samples: int, dt: float = 0.5, w0: int = 10,
            **kw: Any) -> list:
    """Closed loop: throughput = tput(workers); the next size is the last target."""
    out, w = [], w0
    for i in range(n_samples):
        extra = kw if i == n_samples - 1 else {}
        d = policy(o(i * dt, w, busy=w, throughput=tput(w), dt=dt, **extra))
        out.append(d)
        w = d.target
    return out


# Square wave while warming up: after sample k the phase is (k // 2) % 2, so the
# targets are control + 1 * [0, 1, 1, 0, 0, 1, 1, 0]. From sample 9 on the Goertzel
# filter sees two periods.
WARMUP = [10, 11, 11, 10, 10, 11, 11, 10]


def test_hill_climbing_warmup_square_wave() -> None:
    ds = _hc_run(HillClimbingPolicy(), lambda w: 1000.0, 8)
    assert [d.target for d in ds] == WARMUP
    assert all("warmup" in d.reason for d in ds)


HC_ROWS = [
    # flat throughput: throughput wave 0, ratio = (0 - 0.15 tw) / tw = -0.15, noise ~0
    # -> confidence 1; move = -(0.15 ** 2) * (4 * 0.5) = -0.045; control 9.955, phase
    # (9 // 2) % 2 = 0 -> int(9.955) = 9
    ("flat-throughput-drifts-down", HillClimbingPolicy(), lambda w: 1000.0, 9, {}, 0.5, 9,
     "ratio -0.150"),
    # throughput = 100 * threads: relative waves equal, ratio = 1 - 0.15 = 0.85;
    # move = 0.85 ** 2 * 2 = 1.445; control 11.445 -> 11
    ("linear-throughput-climbs", HillClimbingPolicy(), lambda w: 100.0 * w, 9, {}, 0.5, 11,
     "move +1.445"),
    # same, but this process uses 97 % CPU > 95 %: the move is refused -> control 10
    ("cpu-guard", HillClimbingPolicy(), lambda w: 100.0 * w, 9,
     {"process_cpu_percent": 97.0}, 0.5, 10, "cpu 97% > 95%: refused +1.445"),
    # the guard reads system CPU with process_cpu=False
    ("cpu-guard-system", HillClimbingPolicy(process_cpu=False), lambda w: 100.0 * w, 9,
     {"cpu_percent": 99.0, "process_cpu_percent": 10.0}, 0.5, 10, "cpu 99% > 95%"),
    # 10 s samples: gain 4 * 10 = 40; move 0.7225 * 40 = 28.9 capped at 20 -> control 30
    ("max-change-per-sample", HillClimbingPolicy(), lambda w: 100.0 * w, 9, {}, 10.0, 30,
     "move +20.000"),
    # gain exponent 1: move = 0.85 * 2 = 1.7 -> control 11.7 -> 11
    ("gain-exponent", HillClimbingPolicy(gain_exponent=1.0), lambda w: 100.0 * w, 9, {}, 0.5,
     11, "move +1.700"),
    # bias 0: ratio 1.0 -> move 2.0 -> control 12
    ("no-bias", HillClimbingPolicy(bias=0.0), lambda w: 100.0 * w, 9, {}, 0.5, 12,
     "ratio +1.000"),
]


@pytest.mark.parametrize("row", HC_ROWS, ids=[r[0] for r in HC_ROWS])
def test_hill_climbing_rows(row) -> None:
    _, policy, tput, n, extra, dt, expected, sub = row
    ds = _hc_run(policy, tput, n, dt=dt, **extra)
    assert [d.target for d in ds[:8]] == WARMUP
    assert ds[-1].target == expected, ds[-1].reason
    assert sub in ds[-1].reason, ds[-1].reason


def test_hill_climbing_noisy_sample_accumulates() -> None:
    p = HillClimbingPolicy()
    p(o(0, 10, throughput=1000.0, dt=0.5))
    # 10/s * 0.5 s = 5 completions for 10 threads: (10 - 1) / 5 = 1.8 >= 0.15 -> hold
    d = p(o(0.5, 10, throughput=10.0, dt=0.5))
    assert d.target == 10 and "sample too noisy" in d.reason and "error 1.80" in d.reason
    # next: 5 + 500 completions over 1.0 s -> one sample of 505/s
    d = p(o(1.0, 10, throughput=1000.0, dt=0.5))
    assert "505.0 tasks/s at 10 threads over 1.000 s" in d.reason


def test_hill_climbing_own_cadence() -> None:
    # The first sample interval is Random(seed).randint(10, 200) ms (C#: Next(10, 201)).
    interval = random.Random(3).randint(10, 200) / 1000.0
    p = HillClimbingPolicy(seed=3)
    dt = 0.005
    needed = math.ceil(interval / dt - 1e-9)
    ds = [p(o(i * dt, 10, throughput=1000.0, dt=dt)) for i in range(needed)]
    assert all("collecting sample" in d.reason for d in ds[:-1])
    assert "warmup" in ds[-1].reason


def test_hill_climbing_follows_external_resize() -> None:
    p = HillClimbingPolicy()
    _hc_run(p, lambda w: 1000.0, 4)
    # someone resized the pool to 50: control += 50 - 10 (ForceChange)
    d = p(o(2.0, 50, throughput=1000.0, dt=0.5))
    assert "control follows size 50" in d.reason and "control 50.00" in d.reason


def test_hill_climbing_idle_threads_time_out() -> None:
    # 10 threads, 2 busy, empty queue, no throughput figure (hold) every 5 s: at t=20
    # the 8 threads idle since t=0 have waited idle_timeout 20 s -> goal max(1, 10-8) = 2
    p = HillClimbingPolicy()
    ds = [p(o(t, 10, busy=2)) for t in (0, 5, 10, 15, 20)]
    assert [d.target for d in ds] == [10, 10, 10, 10, 2]
    assert "8 thread(s) idle for 20 s exit -> 2" in ds[-1].reason
    # a queued task at t=10 means no thread waited idle that long: no exit at t=20
    p = HillClimbingPolicy()
    ds = [p(o(t, 10, busy=2, queue_depth=5 if t == 10 else 0)) for t in (0, 5, 10, 15, 20)]
    assert [d.target for d in ds] == [10] * 5
    # idle_timeout 0 disables it (HillClimbing.cs alone)
    p = HillClimbingPolicy(idle_timeout=0)
    assert [p(o(t, 10)).target for t in (0, 30, 60)] == [10, 10, 10]


def test_hill_climbing_waits_for_a_completion() -> None:
    # no completion: no Update call; the idle 1.5 s joins the next sample's window
    p = HillClimbingPolicy()
    ds = [p(o(t, 10, busy=10, throughput=0.0, dt=0.5)) for t in (0.5, 1.0, 1.5)]
    assert all("no task completed" in d.reason for d in ds)
    d = p(o(2.0, 10, busy=10, throughput=1000.0, dt=0.5))
    # 500 completions over 2.0 s = 250 tasks/s
    assert "250.0 tasks/s at 10 threads over 2.000 s" in d.reason


def test_hill_climbing_holds_on_unknown_throughput() -> None:
    d = HillClimbingPolicy()(o(0, 7, throughput=NAN, dt=0.5))
    assert d.target == 7 and "throughput/window unknown" in d.reason


def test_hill_climbing_min_threads_slows_sampling() -> None:
    # at min threads with a negative ratio, the next sample waits 10 * |ratio| longer
    p = HillClimbingPolicy(sample_interval_low=0.1, sample_interval_high=0.1)
    ds = _hc_run(p, lambda w: 1000.0, 9, w0=10)
    assert ds[-1].target == 9
    # min 9: flat throughput, ratio -0.15 -> control clamped at 9, sample interval
    # becomes 0.1 * 10 * 0.15 = 0.15 s: a 0.1 s window is not enough
    p2 = HillClimbingPolicy(sample_interval_low=0.1, sample_interval_high=0.1)
    w = 10
    for i in range(9):
        w = p2(o(i * 0.5, w, throughput=1000.0, dt=0.5, min_workers=9)).target
    assert w == 9
    d = p2(o(5.0, w, throughput=1000.0, dt=0.1, min_workers=9))
    assert "collecting sample (0.100 of 0.150 s)" in d.reason


ALL_ROWS = AIMD_ROWS + GRADIENT2_ROWS + VEGAS_ROWS + HPA_ROWS + OCCUPANCY_ROWS + BAND_ROWS


@pytest.mark.parametrize("row", ALL_ROWS, ids=[f"{r.policy.name}-{r.id}" for r in ALL_ROWS])
def test_table(row: Row) -> None:
    check(row)


# -- live: each port drives a real pool ------------------------------------------------
LIVE = [("hill_climbing", {}), ("aimd", {}), ("gradient2", {}), ("vegas", {}),
        ("target_tracking", {"sync_period": 0.1}), ("occupancy", {"interval": 0.1}),
        ("utilization_band", {})]


@pytest.mark.parametrize(("name", "params"), LIVE, ids=[n for n, _ in LIVE])
def test_drives_a_real_pool(name: str, params: dict) -> None:
    import time

    from adaptive_lab import AdaptiveThreadPoolExecutor, make_policy
    from adaptive_lab.trace.recorder import Recorder

    rec = Recorder()
    with AdaptiveThreadPoolExecutor(16, min_workers=2, policy=make_policy(name, **params),
                                    interval=0.05, sample_period=0.05, initial_workers=2,
                                    record=rec) as ex:
        assert sum(ex.map(lambda i: time.sleep(0.002) or 1, range(300))) == 300
        ctrl = ex.controller
        assert ctrl is not None and ctrl.wait_ticks(3, timeout=10.0)
        assert ctrl.last_decision is not None
        trace = ex.trace()
    assert not [e for e in trace.events if e["type"] == "error"]
    assert all(2 <= s["workers"] <= 16 for s in trace.samples)


@pytest.mark.parametrize("cls", [Gradient2Policy, VegasPolicy], ids=["gradient2", "vegas"])
def test_gradient_and_vegas_give_workers_back_when_idle(cls):
    policy = cls()
    d = policy(o(0, 12, min_workers=3))
    assert d.target == 3 and "idle" in d.reason
    # something queued is not idle: the limit holds while the RTT is unknown
    d = cls()(o(0, 12, min_workers=3, queue_depth=1))
    assert d.target == 12 and "rtt unknown" in d.reason

