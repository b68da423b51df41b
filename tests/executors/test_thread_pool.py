"""ResizableThreadPoolExecutor: ThreadPoolExecutor semantics, resizing, exactly-once,
counters (task CPU seconds included), ``_threads`` and fork safety."""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import random
import threading
import time
from collections import Counter

import pytest

from adaptive_lab.executors import stats as stats_module
from adaptive_lab.executors import thread as thread_module
from adaptive_lab.executors.thread import (
    BrokenThreadPool,
    PoolStats,
    ResizableThreadPoolExecutor,
)

Pool = ResizableThreadPoolExecutor


def pool_threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "_")]


def wait_until(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


def spin_cpu(seconds: float) -> float:
    """Use ``seconds`` of this thread's CPU time (not wall time) and return it."""
    t0 = time.thread_time()
    while time.thread_time() - t0 < seconds:
        pass
    return time.thread_time() - t0


# -- drop-in behaviour ------------------------------------------------------------
def test_is_an_executor_and_runs_tasks():
    with Pool(4) as ex:
        assert isinstance(ex, cf.Executor)
        assert ex.submit(pow, 2, 10).result() == 1024
        assert ex.submit(lambda *, k: k * 2, k=21).result() == 42
        assert list(ex.map(lambda x: x * x, range(20))) == [x * x for x in range(20)]
        assert list(ex.map(pow, [2, 3], [3, 2])) == [8, 9]


def test_exception_is_delivered_and_counted_as_failed():
    with Pool(2) as ex:
        f = ex.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            f.result()
        ex.submit(int).result()
    st = ex.stats()
    assert (st.completed, st.failed, st.submitted) == (1, 1, 2)


def test_counts_are_kept_before_the_future_settles():
    # whoever a future wakes sees its task counted: no waiting needed
    with Pool(1) as ex:
        for i in range(1, 30):
            ex.submit(int).result()
            assert ex.stats().completed == i


def test_map_timeout_raises_timeout_error():
    ev = threading.Event()
    ex = Pool(1)
    it = ex.map(lambda x: ev.wait(5), [1, 2], timeout=0.05)
    with pytest.raises(cf.TimeoutError):
        list(it)
    ev.set()
    ex.shutdown()


def test_submit_after_shutdown_raises_runtime_error():
    ex = Pool(2)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(int)


def test_context_manager_waits_for_tasks():
    done = []
    with Pool(3) as ex:
        for i in range(10):
            ex.submit(lambda i=i: (time.sleep(0.01), done.append(i)))
    assert sorted(done) == list(range(10))


def test_thread_names_use_prefix_and_default_names_the_class():
    with Pool(2, thread_name_prefix="scanpool") as ex:
        names = {ex.submit(lambda: threading.current_thread().name).result() for _ in range(4)}
    assert all(n.startswith("scanpool_") for n in names)
    with Pool(1) as ex:
        name = ex.submit(lambda: threading.current_thread().name).result()
    assert name.startswith("ResizableThreadPoolExecutor-")


def test_default_size_matches_thread_pool_executor():
    with Pool() as ex, cf.ThreadPoolExecutor() as tpe:
        assert ex.size == ex._max_workers == tpe._max_workers


@pytest.mark.parametrize("bad", [0, -1])
def test_invalid_max_workers(bad):
    with pytest.raises(ValueError, match="max_workers"):
        Pool(bad)
    with pytest.raises(TypeError, match="max_workers"):
        Pool("4")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="initializer"):
        Pool(2, initializer=3)  # type: ignore[arg-type]


def test_idle_threads_are_reused_before_one_starts():
    with Pool(8, thread_name_prefix="reuse") as ex:
        for _ in range(20):
            ex.submit(int).result()
            # the worker announces itself idle once it finds the queue empty
            assert wait_until(lambda: ex._idle_semaphore._value > 0)
        assert len(pool_threads("reuse")) == 1 and len(ex._threads) == 1


