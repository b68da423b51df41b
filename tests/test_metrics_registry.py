"""The registry of live targets and the task-duration buckets behind the metrics export.

Neither needs prometheus_client: the registry is always on (a controller registers its
target when it starts), and the buckets are plain counts an exporter reads.
"""

from __future__ import annotations

import gc
from types import SimpleNamespace

import numpy as np
import pytest

from adaptive_lab.control import registry
from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
from adaptive_lab.executors.thread import ResizableThreadPoolExecutor
from adaptive_lab.integrations._durations import BUCKETS, TaskDurations
from adaptive_lab.scanner.core import Scanner


def _names(kind: str = "pool") -> list[str]:
    return [w.name for w in registry.live() if w.kind == kind]


@pytest.mark.parametrize(("reason", "rule"), [
    ("+4: cpu 30% < 40 and queue 25 > 20", "cpu"),
    ("-2: memory 90% > 85%", "memory"),
    ("hold at 8: between adaptive ticks", "hold"),
    ("3 -> 5: utilisation 120% / target 80% = 1.5", "utilisation"),
    ("_max_workers assignment", "max_workers"),
    ("Manual", "manual"),
    ("", "unknown"),
    (None, "unknown"),
    ("-> 12", "unknown"),
])
def test_rule_is_the_first_word_of_the_reason(reason, rule):
    assert registry.rule_of(reason) == rule


def test_a_registered_pool_is_live_until_it_is_collected():
    pool = ResizableThreadPoolExecutor(2, thread_name_prefix="reg-gone")
    assert registry.register(pool) == "reg-gone"
    assert "reg-gone" in _names()
    pool.shutdown()
    del pool
    gc.collect()
    assert "reg-gone" not in _names()


def test_names_are_unique_among_live_targets_of_a_kind():
    a = ResizableThreadPoolExecutor(1, thread_name_prefix="reg-same")
    b = ResizableThreadPoolExecutor(1, thread_name_prefix="reg-same")
    try:
        assert registry.register(a) == "reg-same"
        assert registry.register(b) == "reg-same-2"
        assert registry.register(a) == "reg-same"  # again: the same entry
        assert _names().count("reg-same") == 1
    finally:
        a.shutdown()
        b.shutdown()
        registry.unregister(a)
        registry.unregister(b)


def test_an_adaptive_pool_registers_through_its_controller_once():
    with AdaptiveThreadPoolExecutor(4, thread_name_prefix="reg-ctl", policy="fixed") as pool:
        assert _names().count("reg-ctl") == 1
        (w,) = [w for w in registry.live() if w.name == "reg-ctl"]
        assert w.controller is pool.controller
        assert w.target.stats().size == pool.size
        # the pool and its controller are one target: an explicit name wins
        assert registry.register(pool, "reg-named") == "reg-named"
        names = _names()
        assert "reg-named" in names and "reg-ctl" not in names
    registry.unregister(pool)


def test_a_pool_without_a_policy_is_not_watched_until_registered():
    with AdaptiveThreadPoolExecutor(2, thread_name_prefix="reg-fixed", policy=None) as pool:
        assert "reg-fixed" not in _names()
        registry.register(pool)
        (w,) = [w for w in registry.live() if w.name == "reg-fixed"]
        assert w.controller is None
    registry.unregister(pool)


def test_scale_events_are_counted_by_direction_and_rule():
    pool = ResizableThreadPoolExecutor(2, thread_name_prefix="reg-events")
    try:
        registry.register(pool)
        pool.resize(6, "+4: cpu 30% < 40 and queue 25 > 20")
        pool.resize(8, "+2: queue 8 > 5")
        pool.resize(6, "-2: memory 90% > 85%")
        pool.resize(6, "no change: not an event")
        (w,) = [w for w in registry.live() if w.name == "reg-events"]
        assert w.events == {("up", "cpu"): 1, ("up", "queue"): 1, ("down", "memory"): 1}
    finally:
        pool.shutdown()
        registry.unregister(pool)


def test_a_scanner_is_watched_by_its_summary(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with ResizableThreadPoolExecutor(1) as pool:
        scanner = Scanner(tmp_path, pool)
        assert registry.register(scanner, "reg-scan") == "reg-scan"
        scanner.run()
        (w,) = [w for w in registry.live() if w.name == "reg-scan"]
        assert w.kind == "scan" and w.target is None and w.summary.files == 1
    registry.unregister(scanner)


def test_what_cannot_be_watched_is_refused():
    with pytest.raises(ValueError, match="obj must have stats"):
        registry.register(object())
    with ResizableThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="name"):
        registry.register(pool, "")


