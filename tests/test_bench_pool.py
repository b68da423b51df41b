"""Tests of the pool workload benchmark (``adaptive-lab bench-pool --mode workloads``):
the submission patterns, the deadline cut, the result's shape and its validation. Tiny
task counts; nothing here asserts a speed."""

from __future__ import annotations

import concurrent.futures as cf
import json
import threading
import time

import pytest

from adaptive_lab.bench import pool_workloads as pw
from adaptive_lab.bench.pool_workloads import (
    HELD_OUT,
    WORKLOADS,
    Workload,
    format_table,
    run_once,
    run_workload_benchmark,
)


class Counting(cf.ThreadPoolExecutor):
    """A ThreadPoolExecutor that records the most tasks submitted and not yet done."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        f = super().submit(fn, *args, **kwargs)
        f.add_done_callback(self._done)
        return f

    def _done(self, _f: cf.Future) -> None:
        with self.lock:
            self.in_flight -= 1


def _tiny(tasks: int = 40, delay: float = 0.001) -> Workload:
    return Workload("tiny", "sleep", tasks, (1, 2), lambda i: lambda: time.sleep(delay))


def test_bounded_keeps_at_most_window_tasks_in_flight() -> None:
    pools: list[Counting] = []

    def make() -> Counting:
        pools.append(Counting(8))
        return pools[-1]

    run = run_once(make, _tiny(60), "bounded", 60, window=3, deadline=30.0)
    assert run["done"] == 60 and not run["cut"]
    assert 1 <= pools[0].peak <= 3


def test_all_at_once_submits_everything_before_waiting() -> None:
    pools: list[Counting] = []

    def make() -> Counting:
        pools.append(Counting(1))
        return pools[-1]

    run = run_once(make, _tiny(30, 0.002), "all", 30, window=3, deadline=30.0)
    assert run["done"] == 30
    assert pools[0].peak > 3  # not bounded by the window: one worker, a deep queue


@pytest.mark.parametrize("pattern", ["all", "bounded"])
def test_a_run_past_the_deadline_is_cut_and_scored_by_what_finished(pattern: str) -> None:
    release = threading.Event()
    w = Workload("block", "wait", 10, (1,), lambda i: (lambda: release.wait(5.0)) if i else
                 (lambda: None))
    try:
        run = run_once(lambda: cf.ThreadPoolExecutor(1), w, pattern, 10, window=4,
                       deadline=0.2)
    finally:
        release.set()
    assert run["cut"] and run["done"] == 1
    assert run["tasks_per_s"] == pytest.approx(1 / run["seconds"])


def test_benchmark_result_has_ratios_per_workload_and_pattern(tmp_path) -> None:
    res = run_workload_benchmark(["sleep-1ms", "blake2b-256KiB"], repeat=1, scale=0.002,
                                 sizes=[1, 2], deadline=10.0)
    rows = res["rows"]
    assert [(r["workload"], r["pattern"]) for r in rows] == [
        ("sleep-1ms", "all"), ("sleep-1ms", "bounded"),
        ("blake2b-256KiB", "all"), ("blake2b-256KiB", "bounded")]
    for r in rows:
        assert set(r["median_tasks_per_s"]) == {"adaptive", "tpe-default", "tpe-1", "tpe-2"}
        assert r["best_fixed"] in (1, 2)
        ref = r["median_tasks_per_s"][f"tpe-{r['best_fixed']}"]
        assert r["adaptive_ratio"] == pytest.approx(r["median_tasks_per_s"]["adaptive"] / ref)
        assert r["tasks"] == max(1, round(WORKLOADS[r["workload"]].tasks * 0.002))
    assert [r["held_out"] for r in rows] == [False, False, True, True]
    assert res["held_out"] == ["blake2b-256KiB"]
    text = format_table(res)
    assert text.index("tuned on") < text.index("held out")
    json.dumps(res)  # JSON-friendly


def test_held_out_workloads_exist_and_are_apart() -> None:
    assert {"sleep-3ms-sha64k", "lognormal-5ms", "blake2b-256KiB"} <= set(HELD_OUT)
    tuned = [n for n in WORKLOADS if n not in HELD_OUT]
    assert {"sleep-1ms", "sleep-5ms", "sleep-20ms", "sleep-50ms", "sha256-1MiB",
            "python-loop"} <= set(tuned)


def test_the_default_pool_is_the_package_default() -> None:
    ex = pw.default_pool()
    try:
        ctl = getattr(ex, "_controller", None) or getattr(ex, "controller", None)
        assert ctl is not None and ctl.policy.name == "adaptive"
    finally:
        ex.shutdown()


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"workloads": ["nope"]}, "workload"), ({"patterns": ["sideways"]}, "pattern"),
    ({"repeat": 0}, "repeat"), ({"scale": 0.0}, "scale"), ({"window": 0}, "window"),
    ({"deadline": 0.0}, "deadline"), ({"sizes": [0]}, "sizes")])
def test_invalid_arguments_raise_value_error_naming_them(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        run_workload_benchmark(**kwargs)


def test_the_cli_accepts_the_workloads_mode() -> None:
    import argparse

    from adaptive_lab.cli import bench_pool

    p = argparse.ArgumentParser()
    bench_pool.add_arguments(p)
    args = p.parse_args(["--mode", "workloads", "--workloads", "held-out", "--repeat", "1"])
    assert args.mode == "workloads" and args.repeat == 1
    with pytest.raises(ValueError, match="sizes"):
        bench_pool._ints("2,x")