def test_saturation_starts_exactly_the_size():
    sem = threading.Semaphore(0)
    ex = Pool(4, thread_name_prefix="saturate")
    for _ in range(60):
        ex.submit(sem.acquire)
    assert len(ex._threads) == 4 == ex.stats().alive
    for _ in range(60):
        sem.release()
    ex.shutdown(wait=True)
    assert ex.stats().completed == 60 and pool_threads("saturate") == []


def test_initializer_runs_in_each_worker_with_initargs():
    seen = []
    lock = threading.Lock()

    def init(tag):
        with lock:
            seen.append((tag, threading.current_thread().name))

    ev = threading.Event()
    with Pool(3, initializer=init, initargs=("x",)) as ex:
        fs = [ex.submit(ev.wait, 5) for _ in range(3)]
        assert wait_until(lambda: len(seen) == 3)
        ev.set()
        cf.wait(fs)
    assert {t for t, _ in seen} == {"x"}
    assert len({n for _, n in seen}) == 3


def test_failing_initializer_breaks_the_pool():
    def init():
        raise RuntimeError("boom")

    ex = Pool(2, initializer=init)
    f = ex.submit(int)
    with pytest.raises(BrokenThreadPool):
        f.result(timeout=5)
    assert wait_until(lambda: ex._broken)
    with pytest.raises(BrokenThreadPool):
        ex.submit(int)
    ex.shutdown()
    assert issubclass(BrokenThreadPool, cf.thread.BrokenThreadPool)
    assert ex.stats().alive == 0


def test_shutdown_cancel_futures_cancels_queued_work():
    ev = threading.Event()
    ex = Pool(1)
    running = ex.submit(ev.wait, 5)
    assert wait_until(lambda: running.running())
    queued = [ex.submit(int) for _ in range(10)]
    t = threading.Thread(target=ex.shutdown, kwargs={"cancel_futures": True})
    t.start()
    assert wait_until(lambda: all(f.cancelled() for f in queued))
    ev.set()
    t.join(5)
    assert running.result() is True
    st = ex.stats()
    assert st.cancelled == 10 and st.queued == 0 and st.completed == 1


def test_shutdown_wait_false_returns_and_work_still_finishes():
    ev = threading.Event()
    ex = Pool(2)
    fs = [ex.submit(ev.wait, 5) for _ in range(4)]
    ex.shutdown(wait=False)  # returns although every task is still blocked
    assert not any(f.done() for f in fs)
    ev.set()
    cf.wait(fs, timeout=5)
    assert all(f.done() and not f.cancelled() for f in fs)


def test_no_threads_left_after_shutdown():
    ex = Pool(8, thread_name_prefix="leakcheck")
    list(ex.map(time.sleep, [0.01] * 16))
    assert pool_threads("leakcheck")
    ex.shutdown()
    assert pool_threads("leakcheck") == []


def test_a_dropped_pool_is_collected_and_its_workers_leave():
    import gc

    ex = Pool(5, thread_name_prefix="dropped")
    res = ex.map(abs, range(-5, 5))
    threads = ex._threads
    del ex
    gc.collect()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)
    assert list(res) == [abs(v) for v in range(-5, 5)]


# -- _threads ---------------------------------------------------------------------
def test_threads_is_a_snapshot_that_workers_never_change():
    """Code written for ThreadPoolExecutor iterates ``executor._threads`` (joining them
    after ``shutdown(wait=False)``): here it is a new set on each read, so workers
    leaving during the iteration cannot change its size."""
    ex = Pool(6, thread_name_prefix="snap")
    barrier = threading.Barrier(6, timeout=5)
    cf.wait([ex.submit(barrier.wait) for _ in range(6)])
    threads = ex._threads
    before = set(threads)
    assert len(threads) == 6 and ex._threads is not threads
    ex.resize(1)  # five workers leave
    assert wait_until(lambda: ex.stats().alive == 1)
    assert threads == before  # untouched by the workers that left
    for t in threads:
        if t.name not in {x.name for x in pool_threads("snap")}:
            t.join(5)
    assert len(ex._threads) == 1  # the finished ones are no longer listed
    ex.shutdown(wait=False)
    for t in threads:  # as CPython's test_shutdown_no_wait does
        t.join(5)
    assert pool_threads("snap") == []