def test_tick_hooks_run_after_every_tick_and_never_break_it():
    seen = []

    def hook(ctl, st):
        seen.append(st.size)

    def broken(ctl, st):
        raise RuntimeError("exporter bug")

    registry.add_tick_hook(broken)
    registry.add_tick_hook(hook)
    try:
        with AdaptiveThreadPoolExecutor(3, policy=None, record=True) as pool:
            pool.controller.tick()  # its thread ticks too
            assert pool.controller.errors == 0
    finally:
        registry.remove_tick_hook(broken)
        registry.remove_tick_hook(hook)
    assert seen and set(seen) == {3}


# -- task durations ------------------------------------------------------------------

class _Target:
    """A test double keeping the last ``keep`` run times, as a pool does."""

    def __init__(self, keep: int = 4096) -> None:
        self.times: list[float] = []
        self.keep = keep
        self.completed = self.failed = 0

    def run(self, *times: float, failed: int = 0) -> None:
        self.times = (self.times + list(times))[-self.keep:]
        self.completed += len(times) - failed
        self.failed += failed

    def recent_task_times(self, n: int) -> list[float]:
        return self.times[-n:] if n > 0 else []

    def stats(self) -> SimpleNamespace:
        return SimpleNamespace(completed=self.completed, failed=self.failed, task_times=())


def _cum(d: TaskDurations) -> dict[float, float]:
    return dict(d.buckets()[0])


def test_durations_are_exact_while_the_target_keeps_every_run_time():
    t, d = _Target(), TaskDurations()
    t.run(0.0002, 0.003, 0.003, 0.7, 20.0, failed=1)
    d.update(t, t.stats())  # the first read includes the whole (kept) history
    t.run(0.05)
    d.update(t, t.stats())
    d.update(t, t.stats())  # nothing new: nothing added
    buckets, count, total = d.buckets()
    assert count == 6 and d.estimated == 0
    assert total == pytest.approx(0.0002 + 0.006 + 0.7 + 20.0 + 0.05)
    cum = dict(buckets)
    assert cum[0.00025] == 1 and cum[0.0025] == 1 and cum[0.005] == 3
    assert cum[0.05] == 4 and cum[1.0] == 5 and cum[10.0] == 5  # 20 s: only in +Inf
    assert [b for b, _ in buckets] == list(BUCKETS)


def test_a_history_not_all_kept_is_left_out():
    t, d = _Target(keep=3), TaskDurations()
    t.run(1.0, 1.0, 1.0, 1.0, 1.0)
    d.update(t, t.stats())
    assert d.buckets()[1] == 0
    t.run(0.001)
    d.update(t, t.stats())
    assert d.buckets()[1] == 1 and _cum(d)[0.001] == 1


def test_more_tasks_than_kept_are_estimated_from_those_read():
    t, d = _Target(keep=4), TaskDurations()
    d.update(t, t.stats())
    t.run(*([1.0] * 6 + [0.001, 0.001, 0.2, 0.2]))  # 10 finished, the last 4 kept
    d.update(t, t.stats())
    buckets, count, total = d.buckets()
    assert count == 10 and d.estimated == 6
    cum = dict(buckets)
    assert cum[0.001] == pytest.approx(5.0) and cum[0.25] == pytest.approx(10.0)
    assert total == pytest.approx((0.002 + 0.4) * 10 / 4)
    values = [c for _, c in buckets]
    assert values == sorted(values) and values[-1] <= count


def test_counters_that_go_back_restart_the_window():
    t, d = _Target(), TaskDurations()
    t.run(0.01, 0.01)
    d.update(t, t.stats())
    restarted = _Target()  # e.g. a restarted scheduler: its counters start again
    restarted.run(0.5)
    d.update(restarted, restarted.stats())
    assert d.buckets()[1] == 2
    restarted.run(0.5)
    d.update(restarted, restarted.stats())
    assert d.buckets()[1] == 3 and _cum(d)[0.25] == 2 and _cum(d)[0.5] == 3


def test_durations_of_a_real_pool():
    with ResizableThreadPoolExecutor(2) as pool:
        d = TaskDurations()
        d.update(pool, pool.stats())
        list(pool.map(abs, range(500)))
        d.update(pool, pool.stats())
        assert d.buckets()[1] == 500 and d.estimated == 0
        assert d.buckets()[2] == pytest.approx(sum(pool.recent_task_times(500)))


@pytest.mark.parametrize("bounds", [(), (0.1, 0.1), (0.2, 0.1), (0.0, 1.0)])
def test_bucket_bounds_are_validated(bounds):
    with pytest.raises(ValueError, match="bounds"):
        TaskDurations(bounds)


def test_bucket_bounds_cover_a_millisecond_to_ten_seconds():
    b = np.asarray(BUCKETS)
    assert b[0] <= 0.001 and b[-1] == 10.0 and (np.diff(b) > 0).all()
