"""Kubernetes' Horizontal Pod Autoscaler, ported as a policy on worker utilisation.

Sources: kubernetes/kubernetes ``pkg/controller/podautoscaler/replica_calculator.go``
(``GetResourceReplicas``, ``GetResourceUtilizationRatio``) and
``pkg/controller/podautoscaler/horizontal.go``
(``stabilizeRecommendationWithBehaviors``, ``convertDesiredReplicasWithBehaviorRate``,
``calculateScaleUpLimitWithScalingRules``, ``calculateScaleDownLimitWithBehaviors``,
``getReplicasChangePerPeriod``, ``storeScaleEvent``), default behaviours from
``pkg/apis/autoscaling/v2/defaults.go``.
"""

from __future__ import annotations

import math

from adaptive_lab.policies.base import Decision, Observation, Policy, param


class TargetTrackingPolicy(Policy):
    """HPA: ``desired = ceil(current * utilisation / target)``, stabilised and rate-limited.

    Source: Kubernetes ``replica_calculator.go`` and ``horizontal.go``. Every
    ``sync_period`` seconds (the controller manager's 15 s) the policy:

    1. measures utilisation as an integer percentage, as the HPA does:
       ``util = int(100 * busy / workers)`` (with ``include_queue``:
       ``int(100 * (busy + queued) / workers)``, see below);
    2. ``ratio = util / target_utilization``; if ``|1 - ratio| <= tolerance`` the
       recommendation is the current size, else ``ceil(ratio * workers)``;
    3. stabilises: the result is raised to at least the *minimum* recommendation
       of the last ``scale_up_window`` seconds and lowered to at most the *maximum*
       of the last ``scale_down_window`` seconds (current recommendation included);
    4. rate-limits against the scale events of the last period: up to
       ``max(start + up_pods, ceil(start * (1 + up_percent/100)))`` per
       ``up_period`` s and down to ``int(start * (1 - down_percent/100))`` per
       ``down_period`` s, where ``start`` is the size at the start of the period;
    5. clamps to ``[min_workers, max_workers]``.

    Defaults (the source's): target 80 % is ours (HPA has none; 80 is the common
    choice), tolerance 0.1, scale-up window 0 s, scale-down window 300 s, scale up by
    max(4 pods, 100 %) per 15 s, scale down by 100 % per 15 s, sync period 15 s.

    Utilisation and queued work: a pool's ``busy / workers`` saturates at 1.0
    whatever the backlog, so with a target of 0.8 the source-faithful metric grows
    the pool by at most 25 % per sync. ``include_queue = True`` (not the default)
    counts queued tasks as demand, ``(busy + queued) / workers``, which lets one sync
    jump straight to the size that would absorb the queue (still rate-limited).
    The pool's size between syncs, or with zero workers (HPA: scaling disabled), is
    held. As in the source, the size at the first sync is recorded as a
    recommendation, so the pool does not shrink within ``scale_down_window`` of start.
    """

    name = "target_tracking"
    target_utilization: int = param(default=80, low=1, high=1000, step=1,
                                    doc="target utilisation, percent")
    tolerance: float = param(default=0.1, low=0.0, high=1.0, step=0.01,
                             doc="no change while |1 - utilisation/target| is within this")
    include_queue: bool = param(
        default=False,
        doc="utilisation = (busy + queued) / workers instead of busy / workers")
    sync_period: float = param(default=15.0, low=0.0, high=3600.0, step=1.0,
                               doc="seconds between HPA evaluations (0 = every decision)")
    scale_up_window: float = param(
        default=0.0, low=0.0, high=3600.0, step=1.0,
        doc="scale-up stabilisation window, s (minimum of recommendations)")
    scale_down_window: float = param(
        default=300.0, low=0.0, high=3600.0, step=5.0,
        doc="scale-down stabilisation window, s (maximum of recommendations)")
    up_pods: int = param(default=4, low=0, high=100_000, step=1,
                         doc="scale-up policy: workers added per period")
    up_percent: float = param(default=100.0, low=0.0, high=10_000.0, step=10.0,
                              doc="scale-up policy: percent added per period")
    up_period: float = param(default=15.0, low=0.001, high=3600.0, step=1.0,
                             doc="scale-up policy period, s")
    down_percent: float = param(default=100.0, low=0.0, high=100.0, step=5.0,
                                doc="scale-down policy: percent removed per period")
    down_period: float = param(default=15.0, low=0.001, high=3600.0, step=1.0,
                               doc="scale-down policy period, s")

    def reset(self) -> None:
        self._last_sync: float | None = None
        self._recommendations: list[tuple[float, int]] = []  # (t, unstabilised desired)
        self._up_events: list[tuple[float, int]] = []  # (t, replicas added)
        self._down_events: list[tuple[float, int]] = []  # (t, replicas removed)

    @staticmethod
    def _change_in_period(events: list[tuple[float, int]], now: float, period: float) -> int:
        cutoff = now - period
        return sum(change for t, change in events if t > cutoff)

    def decide(self, obs: Observation) -> Decision:
        now, cur = obs.t, obs.workers
        if self._last_sync is not None and now - self._last_sync < self.sync_period:
            due = self._last_sync + self.sync_period - now
            return Decision(obs.clamp(cur), f"hold at {cur}: next HPA sync in {due:.1f} s")
        if not math.isfinite(now):
            return Decision(obs.clamp(cur), f"hold at {cur}: time unknown ({now})")
        if self._last_sync is None:  # recordInitialRecommendation(currentReplicas)
            self._recommendations.append((now, cur))
        self._last_sync = now
        if cur <= 0:
            return Decision(obs.clamp(cur), "hold: 0 workers, autoscaling disabled (as HPA)")

        # replica_calculator.go: integer utilisation percent, ratio, tolerance, ceil.
        demand = obs.busy + (obs.queue_depth if self.include_queue else 0)
        util = (100 * max(0, demand)) // cur
        ratio = util / self.target_utilization
        if abs(1.0 - ratio) <= self.tolerance:
            desired = cur
            why = f"utilisation {util}% vs target {self.target_utilization}%: within tolerance"
        else:
            desired = math.ceil(ratio * cur)
            why = (f"utilisation {util}% / target {self.target_utilization}% = {ratio:.3f}: "
                   f"ceil({ratio:.3f} * {cur}) = {desired}")

        # horizontal.go: stabilizeRecommendationWithBehaviors.
        up_cut, down_cut = now - self.scale_up_window, now - self.scale_down_window
        up_rec = down_rec = desired
        for t, rec in self._recommendations:
            if t > up_cut:
                up_rec = min(up_rec, rec)
            if t > down_cut:
                down_rec = max(down_rec, rec)
        stabilised = min(max(cur, up_rec), down_rec)
        keep_after = min(up_cut, down_cut)
        self._recommendations = [(t, r) for t, r in self._recommendations if t >= keep_after]
        self._recommendations.append((now, desired))
        if stabilised != desired:
            why += f"; stabilised to {stabilised} (window min {up_rec}, max {down_rec})"

        # horizontal.go: convertDesiredReplicasWithBehaviorRate.
        final = stabilised
        if stabilised > cur:
            start = (cur - self._change_in_period(self._up_events, now, self.up_period)
                     + self._change_in_period(self._down_events, now, self.up_period))
            limit = max(start + self.up_pods, math.ceil(start * (1 + self.up_percent / 100)))
            limit = max(limit, cur)
            allowed = min(obs.max_workers, limit)
            if stabilised > allowed:
                final = allowed
                why += f"; rate-limited to {allowed} (period start {start})"
        elif stabilised < cur:
            start = (cur - self._change_in_period(self._up_events, now, self.down_period)
                     + self._change_in_period(self._down_events, now, self.down_period))
            limit = min(int(start * (1 - self.down_percent / 100)), cur)
            allowed = max(obs.min_workers, limit)
            if stabilised < allowed:
                final = allowed
                why += f"; rate-limited to {allowed} (period start {start})"
        final = obs.clamp(final)

        # storeScaleEvent: remember the change for the rate policies.
        longest = max(self.up_period, self.down_period)
        self._up_events = [e for e in self._up_events if e[0] > now - longest]
        self._down_events = [e for e in self._down_events if e[0] > now - longest]
        if final > cur:
            self._up_events.append((now, final - cur))
        elif final < cur:
            self._down_events.append((now, cur - final))
        return Decision(final, f"{cur} -> {final}: {why}")