def test_threads_lists_gone_workers_until_they_finish():
    # a retired worker is forgotten just before its thread ends; shutdown(wait=True)
    # still joins it, so no thread of the pool outlives shutdown
    for _ in range(20):
        ex = Pool(4, thread_name_prefix="gone")
        cf.wait([ex.submit(time.sleep, 0.001) for _ in range(8)])
        ex.resize(1)
        ex.shutdown(wait=True)
        assert pool_threads("gone") == []


# -- resizing -------------------------------------------------------------------------
def test_resize_down_retires_idle_threads():
    ex = Pool(64, thread_name_prefix="shrink64")
    barrier = threading.Barrier(64, timeout=5)
    cf.wait([ex.submit(barrier.wait) for _ in range(64)])
    assert len(pool_threads("shrink64")) == 64
    assert ex.resize(2) == 64
    assert wait_until(lambda: len(pool_threads("shrink64")) <= 2)
    assert ex.stats().alive == 2
    assert sorted(ex.map(abs, range(-5, 0))) == [1, 2, 3, 4, 5]
    assert len(pool_threads("shrink64")) <= 2
    ex.shutdown()


def test_resize_up_starts_threads_for_queued_work():
    ex = Pool(1, thread_name_prefix="grow")
    ev = threading.Event()
    fs = [ex.submit(ev.wait, 5) for _ in range(8)]
    assert wait_until(lambda: ex.stats().busy == 1)
    assert ex.stats().queued == 7
    assert ex.resize(8) == 1
    assert wait_until(lambda: ex.stats().busy == 8)
    assert len(pool_threads("grow")) == 8
    ev.set()
    cf.wait(fs)
    ex.shutdown()


def test_resize_up_without_work_starts_no_threads():
    with Pool(2, thread_name_prefix="lazy") as ex:
        ex.submit(int).result()
        before = len(pool_threads("lazy"))
        ex.resize(50)
        assert len(pool_threads("lazy")) == before
        assert ex.size == 50


def test_shrink_never_interrupts_running_tasks():
    ex = Pool(6, thread_name_prefix="busyshrink")
    ev = threading.Event()
    started = threading.Semaphore(0)

    def task(i):
        started.release()
        ev.wait(5)
        return i

    fs = [ex.submit(task, i) for i in range(6)]
    for _ in range(6):
        assert started.acquire(timeout=5)
    ex.resize(1)
    assert ex.stats().busy == 6  # all still running
    assert not any(f.done() for f in fs)
    ev.set()
    assert [f.result(timeout=5) for f in fs] == list(range(6))
    assert wait_until(lambda: len(pool_threads("busyshrink")) == 1)
    ex.shutdown()


def test_max_workers_assignment_is_a_real_resize():
    ex = Pool(8, thread_name_prefix="assign")
    seen = []
    ex.add_resize_listener(lambda old, new, why: seen.append((old, new, why)))
    barrier = threading.Barrier(8, timeout=5)
    cf.wait([ex.submit(barrier.wait) for _ in range(8)])
    ex._max_workers = 3
    assert ex.size == 3 and ex._max_workers == 3
    assert seen == [(8, 3, "_max_workers assignment")]
    assert wait_until(lambda: len(pool_threads("assign")) == 3)
    ex.shutdown()


def test_resize_listeners_get_old_new_and_reason_only_on_change():
    with Pool(2) as ex:
        seen = []
        ex.add_resize_listener(lambda *a: seen.append(a))
        ex.resize(5, reason="by hand")
        ex.resize(5)
        ex.resize(3)
    assert seen == [(2, 5, "by hand"), (5, 3, "manual")]


