"""AdaptiveThreadPoolExecutor: the resizable pool + controller + recorder.

Adaptive by default; ``policy=None`` is a fixed pool that behaves as
``ThreadPoolExecutor``. The mechanism itself is tested in test_thread_pool.py.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from adaptive_lab import (
    AdaptiveThreadPoolExecutor,
    FixedPolicy,
    ScriptedMetrics,
    SystemSample,
    ThresholdPolicy,
    default_bounds,
)
from adaptive_lab._host import available_cores
from adaptive_lab.executors import adaptive as adaptive_module
from adaptive_lab.executors.adaptive import DEFAULT_POLICY
from adaptive_lab.executors.thread import ResizableThreadPoolExecutor

CALM = [SystemSample(cpu_percent=20.0, memory_percent=50.0, available_mb=1000,
                     process_cpu_percent=20.0, rss_mb=50)]


def wait_until(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


def pool_threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "_")]


# -- adaptive by default ------------------------------------------------------------
def test_no_arguments_run_the_default_policy_within_the_default_bounds():
    with AdaptiveThreadPoolExecutor() as ex:
        assert isinstance(ex, ResizableThreadPoolExecutor) and isinstance(ex, cf.Executor)
        assert ex.controller is not None and ex.controller.running
        assert ex.controller.policy.name == DEFAULT_POLICY == "adaptive"
        assert (ex.min_workers, ex.max_workers) == default_bounds()
        assert ex.size == min(available_cores(), ex.max_workers)
        assert list(ex.map(abs, range(-3, 3))) == [3, 2, 1, 0, 1, 2]
    assert not ex.controller.running


def test_max_workers_is_the_policys_upper_bound():
    with AdaptiveThreadPoolExecutor(8) as ex:
        assert ex.controller is not None and ex.controller.policy.name == "adaptive"
        assert (ex.min_workers, ex.max_workers) == (1, 8)
        assert (ex.controller.min_workers, ex.controller.max_workers) == (1, 8)


def test_policy_none_is_thread_pool_executor_exactly():
    with AdaptiveThreadPoolExecutor(policy=None, thread_name_prefix="fixedpool") as ex, \
            cf.ThreadPoolExecutor() as tpe:
        assert ex.controller is None  # no controller thread, nothing ever resizes it
        assert ex.size == ex._max_workers == ex.max_workers == tpe._max_workers
        for _ in range(10):  # an idle thread is reused before one is started
            ex.submit(int).result()
            assert wait_until(lambda: ex._idle_semaphore._value > 0)
        assert len(pool_threads("fixedpool")) == 1
        sem = threading.Semaphore(0)
        fs = [ex.submit(sem.acquire) for _ in range(3 * ex.size)]
        assert len(ex._threads) == ex.size  # saturated at its size
        for _ in fs:
            sem.release()
        cf.wait(fs)
        assert ex.stats().alive == ex.size  # and it never shrinks


def test_policy_by_name_or_object_drives_the_pool():
    with AdaptiveThreadPoolExecutor(8, min_workers=2, policy="threshold", interval=5) as ex:
        assert ex.controller is not None and ex.controller.policy.name == "threshold"
        assert ex.size == max(2, min(available_cores(), 8)) and ex.controller.interval == 5
    with AdaptiveThreadPoolExecutor(12, min_workers=1, policy=FixedPolicy(5),
                                    interval=0.01, metrics=ScriptedMetrics(CALM)) as ex:
        # the controller holds the pool weakly, and still resizes it
        assert wait_until(lambda: ex.size == 5)
        assert ex.controller.scale_events >= 1


def test_initial_workers_and_min_workers():
    with AdaptiveThreadPoolExecutor(8, min_workers=6, policy="threshold", interval=60) as ex:
        assert ex.size == 6  # never below min_workers
    with AdaptiveThreadPoolExecutor(8, policy="threshold", interval=60,
                                    initial_workers=7) as ex:
        assert ex.size == 7


def test_invalid_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="max_workers"):
        AdaptiveThreadPoolExecutor(0)
    with pytest.raises(TypeError, match="max_workers"):
        AdaptiveThreadPoolExecutor("4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_workers"):
        AdaptiveThreadPoolExecutor(4, min_workers=8)
    with pytest.raises(ValueError, match="min_workers"):
        AdaptiveThreadPoolExecutor(4, min_workers=0)
    with pytest.raises(TypeError, match="policy"):
        AdaptiveThreadPoolExecutor(4, policy=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown policy"):
        AdaptiveThreadPoolExecutor(4, policy="no-such-policy")
    with pytest.raises(ValueError, match="interval"):
        AdaptiveThreadPoolExecutor(4, policy="threshold", interval=0)
    with pytest.raises(ValueError, match="initial_workers"):
        AdaptiveThreadPoolExecutor(4, min_workers=2, policy="threshold", initial_workers=9)
    with pytest.raises(TypeError, match="initializer"):
        AdaptiveThreadPoolExecutor(2, initializer=3)  # type: ignore[arg-type]


def test_set_bounds_validates_atomically_and_reaches_the_controller():
    with AdaptiveThreadPoolExecutor(8, min_workers=2, policy="threshold", interval=60) as ex:
        with pytest.raises(ValueError, match="min_workers"):
            ex.set_bounds(10, 5)
        assert (ex.min_workers, ex.max_workers) == (2, 8)
        ex.set_bounds(4, 16)
        assert (ex.min_workers, ex.max_workers) == (4, 16)
        assert (ex.controller.min_workers, ex.controller.max_workers) == (4, 16)


def test_max_workers_assignment_resizes_and_is_recorded():
    ex = AdaptiveThreadPoolExecutor(8, policy=None, record=True, sample_period=0.05,
                                    metrics=ScriptedMetrics(CALM))
    ex._max_workers = 3
    assert ex.size == ex._max_workers == 3
    ex.shutdown()
    events = ex.trace().scale_events()
    assert [(e["from"], e["to"], e["reason"]) for e in events] == [
        (8, 3, "_max_workers assignment")]


# -- what happened ------------------------------------------------------------------
def test_status_has_the_original_keys_and_the_live_counters():
    with AdaptiveThreadPoolExecutor(4, policy=None) as ex:
        list(ex.map(time.sleep, [0.001] * 60))
        status = ex.status()
    original = {
        "current_workers", "min_workers", "max_workers", "cpu_cores", "adjustment_interval",
        "total_adjustments", "avg_task_time", "baseline_task_time",
        "performance_gain_percent", "monitoring_enabled", "queue_depth",
    }
    assert original <= set(status)
    assert status["current_workers"] == 4 and status["monitoring_enabled"] is False
    assert status["baseline_task_time"] > 0
    assert status["pool_completed"] == 60 and "pool_task_cpu_seconds" in status
    assert "threshold_defaults" in status


def test_metrics_use_the_first_fifty_tasks_as_baseline():
    with AdaptiveThreadPoolExecutor(1, policy=None) as ex:
        for _ in range(50):
            ex.submit(time.sleep, 0.004).result()
        for _ in range(100):
            ex.submit(int).result()
        m = ex.metrics()
    assert m.baseline is not None and m.baseline >= 0.004
    assert m.current_average < m.baseline and m.performance_gain > 50


def test_trace_is_none_without_record_and_recorded_with_it(tmp_path):
    with AdaptiveThreadPoolExecutor(4, policy=None) as ex:
        assert ex.trace() is None
    path = tmp_path / "t.jsonl"
    with AdaptiveThreadPoolExecutor(4, policy=ThresholdPolicy(), interval=0.05,
                                    record=path, metrics=ScriptedMetrics(CALM)) as ex:
        cf.wait([ex.submit(int) for _ in range(20)])
        assert ex.controller.wait_ticks(2)
    tr = ex.trace()
    assert tr is not None and tr.header["policy"]["name"] == "threshold"
    assert tr.samples and path.exists()


def test_repr_shows_size_and_bounds():
    with AdaptiveThreadPoolExecutor(4, policy=None) as ex:
        assert repr(ex).startswith("<AdaptiveThreadPoolExecutor size=4")
        assert "bounds=[" in repr(ex)


# -- lifetime -----------------------------------------------------------------------
def test_a_dropped_adaptive_pool_is_collected_with_its_controller():
    """As with ThreadPoolExecutor, a pool dropped without shutdown goes away: the
    controller holds it weakly, stops when it is collected, and the workers leave."""
    ex = AdaptiveThreadPoolExecutor(5, thread_name_prefix="dropped-adaptive")
    res = ex.map(abs, range(-5, 5))
    threads = ex._threads
    ctl = ex.controller
    assert ctl is not None and ctl.running
    del ex
    gc.collect()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)
    assert wait_until(lambda: not ctl.running)
    assert list(res) == [abs(v) for v in range(-5, 5)]


def test_shutdown_stops_the_controller_and_joins_every_thread():
    ex = AdaptiveThreadPoolExecutor(16, thread_name_prefix="adaptive-shut")
    cf.wait([ex.submit(time.sleep, 0.001) for _ in range(64)])
    ex.shutdown(wait=True)
    assert not ex.controller.running and pool_threads("adaptive-shut") == []
    with pytest.raises(RuntimeError):
        ex.submit(int)


def test_interpreter_exit_finishes_running_work_quietly():
    """At exit the controller stops and the workers are joined (no output on stderr),
    with the default (adaptive) pool left running, as CPython tests its pool."""
    code = textwrap.dedent("""
        import time
        from adaptive_lab import AdaptiveThreadPoolExecutor

        def task():
            time.sleep(0.3)
            print("apple", flush=True)

        pool = AdaptiveThreadPoolExecutor(5)
        pool.submit(task)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "apple", "")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
def test_a_child_forked_while_the_controllers_lock_is_held_exits(fork_while_held):
    """The exit hook that stops controllers takes a module lock: a child forked while
    another thread holds it must get it free (as CPython's shutdown lock)."""
    with AdaptiveThreadPoolExecutor(4) as ex:
        ex.submit(int).result()
        assert fork_while_held(adaptive_module._controllers_lock) == 0


def test_the_scanners_default_executor_is_adaptive():
    from adaptive_lab.scanner.core import _default_executor

    ex = _default_executor()
    try:
        assert isinstance(ex, AdaptiveThreadPoolExecutor)
        assert ex.controller is not None and ex.controller.policy.name == DEFAULT_POLICY
    finally:
        ex.shutdown()
