"""The control loop on a fake clock with scripted metrics, and on the real pool."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import pytest

from adaptive_lab import (
    AdaptiveThreadPoolExecutor,
    Controller,
    FakeClock,
    FixedPolicy,
    PsutilMetrics,
    Recorder,
    ScriptedMetrics,
    SystemSample,
    ThresholdPolicy,
)
from adaptive_lab.policies import Decision, Observation, Policy


@dataclass
class StubStats:
    size: int
    alive: int = 0
    busy: int = 0
    idle: int = 0
    queued: int = 0
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    task_times: tuple = ()
    min_workers: int = 1
    max_workers: int = 100


@dataclass
class StubPool:
    """A tiny stand-in target: what the controller needs, nothing else."""

    size: int = 4
    queued: int = 0
    busy: int = 0
    completed: int = 0
    resizes: list = field(default_factory=list)

    def stats(self) -> StubStats:
        return StubStats(size=self.size, alive=self.size, busy=self.busy, queued=self.queued,
                         completed=self.completed, submitted=self.completed + self.queued)

    def resize(self, n: int, reason: str = "") -> int:
        old, self.size = self.size, n
        self.resizes.append((old, n, reason))
        return old


def calm(cpu=20.0, mem=50.0):
    return SystemSample(cpu_percent=cpu, memory_percent=mem, available_mb=1000,
                        process_cpu_percent=cpu, rss_mb=50)


def test_decides_every_interval_and_clamps_on_fake_clock():
    clock, pool, rec = FakeClock(), StubPool(size=4, queued=100), Recorder()
    ctl = Controller(pool, ThresholdPolicy(), interval=5.0, sample_period=1.0,
                     min_workers=4, max_workers=10, clock=clock,
                     metrics=ScriptedMetrics([calm()]), recorder=rec)
    decisions = []
    for _ in range(20):
        clock.advance(1.0)
        d = ctl.tick()
        if d is not None:
            decisions.append((ctl.now(), d.target))
    # cpu 20 < 40 and queue 100 > 20 -> +4 every 5 s, clamped at 10
    assert decisions == [(5.0, 8), (10.0, 10), (15.0, 10), (20.0, 10)]
    assert [r[:2] for r in pool.resizes] == [(4, 8), (8, 10)]
    assert "clamped" in pool.resizes[1][2]
    tr = rec.trace()
    assert len(tr.samples) == 20
    assert [(e["from"], e["to"]) for e in tr.scale_events()] == [(4, 8), (8, 10)]
    assert tr.header["policy"]["name"] == "threshold"
    assert tr.header["bounds"] == {"min_workers": 4, "max_workers": 10}


def test_observation_rates_come_from_the_window():
    clock, pool = FakeClock(), StubPool(size=2)
    seen: list[Observation] = []

    class Spy(Policy):
        name = "spy"

        def decide(self, obs):
            seen.append(obs)
            return Decision(obs.workers, "hold")

    ctl = Controller(pool, Spy(), interval=2.0, sample_period=1.0, clock=clock,
                     metrics=ScriptedMetrics([calm(cpu=33)]))
    for _ in range(4):
        clock.advance(1.0)
        pool.completed += 10
        ctl.tick()
    assert [o.t for o in seen] == [2.0, 4.0]
    assert seen[0].throughput == pytest.approx(10.0)  # 20 tasks over 2 s
    assert seen[0].dt == pytest.approx(2.0)
    assert seen[0].cpu_percent == 33 and seen[0].workers == 2


class FailOnce(Policy):
    """The threshold policy, except that its first decision fails with ``bad``
    (raised if it is an exception, returned otherwise)."""

    name = "fail_once"

    def __init__(self, bad):
        super().__init__()
        self.bad, self.calls, self.inner = bad, 0, ThresholdPolicy()

    def decide(self, obs):
        self.calls += 1
        if self.calls == 1:
            if isinstance(self.bad, BaseException):
                raise self.bad
            return self.bad
        return self.inner.decide(obs)


@dataclass
class FlakyStatsPool(StubPool):
    fail_next: bool = False

    def stats(self) -> StubStats:
        if self.fail_next:
            self.fail_next = False
            raise OSError("stats broke")
        return super().stats()


# what fails at the first tick -> where the error event says it happened, and what
FAILURES = {
    "policy raises": (dict(policy=FailOnce(RuntimeError("policy bug"))), "policy",
                      "policy bug"),
    "policy returns garbage": (dict(policy=FailOnce(7)), "policy", "not a Decision"),
    "metrics raise": (dict(metrics=ScriptedMetrics([OSError("psutil broke"), calm()])),
                      "metrics", "psutil broke"),
    "stats raise": (dict(fail_stats=True), "stats", "stats broke"),
}


@pytest.mark.parametrize(("parts", "where", "message"), list(FAILURES.values()),
                         ids=list(FAILURES))
def test_a_failure_is_logged_recorded_and_the_size_held(parts, where, message, caplog):
    clock, rec = FakeClock(), Recorder()
    pool = FlakyStatsPool(size=6, queued=100)
    ctl = Controller(pool, parts.get("policy", ThresholdPolicy()), interval=1.0,
                     clock=clock, recorder=rec,
                     metrics=parts.get("metrics", ScriptedMetrics([calm()])))
    pool.fail_next = parts.get("fail_stats", False)
    with caplog.at_level(logging.ERROR, logger="adaptive_lab"):
        clock.advance(1.0)
        assert ctl.tick() is None  # failed: hold
    assert pool.size == 6 and pool.resizes == [] and ctl.errors == 1
    assert f"{where} failed" in caplog.text
    ev = [e for e in rec.trace().events if e["type"] == "error"]
    assert [e["where"] for e in ev] == [where] and message in ev[0]["message"]
    clock.advance(1.0)
    assert ctl.tick().target == 10  # recovered: cpu 20 < 40, queue 100 > 20 -> +4
    assert pool.size == 10 and ctl.errors == 1


@dataclass
class CpuPool(StubPool):
    """A pool whose stats carry ``task_cpu_seconds`` (unless it is ``"missing"``)."""

    cpu: object = "missing"

    def stats(self):
        st = super().stats()
        if self.cpu != "missing":
            st.task_cpu_seconds = self.cpu
        return st


NAN = float("nan")


# cumulative task CPU seconds at t = 0, 1, 2, 3 -> task_cpu_cores of the 1 s windows
@pytest.mark.parametrize(("cpu", "cores"), [
    (["missing"] * 4, [NAN, NAN, NAN]),  # a target without the field: unknown
    ([0.0, 1.0, 3.0, 3.5], [1.0, 2.0, 0.5]),  # the window's CPU seconds / its length
    ([0.0, NAN, 2.0, 3.0], [NAN, NAN, 1.0]),  # a NaN reading: unknown around it
    ([0.0, None, 2.0, 3.0], [NAN, NAN, 1.0]),  # not a number: the same
    ([5.0, 6.0, 1.0, 2.0], [1.0, NAN, 1.0]),  # the counter went back: unknown once
], ids=["missing", "rates", "nan", "none", "reset"])
def test_task_cpu_cores_from_task_cpu_seconds(cpu, cores):
    clock, pool, rec = FakeClock(), CpuPool(size=2, cpu=cpu[0]), Recorder()
    seen: list[Observation] = []

    class Spy(Policy):
        name = "spy"

        def decide(self, obs):
            seen.append(obs)
            return Decision(obs.workers, "hold")

    ctl = Controller(pool, Spy(), interval=1.0, sample_period=1.0, clock=clock,
                     metrics=ScriptedMetrics([calm()]), recorder=rec)
    for c in cpu[1:]:
        clock.advance(1.0)
        pool.cpu = c
        ctl.tick()
    got = [o.task_cpu_cores for o in seen]
    assert got == pytest.approx(cores, nan_ok=True)
    sampled = [s["task_cpu_cores"] for s in rec.trace().samples]
    assert sampled == pytest.approx(cores, nan_ok=True)  # the trace records it too


# decide= at a tick at t (interval 1 s, the first decision due at t = 1)
@pytest.mark.parametrize(("decide", "t", "decided"), [
    (None, 0.5, False), (None, 1.0, True),  # on the controller's own schedule
    (True, 0.5, True),  # a caller that paces decisions itself (Dask's adapt)
    (False, 1.0, False),  # a sample only (Dask's sampler while workers start)
])
def test_tick_decides_when_due_or_when_told(decide, t, decided):
    clock, pool = FakeClock(), StubPool(size=2)
    ctl = Controller(pool, FixedPolicy(5), interval=1.0, clock=clock,
                     metrics=ScriptedMetrics([calm()]))
    clock.advance(t)
    d = ctl.tick(decide=decide)
    assert (d is not None) == decided and ctl.ticks == 1
    assert pool.size == (5 if decided else 2) and ctl.last_sample["t"] == t


class ViewTarget:
    """A target that reports resizes itself, later (like a cluster), and adds sample
    fields: the controller must neither record the resize twice nor drop the fields."""

    def __init__(self):
        self.pool, self.listeners, self.asked = StubPool(size=2), [], None
        self.ready = False

    def stats(self):
        if not self.ready:
            raise LookupError("no reading yet")
        return self.pool.stats()

    def resize(self, n, reason=""):
        self.asked = n
        return self.pool.size

    def add_resize_listener(self, fn):
        self.listeners.append(fn)

    def apply(self):
        for fn in self.listeners:
            fn(self.pool.size, self.asked, "applied")
        self.pool.size = self.asked

    def sample_fields(self):
        return {"target": self.asked}


def test_a_target_with_listener_extras_and_no_stats_at_start():
    clock, view, rec = FakeClock(), ViewTarget(), Recorder()
    ctl = Controller(view, FixedPolicy(4), interval=1.0, sample_period=1.0, clock=clock,
                     metrics=ScriptedMetrics([calm()]), recorder=rec)
    view.ready = True
    view.pool.completed = 50  # history before the first reading: not this run's
    for _ in range(3):
        clock.advance(1.0)
        view.pool.completed += 10
        ctl.tick()
        if view.asked is not None and view.asked != view.pool.size:
            view.apply()
    tr = rec.trace()
    assert [(e["from"], e["to"], e["reason"]) for e in tr.scale_events()] == [
        (2, 4, "applied")]  # once, as the target reported it
    assert [s["target"] for s in tr.samples] == [4, 4, 4]  # read after the decision
    thr = [s["throughput"] for s in tr.samples]
    assert math.isnan(thr[0]) and thr[1:] == [10.0, 10.0]  # first window unknown
    assert ctl.scale_events == 1


def test_metrics_logged_every_log_interval(caplog):
    clock, pool = FakeClock(), StubPool()
    ctl = Controller(pool, FixedPolicy(4), interval=5.0, sample_period=1.0, clock=clock,
                     metrics=ScriptedMetrics([calm()]))
    with caplog.at_level(logging.INFO, logger="adaptive_lab"):
        for _ in range(65):
            clock.advance(1.0)
            ctl.tick()
    lines = [r for r in caplog.records if "workers=" in r.getMessage()]
    assert len(lines) == 2  # at 30 s and 60 s


def test_controller_thread_runs_on_fake_time():
    clock, pool = FakeClock(), StubPool(size=4, queued=100)
    ctl = Controller(pool, ThresholdPolicy(), interval=5.0, sample_period=1.0,
                     min_workers=1, max_workers=50, clock=clock,
                     metrics=ScriptedMetrics([calm()]))
    ctl.start()
    try:
        assert ctl.wait_ticks(1)  # the first tick at t=0
        for i in range(1, 11):
            clock.advance(1.0)
            assert ctl.wait_ticks(i + 1), f"tick {i} did not happen"
        assert pool.size == 12  # two decisions (t=5, t=10): 4 -> 8 -> 12
    finally:
        ctl.stop()
    assert not ctl.running


@pytest.mark.parametrize("kw,name", [
    ({"interval": 0}, "interval"), ({"interval": float("nan")}, "interval"),
    ({"sample_period": -1}, "sample_period"), ({"min_workers": -1}, "min_workers"),
    ({"min_workers": 5, "max_workers": 4}, "min_workers"),
])
def test_invalid_controller_arguments(kw, name):
    with pytest.raises(ValueError, match=name):
        Controller(StubPool(), None, **kw)


def test_psutil_metrics_are_real_and_non_blocking():
    m = PsutilMetrics()
    t0 = time.perf_counter()
    s = m.read()
    assert time.perf_counter() - t0 < 0.05  # never the seed's blocking 100 ms
    assert 0 <= s.memory_percent <= 100 and s.available_mb > 0 and s.rss_mb > 1
    busy_until = time.process_time() + 0.05
    while time.process_time() < busy_until:  # (process_time is a system call: batch)
        sum(range(20_000))
    s2 = m.read()
    assert 0 <= s2.cpu_percent <= 100
    assert s2.process_cpu_percent > 0
    # a pure-Python spin is user-mode CPU; reading /dev/zero in 4 MiB reads is the
    # kernel's (it clears the pages)
    assert s2.process_user_cpu_percent > 0.5 * s2.process_cpu_percent
    import os
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        m.read()
        busy_until = time.process_time() + 0.1
        while time.process_time() < busy_until:
            os.read(fd, 1 << 22)
        s3 = m.read()
    finally:
        os.close(fd)
    assert s3.process_user_cpu_percent < 0.5 * s3.process_cpu_percent, s3


def test_live_pool_scales_under_threshold_policy_and_records(tmp_path):
    path = tmp_path / "live.jsonl"
    ex = AdaptiveThreadPoolExecutor(
        max_workers=40, min_workers=2, policy=ThresholdPolicy(), interval=0.1,
        record=path, metrics=ScriptedMetrics([calm(cpu=10)]))
    ev = threading.Event()
    fs = [ex.submit(ev.wait, 10) for _ in range(200)]
    deadline = time.monotonic() + 5
    while ex.size < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ex.size >= 10  # grew by +4 per decision with a long queue and low CPU
    ev.set()
    for f in fs:
        f.result(timeout=10)
    ex.shutdown()
    from adaptive_lab import Trace

    tr = Trace.load(path)
    assert tr.scale_events() and tr.scale_events()[0]["from"] == 2
    assert "+4" in tr.scale_events()[0]["reason"]
    assert tr.samples[-1]["completed"] == 200
    assert ex.status()["total_adjustments"] == len(tr.scale_events())


def test_manual_resizes_are_recorded_without_a_policy():
    ex = AdaptiveThreadPoolExecutor(4, policy=None, record=True, sample_period=0.05,
                                    metrics=ScriptedMetrics([calm()]))
    ex.resize(9, reason="by hand")
    ex.shutdown()
    ev = ex.trace().scale_events()
    assert [(e["from"], e["to"], e["reason"]) for e in ev] == [(4, 9, "by hand")]
    assert ex.trace().header["policy"] == {"name": "manual"}


def test_tick_cost_is_small(benchmark=None):
    """A tick outside the policy should cost well under 1 ms; checked loosely here
    (10 ms) because CI machines are noisy; `adaptive-lab bench-pool` reports speed."""
    ex = AdaptiveThreadPoolExecutor(8, policy=None)
    ctl = Controller(ex, FixedPolicy(8), interval=0.001, metrics=PsutilMetrics())
    list(ex.map(abs, range(5000)))
    t0 = time.process_time()
    for _ in range(200):
        ctl.tick()
    per_tick = (time.process_time() - t0) / 200
    ex.shutdown()
    assert per_tick < 0.010


@pytest.mark.parametrize("n", [1, 2, 3, 10, 64, 65, 500])
def test_latency_stats_match_numpy(n):
    import random

    import numpy as np

    from adaptive_lab.control.metrics import latency_stats as _latency

    rng = random.Random(n)
    xs = [rng.random() for _ in range(n)]
    a = np.asarray(xs)
    assert np.allclose(_latency(xs), (a.mean(), *np.percentile(a, (50, 95))))