@pytest.mark.parametrize("bad", [0, -3])
def test_resize_rejects_non_positive(bad):
    with Pool(2) as ex, pytest.raises(ValueError, match="n must"):
        ex.resize(bad)


def test_resize_rejects_non_int():
    with Pool(2) as ex, pytest.raises(TypeError):
        ex.resize(2.5)  # type: ignore[arg-type]


def test_oscillating_resizes_keep_thread_count_bounded():
    ex = Pool(4, thread_name_prefix="osc")
    for i in range(200):
        ex.resize(1 + (i % 2) * 15)
        ex.submit(time.sleep, 0.0005)
    ex.resize(3)
    cf.wait([ex.submit(int) for _ in range(50)])
    assert wait_until(lambda: len(pool_threads("osc")) <= 3)
    ex.shutdown()
    assert pool_threads("osc") == []


@pytest.mark.parametrize("cancel", [False, True])
def test_stress_every_task_runs_exactly_once(cancel):
    """Many thousands of tasks, several submitters, random resizes, then shutdown."""
    ex = Pool(8, thread_name_prefix=f"stress{cancel}")
    runs: Counter[int] = Counter()
    lock = threading.Lock()
    futures: dict[int, cf.Future] = {}
    flock = threading.Lock()
    rng = random.Random(1234)
    stop = threading.Event()

    def task(i):
        with lock:
            runs[i] += 1
        if i % 97 == 0:
            time.sleep(0.001)
        if i % 13 == 0:
            raise ValueError(i)
        return i

    def submitter(base):
        for k in range(2500):
            try:
                f = ex.submit(task, base + k)
            except RuntimeError:
                return
            with flock:
                futures[base + k] = f

    def resizer():
        while not stop.is_set():
            ex.resize(rng.randint(1, 24))
            time.sleep(0.0005)

    subs = [threading.Thread(target=submitter, args=(b * 100_000,)) for b in range(4)]
    rz = threading.Thread(target=resizer)
    rz.start()
    for s in subs:
        s.start()
    assert wait_until(lambda: len(futures) >= 2000, timeout=20)
    if cancel:
        ex.shutdown(wait=True, cancel_futures=True)
    for s in subs:
        s.join(10)
    stop.set()
    rz.join(5)
    ex.shutdown(wait=True)
    assert all(f.done() for f in futures.values()), "a future never completed"
    for i, f in futures.items():
        if f.cancelled():
            assert runs[i] == 0
        else:
            assert runs[i] == 1, f"task {i} ran {runs[i]} times"
            assert isinstance(f.exception(), ValueError) if i % 13 == 0 else f.result() == i
    assert set(runs) <= set(futures)
    st = ex.stats()
    assert st.submitted == len(futures)
    assert st.completed + st.failed + st.cancelled == st.submitted
    assert st.queued == 0 and st.busy == 0
    assert wait_until(lambda: pool_threads(f"stress{cancel}") == [])


def test_growth_spreads_as_a_tree_and_every_task_runs_once(monkeypatch):
    """resize() starts one thread; the new workers start the rest (each up to two)."""
    ex = Pool(1, thread_name_prefix="tree")
    barrier = threading.Barrier(128, timeout=20)
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    def task(i: int) -> int:
        with lock:
            runs[i] += 1
        barrier.wait()
        return i

    fs = [ex.submit(task, i) for i in range(128)]
    starters: set[str] = set()
    real_start = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        starters.add(threading.current_thread().name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    ex.resize(128)
    assert [f.result(timeout=30) for f in fs] == list(range(128))
    monkeypatch.undo()
    assert set(runs.values()) == {1} and len(runs) == 128
    assert sum(name.startswith("tree_") for name in starters) >= 2
    ex.shutdown()
    assert pool_threads("tree") == []


def test_submit_keeps_working_during_a_big_growth():
    ex = Pool(1, thread_name_prefix="bigjump")
    ev = threading.Event()
    fs = [ex.submit(ev.wait, 10) for _ in range(300)]
    grower = threading.Thread(target=ex.resize, args=(300,))
    grower.start()
    while grower.is_alive():
        fs.append(ex.submit(int))
    grower.join()
    assert wait_until(lambda: ex.stats().alive == 300, timeout=10)
    ev.set()
    cf.wait(fs, timeout=20)
    ex.shutdown()
    assert all(f.done() for f in fs)


@pytest.mark.parametrize("wait", [True, False])
def test_shutdown_during_a_tree_growth_joins_every_started_thread(wait):
    for _ in range(5):
        ex = Pool(1, thread_name_prefix="treeshut")
        fs = [ex.submit(time.sleep, 0.01) for _ in range(64)]
        ex.resize(64)
        ex.shutdown(wait=wait, cancel_futures=True)  # while workers still start others
        assert wait_until(lambda fs=fs: all(f.done() for f in fs), timeout=10)
        assert wait_until(lambda: pool_threads("treeshut") == [], timeout=5)


@pytest.mark.parametrize("refused", [1, 2, 3])  # the first (submit's), or in the tree
def test_a_refused_thread_start_loses_no_task_and_keeps_the_counts(monkeypatch, refused):
    real_start = threading.Thread.start
    calls = [0]

    def flaky_start(self: threading.Thread) -> None:
        if self.name.startswith("flaky"):
            calls[0] += 1
            if calls[0] == refused:
                raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", flaky_start)
    pool = Pool(max_workers=4, thread_name_prefix="flaky")
    try:
        if refused == 1:  # no worker at all: submit raises, as ThreadPoolExecutor's
            with pytest.raises(RuntimeError, match="can't start new thread"):
                pool.submit(time.sleep, 0)
        else:
            pool.submit(time.sleep, 0).result(timeout=10)
            pool.resize(4)
        futs = [pool.submit(time.sleep, 0.01) for _ in range(40)]
        assert all(f.result(timeout=10) is None for f in futs)
        live = [t for t in threading.enumerate() if t.name.startswith("flaky")]
        assert pool.stats().alive == len(live) >= 1
        assert wait_until(lambda: pool.stats().completed == len(futs) + 1)
        assert pool.stats().queued == 0
    finally:
        pool.shutdown(wait=True)


# -- counters ---------------------------------------------------------------------
def test_stats_snapshot_counts():
    ev = threading.Event()
    ex = Pool(2)
    fs = [ex.submit(ev.wait, 5) for _ in range(5)]
    assert wait_until(lambda: ex.stats().busy == 2)
    st = ex.stats()
    assert isinstance(st, PoolStats)
    assert (st.size, st.alive, st.busy, st.idle, st.queued, st.submitted) == (2, 2, 2, 0, 3, 5)
    ev.set()
    cf.wait(fs)
    st = ex.stats()
    assert (st.completed, st.failed, st.queued, st.busy) == (5, 0, 0, 0)
    assert len(st.task_times) == 5 and all(t >= 0 for t in st.task_times)
    assert ex.recent_task_times(2) == list(st.task_times[-2:])
    assert ex.recent_task_times(0) == []
    d = st.to_dict()
    assert d["task_times"] == list(st.task_times) and "task_cpu_seconds" in d
    ex.shutdown()


def test_first_task_times_keep_the_first_fifty():
    with Pool(1) as ex:
        for _ in range(50):
            ex.submit(time.sleep, 0.002).result()
        first = ex.first_task_times()
        for _ in range(200):
            ex.submit(int).result()
    assert len(first) == 50 and min(first) >= 0.002
    assert ex.first_task_times() == first  # later tasks do not change the baseline
    assert max(ex.recent_task_times(100)) < 0.002


def test_stats_is_safe_while_tasks_complete():
    """stats() copies the task-time deque atomically; it once raised 'deque mutated'
    (a tiny switch interval makes a thread switch inside stats() likely)."""
    import sys

    errors: list[BaseException] = []
    old = sys.getswitchinterval()
    for _ in range(5):
        ex = Pool(4)
        stop = threading.Event()

        def reader(ex=ex, stop=stop):
            for _ in range(3000):
                if stop.is_set():
                    return
                try:
                    assert len(ex.stats().task_times) <= 100
                except BaseException as exc:  # pragma: no cover - the bug guarded
                    errors.append(exc)
                    return

        sys.setswitchinterval(1e-6)
        try:
            t = threading.Thread(target=reader)
            t.start()
            cf.wait([ex.submit(int) for _ in range(5000)])
            stop.set()
            t.join()
        finally:
            sys.setswitchinterval(old)
            ex.shutdown()
    assert errors == []


@pytest.mark.skipif(not hasattr(time, "pthread_getcpuclockid"),
                    reason="threads' CPU clocks cannot be read here")
def test_task_cpu_seconds_counts_live_and_gone_workers():
    release = threading.Event()

    def task() -> float:
        used = spin_cpu(0.03)
        release.wait(10)
        return used

    ex = Pool(3)
    assert ex.stats().task_cpu_seconds < 0.03
    fs = [ex.submit(task) for _ in range(3)]
    assert wait_until(lambda: ex.stats().task_cpu_seconds >= 0.09)  # still running
    release.set()
    used = sum(f.result() for f in fs)
    live = ex.stats().task_cpu_seconds
    assert live >= used
    ex.resize(1)  # two workers leave: what they used stays counted
    assert wait_until(lambda: ex.stats().alive == 1)
    after = ex.stats().task_cpu_seconds
    assert after >= live
    ex.shutdown()
    assert ex.stats().alive == 0 and ex.stats().task_cpu_seconds >= after
    # threads that only wait use (almost) no CPU
    idle = Pool(4)
    cf.wait([idle.submit(time.sleep, 0.05) for _ in range(4)])
    assert idle.stats().task_cpu_seconds < 0.05
    idle.shutdown()


def test_task_cpu_seconds_is_nan_without_thread_cpu_clocks(monkeypatch):
    monkeypatch.setattr(stats_module, "_cpu_clock_id", None)
    with Pool(2) as ex:
        ex.submit(int).result()
        assert math.isnan(ex.stats().task_cpu_seconds)


# -- fork safety ------------------------------------------------------------------
def _exit_quietly() -> None:
    """A forked child's target: returning runs threading's exit hooks (ours too)."""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
def test_a_child_forked_while_the_shutdown_lock_is_held_exits(fork_while_held):
    """The child runs the exit hook, which takes the module's shutdown lock: it must
    not inherit the lock held by a thread of the parent (CPython's bpo-45021)."""
    with Pool(2) as ex:
        ex.submit(int).result()  # the pool has a worker registered for the exit hook
        assert fork_while_held(thread_module._global_shutdown_lock) == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_children_forked_while_the_pool_submits_exit():
    """CPython's test_hang_global_shutdown_lock: tasks that keep submitting hold the
    shutdown lock often; every child forked meanwhile exits."""
    stop = threading.Event()
    ctx = multiprocessing.get_context("fork")
    with Pool(1) as ex:

        def resubmit() -> None:
            if not stop.is_set():
                ex.submit(resubmit)

        ex.submit(resubmit)
        try:
            for _ in range(20):
                p = ctx.Process(target=_exit_quietly)
                p.start()
                p.join(20)
                alive = p.is_alive()
                if alive:  # pragma: no cover - the bug guarded
                    p.kill()
                    p.join()
                assert not alive and p.exitcode == 0
        finally:
            stop.set()
