"""PolicyAdaptive and the scanner on Dask: a pure-core test on a stub cluster and a
fake clock, then real LocalClusters (in-process workers, and one with processes)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
import time
from collections import deque

import numpy as np
import pytest

pytest.importorskip("distributed")

from distributed import Client, LocalCluster

from adaptive_lab import FakeClock, Trace
from adaptive_lab.integrations.dask import (
    PolicyAdaptive,
    TaskCounter,
    sample_from_snapshot,
    scan_on_dask,
    stats_from_snapshot,
)
from adaptive_lab.policies import Decision, Policy, available_policies, make_policy
from adaptive_lab.scanner.core import scan

DEADLINE = 15.0  # seconds any single wait in these tests may take


@pytest.fixture(autouse=True, scope="module")
def _quiet_distributed():
    """distributed logs a lot at INFO/WARNING while clusters start and stop."""
    names = ("distributed", "distributed.deploy.adaptive", "tornado")
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    yield
    for n, level in old.items():
        logging.getLogger(n).setLevel(level)


def wait_until(pred, timeout: float = DEADLINE, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def snap(workers=2, threads=None, processing=0, busy_workers=0, queued=0, unrunnable=0,
         waiting=0, completed=0, failed=0, durations=(), cpu=50.0, mem=20.0):
    threads = workers if threads is None else threads
    return {"workers": workers, "threads": threads, "processing": processing,
            "busy_workers": busy_workers, "busy_threads": min(processing, threads),
            "waiting_on_workers": waiting, "queued": queued, "unrunnable": unrunnable,
            "occupancy": 0.0, "cpu_percent": cpu, "process_cpu_percent": cpu,
            "memory_percent": mem, "rss_mb": 100.0, "available_mb": 1000.0,
            "completed": completed, "failed": failed, "durations": list(durations)}


# -- a scheduler snapshot as the controller's stats and machine readings (table) ------
@pytest.mark.parametrize(
    ("s", "planned", "expect"),
    [
        # idle cluster: nothing busy, nothing queued
        (snap(), 2, dict(size=2, alive=2, busy=0, idle=2, queued=0, submitted=0)),
        # queued + unrunnable + assigned beyond threads all count as waiting work
        (snap(processing=5, busy_workers=2, queued=7, unrunnable=1, waiting=3), 3,
         dict(size=3, alive=2, busy=2, idle=0, queued=11, submitted=13)),
        # counters are the scheduler's, failures apart
        (snap(completed=18, failed=2), 2, dict(completed=18, failed=2, submitted=20)),
    ],
)
def test_stats_from_snapshot(s, planned, expect):
    st = stats_from_snapshot(s, planned)
    for k, v in expect.items():
        assert getattr(st, k) == v, k
    assert math.isnan(st.task_cpu_seconds)  # the scheduler does not know it: unknown
    m = sample_from_snapshot(s)
    assert (m.cpu_percent, m.memory_percent, m.available_mb) == (50.0, 20.0, 1000.0)


# -- the Dask core on a stub cluster and a fake clock ------------------------------
class StubScheduler:
    """The scheduler comm as Adaptive uses it, answering scripted snapshots."""

    def __init__(self, cluster, snaps):
        self.cluster, self.snaps = cluster, deque(snaps)
        self.registered = 0
        self.retired: list[list[str]] = []

    async def register_scheduler_plugin(self, plugin, name, idempotent):
        self.registered += 1

    async def adaptive_lab_snapshot(self, since=0):
        s = self.snaps.popleft()
        if isinstance(s, Exception):
            raise s
        new = max(0, s["completed"] - since)  # like TaskCounter: only those after since
        return {**s, "durations": s["durations"][len(s["durations"]) - new:] if new else []}

    async def workers_to_close(self, target, key=None, attribute="name", **kw):
        return sorted(self.cluster.names)[target:]

    async def retire_workers(self, names, remove, close_workers):
        self.retired.append(sorted(names))


class StubCluster:
    def __init__(self, n, snaps):
        self.names = {f"w{i}" for i in range(n)}
        self.scheduler_comm = StubScheduler(self, snaps)

    plan = requested = observed = property(lambda self: set(self.names))

    def scale(self, n):
        self.names |= {f"w{i}" for i in range(len(self.names), n)}

    def scale_down(self, workers):
        self.names -= set(workers)


class SlowStartCluster(StubCluster):
    """Requested workers arrive only when ``arrive`` is set; meanwhile Dask's
    ``recommendations`` awaits the cluster, as with real worker processes."""

    def __init__(self, n, snaps):
        super().__init__(n, snaps)
        self.arrive = asyncio.Event()
        self.pending: set[str] = set()

    plan = property(lambda self: self.names | self.pending)
    requested = property(lambda self: self.names)

    def scale(self, n):
        self.pending = {f"w{i}" for i in range(len(self.names), n)}

    def __await__(self):
        async def arrived():
            await self.arrive.wait()
            self.names |= self.pending
            self.pending = set()
        return arrived().__await__()


class Need(Policy):
    """Test policy: one worker per running or waiting task."""

    name = "need"

    def decide(self, obs):
        return Decision(obs.busy + obs.queue_depth, f"need {obs.busy}+{obs.queue_depth}")


def drive(adaptive, clock, ticks):
    async def run():
        for _ in range(ticks):
            clock.advance(1.0)
            await adaptive.adapt()
    asyncio.run(run())


def test_stub_cluster_keeps_dask_debounce_and_fake_time(tmp_path):
    load = snap(workers=1, processing=1, busy_workers=1, queued=5)
    idle = snap(workers=4, completed=6, durations=[0.5] * 6)
    cluster = StubCluster(1, [load, load, idle, idle, idle])
    clock = FakeClock(100.0)
    ad = PolicyAdaptive(cluster, interval=0, minimum=1, maximum=4, wait_count=2,
                        policy=Need(), record=tmp_path / "dask.jsonl", clock=clock)
    drive(ad, clock, 2)
    assert cluster.names == {"w0", "w1", "w2", "w3"}  # 1 + 5 wanted, clamped to 4
    drive(ad, clock, 1)  # idle once: Dask's wait_count=2 holds
    assert len(cluster.names) == 4 and cluster.scheduler_comm.retired == []
    drive(ad, clock, 1)  # idle twice: retire 3 through the scheduler
    assert cluster.scheduler_comm.retired == [["w1", "w2", "w3"]]
    assert cluster.names == {"w0"}
    drive(ad, clock, 1)
    ad.stop()
    assert ad.controller.ticks == 5  # the one Controller decided every adapt()
    tr = Trace.load(tmp_path / "dask.jsonl")
    assert [s["t"] for s in tr.samples] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [s["target"] for s in tr.samples] == [4, 4, 1, 1, 1]
    thr = [s["throughput"] for s in tr.samples]  # first window: no baseline, unknown
    assert math.isnan(thr[0]) and thr[1:] == [0.0, 6.0, 0.0, 0.0]  # 6 finished in 1 s
    assert tr.samples[2]["latency_mean"] == 0.5 and math.isnan(tr.samples[3]["latency_mean"])
    assert all(math.isnan(s["task_cpu_cores"]) for s in tr.samples)  # unknown on Dask
    # one scale event per change Dask made (not one per debounced recommendation)
    assert [(e["t"], e["from"], e["to"]) for e in tr.scale_events()] == [(1.0, 1, 4), (4.0, 4, 1)]
    assert "wait_count=2" in tr.scale_events()[1]["reason"]
    assert tr.header["policy"]["name"] == "need"
    assert tr.header["workload"]["backend"] == "dask"
    assert cluster.scheduler_comm.registered == 1


def test_a_self_debouncing_policy_shrinks_an_idle_cluster():
    """The occupancy policy (Dask's rule, its wait_count included) asks to close idle
    workers only every third tick and holds in between. Behind a second debounce
    (Dask's wait_count, reset by every hold) the cluster never shrank; by default
    PolicyAdaptive leaves the debounce to the policy."""
    idle = snap(workers=6)
    cluster = StubCluster(6, [idle] * 4)
    clock = FakeClock()
    ad = PolicyAdaptive(cluster, interval=0, minimum=1, maximum=8,
                        policy=make_policy("occupancy", interval=0, wait_count=3),
                        clock=clock)
    assert ad.wait_count == 1
    drive(ad, clock, 2)
    assert len(cluster.names) == 6  # the policy's own debounce: 2 of 3
    drive(ad, clock, 1)
    assert cluster.scheduler_comm.retired == [["w1", "w2", "w3", "w4", "w5"]]
    assert cluster.names == {"w0"}
    drive(ad, clock, 1)
    assert cluster.names == {"w0"}  # at the minimum: same


def test_samples_continue_while_dask_waits_for_workers():
    load = snap(workers=1, processing=1, busy_workers=1, queued=3)
    cluster = SlowStartCluster(1, [load] * 6)
    clock = FakeClock()
    ad = PolicyAdaptive(cluster, interval=0, minimum=1, maximum=4, wait_count=2,
                        policy=Need(), record=True, clock=clock)
    ad.interval = 1.0  # as if running every second (interval=0 keeps Dask's loop off)

    async def run():
        clock.advance(1.0)
        await ad.adapt()  # decide 4: scale_up requests 3 workers that are slow to start
        assert len(cluster.plan) == 4 and len(cluster.requested) == 1
        clock.advance(1.0)
        blocked = asyncio.create_task(ad.adapt())  # awaits the cluster
        await asyncio.sleep(0.01)
        for _ in range(3):
            clock.advance(1.0)
            await ad._sample_tick()  # decisions stuck: the sampler fills in
        cluster.arrive.set()
        await asyncio.wait_for(blocked, 5)

    asyncio.run(run())
    tr = ad.trace()
    assert [s["t"] for s in tr.samples] == [1.0, 2.0, 4.0, 5.0]  # 3.0: < 1.5 intervals
    assert [s["target"] for s in tr.samples] == [4, 4, 4, 4]
    assert len(cluster.names) == 4
    assert ad.controller.ticks == 4 and ad.last_decision.target == 4


class Broken(Policy):
    name = "broken"

    def decide(self, obs):
        raise RuntimeError("boom")


def test_policy_or_scheduler_error_holds_and_is_recorded():
    cluster = StubCluster(2, [snap(queued=9), RuntimeError("scheduler gone"), snap(queued=9)])
    clock = FakeClock()
    ad = PolicyAdaptive(cluster, interval=0, minimum=1, maximum=4, policy=Broken(),
                        record=True, clock=clock)
    drive(ad, clock, 3)
    assert len(cluster.names) == 2
    tr = ad.trace()
    errors = [e for e in tr.events if e["type"] == "error"]
    assert [e["where"] for e in errors] == ["policy", "stats", "policy"]
    assert "scheduler gone" in errors[1]["message"]
    assert ad.errors == 3 and cluster.scheduler_comm.registered == 2  # re-registered
    assert [s["t"] for s in tr.samples] == [1.0, 3.0]  # no sample without a snapshot


@pytest.mark.parametrize(("kw", "name"), [(dict(policy=None), "policy"),
                                          (dict(policy=3), "policy"),
                                          (dict(policy=Need(), record=3.5), "record"),
                                          (dict(policy=Need(), clock=object()), "clock")])
def test_bad_arguments_name_the_parameter(kw, name):
    with pytest.raises(ValueError, match=name):
        PolicyAdaptive(None, interval=0, **kw)


def test_task_counter_counts_finished_tasks():
    tc = TaskCounter(keep=3)
    ss = [{"action": "compute", "start": 1.0, "stop": 1.25},
          {"action": "transfer", "start": 0.0, "stop": 1.0}]
    for _ in range(4):
        tc.transition("k", "processing", "memory", stimulus_id="x", startstops=ss)
    tc.transition("k", "processing", "erred", stimulus_id="x")
    tc.transition("k", "waiting", "processing", stimulus_id="x")
    s = tc.snapshot(since=2)
    assert (s["completed"], s["failed"], s["workers"]) == (4, 1, 0)
    assert s["durations"] == [0.25, 0.25]  # only the two finished after the 2nd


# -- real LocalClusters --------------------------------------------------------------
def test_worker_processes_scale_up_under_load_and_down_when_idle(tmp_path):
    """One case end to end on worker *processes*, with Dask's own debounce added."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as c, \
            Client(c, timeout=DEADLINE) as client:
        ad = c.adapt(Adaptive=PolicyAdaptive, policy=make_policy("utilization_band"),
                     minimum=1, maximum=2, interval="50ms", wait_count=2,
                     record=tmp_path / "band.jsonl")
        futures = client.map(time.sleep, [0.05] * 80, pure=False)
        wait_until(lambda: len(c.scheduler.workers) == 2, what="2 workers under load")
        client.gather(futures, asynchronous=False)
        wait_until(lambda: len(c.scheduler.workers) == 1, what="back to 1 idle worker")
        assert ad._sampler is not None and ad._sampler.is_running()  # started on the loop
        ad.stop()
        assert not ad._sampler.is_running()
    tr = Trace.load(tmp_path / "band.jsonl")
    ups = [e for e in tr.scale_events() if e["to"] > e["from"]]
    downs = [e for e in tr.scale_events() if e["to"] < e["from"]]
    assert ups and downs and ups[0]["t"] < downs[-1]["t"]
    assert downs[-1]["to"] == 1 and "wait_count=2" in downs[-1]["reason"]
    a = tr.to_arrays()
    assert a["queued"].max() > 0 and a["busy"].max() >= 2 and a["completed"][-1] >= 60
    assert np.isfinite(a["memory_percent"]).all() and np.isfinite(a["cpu_percent"]).all()
    # task compute times: never below the 50 ms sleep; the median near it (loaded CI
    # machines stretch single windows, so the bound above is loose)
    assert np.nanmin(a["latency_mean"]) >= 0.049 and np.nanmedian(a["latency_mean"]) < 0.5
    assert (a["throughput"][~np.isnan(a["throughput"])] >= 0).all()
    assert tr.header["bounds"] == {"min_workers": 1, "max_workers": 2}


INTERVAL = 0.1  # seconds between decisions in the every-policy test
#: Generous: the scaling policies below reach the minimum within a few intervals.
SHRINK_BOUND = 5.0
#: Time constants scaled to a 0.1 s tick (the defaults are those of their sources:
#: 15 s HPA syncs and a 300 s scale-down window, .NET's 20 s thread timeout, Dask's
#: 5 s target duration); without parameters the policy is given by name.
FAST_PARAMS = {
    "fixed": dict(n=3),
    "hill_climbing": dict(idle_timeout=0.5),
    "occupancy": dict(target_duration=0.1, interval=0),
    "target_tracking": dict(sync_period=0, scale_down_window=0.5, up_period=0.5,
                            down_period=0.5),
}
#: Policies that hold an idle cluster at its size by design.
HOLDS_WHEN_IDLE = {
    "fixed": "a fixed size",
    "threshold": "the original rules shrink only on CPU > 80 % with a short queue, or "
                 "on memory pressure; an idle pool (low CPU, empty queue) holds",
}

class StillAboveMinimum(AssertionError):
    """The cluster did not shrink back to its minimum once idle."""


def _policy_cases():
    for name in available_policies():
        yield pytest.param(name, id=name)


@pytest.fixture(scope="module")
def shared_cluster():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None, silence_logs=logging.ERROR) as c, \
            Client(c, timeout=DEADLINE) as client:
        yield c, client


@pytest.mark.parametrize("name", list(_policy_cases()))
def test_every_policy_scales_a_local_cluster_up_and_back_to_minimum(shared_cluster, name):
    c, client = shared_cluster
    wait_until(lambda: len(c.scheduler.workers) == 1, what="the cluster back at one worker")
    params = FAST_PARAMS.get(name)
    ad = c.adapt(Adaptive=PolicyAdaptive, policy=make_policy(name, **params) if params
                 else name, minimum=1, maximum=3, interval=INTERVAL, record=True)
    try:
        futures = client.map(time.sleep, [0.05] * 40, pure=False)
        wait_until(lambda: len(c.scheduler.workers) >= 2, what=f"{name} to grow under load")
        client.gather(futures)
        if name in HOLDS_WHEN_IDLE:
            size = len(c.plan)
            time.sleep(10 * INTERVAL)
            assert len(c.plan) == size >= 2, HOLDS_WHEN_IDLE[name]
        else:
            try:
                wait_until(lambda: len(c.scheduler.workers) == 1, timeout=SHRINK_BOUND,
                           what=f"{name} to shrink an idle cluster to its minimum")
            except AssertionError as exc:
                raise StillAboveMinimum(f"{name}: {exc}; last decision "
                                        f"{ad.last_decision}") from None
    finally:
        ad.stop()
        c.scale(1)
    tr = ad.trace()
    ups = [e for e in tr.scale_events() if e["to"] > e["from"]]
    assert ups and ups[0]["from"] == 1 and ups[0]["reason"]
    if name not in HOLDS_WHEN_IDLE:
        assert tr.scale_events()[-1]["to"] == 1
    # (tasks that finished before the first adapt() registered the counter are missed)
    assert ad.errors == 0 and tr.samples[-1]["completed"] >= 30


# -- the scanner on Dask -------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small generated corpus plus hostile entries: a FIFO, a symlink loop, a
    non-UTF-8 name, an empty file."""
    from adaptive_lab.scanner.corpus import make_corpus

    root = tmp_path_factory.mktemp("dask-corpus")
    info = make_corpus(root / "c", files=120, dirs=4, eicar=2)
    hostile = root / "c" / "hostile"
    hostile.mkdir()
    os.mkfifo(hostile / "fifo")
    os.symlink("..", hostile / "loop")
    (hostile / "empty").write_bytes(b"")
    with open(os.path.join(os.fsencode(hostile), b"caf\xe9.bin"), "wb") as f:
        f.write(b"latin-1 name")
    return info


def results_by_path(root, **kw):
    out = {}

    def keep(r):
        assert r.raw_path not in out, "a file reported twice"
        out[r.raw_path] = (r.status, r.digest, r.matches, r.reason, r.size)

    summary = kw.pop("runner", None)
    if summary is None:
        s = scan(root, on_result=keep, signatures="builtin", **kw)
    else:
        s = summary(root, on_result=keep, signatures="builtin", **kw)
    return out, s


def test_scan_on_in_process_cluster_matches_local_scan(corpus):
    local, ls = results_by_path(corpus.root, follow_symlinks=True)
    assert ls.files == corpus.files + 2 and ls.matched_files == 2  # + empty + latin-1
    assert ls.skipped >= 1  # the FIFO
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False,
                      dashboard_address=None, silence_logs=logging.ERROR) as c, \
            Client(c, timeout=DEADLINE) as client:
        # plain executor, default pure=True, as a user would write it
        got, s = results_by_path(corpus.root, follow_symlinks=True,
                                 executor=client.get_executor())
        assert got == local and s.executor == "ClientExecutor"
        # the helper, given only an address: opens and closes its own client
        got2, s2 = results_by_path(corpus.root, follow_symlinks=True,
                                   runner=lambda root, **kw: scan_on_dask(
                                       root, c.scheduler_address, **kw))
        assert got2 == local and s2.batches >= 1 and s2.files == ls.files
        assert len(client.scheduler_info()["workers"]) == 2
        # cancelling mid-scan: every name is accounted for, no task is left behind
        stop = threading.Event()
        s3 = scan_on_dask(corpus.root, client, on_result=lambda r: stop.set(),
                          cancel_event=stop, batch_seconds=0.0005, max_in_flight=2)
        assert s3.cancelled and s3.files < ls.files
        assert s3.files + s3.skipped + s3.errors + s3.not_scanned == s3.files_seen
        wait_until(lambda: not c.scheduler.tasks, what="cancelled batches to leave")


def test_scan_on_worker_processes_matches_local_scan(corpus):
    """One worker *process*: batches and options must pickle to another interpreter."""
    local, _ = results_by_path(corpus.root)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as c, \
            Client(c, timeout=DEADLINE) as client:
        pids = set(client.run(os.getpid).values())
        assert os.getpid() not in pids
        got, s = results_by_path(corpus.root, runner=lambda root, **kw: scan_on_dask(
            root, client, **kw))
        assert got == local and s.errors == 0
        assert s.max_in_flight == 8  # max(8, 4 * 2 threads)


def test_scan_on_dask_rejects_an_executor(corpus):
    with pytest.raises(ValueError, match="executor"):
        scan_on_dask(corpus.root, "tcp://127.0.0.1:1", executor=object())


def test_bench_dask_command_smoke(tmp_path, capsys):
    from adaptive_lab.cli.main import main

    out = tmp_path / "bd.json"
    rc = main(["bench-dask", "--files", "60", "--dirs", "3", "--repeat", "1", "--in-process",
               "--interval", "0.05", "--corpus", str(tmp_path / "c"), "--output", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["digests_match"] is True
    assert [r["name"] for r in res["rows"]] == ["local-default", "local-threads",
                                                "local-processes", "dask", "dask-adaptive"]
    assert all(r["runs"][0]["files"] == 60 for r in res["rows"])
    tr = Trace.load(res["rows"][-1]["runs"][0]["trace"])
    # (a 60-file scan may end before the first 50 ms tick: samples are timing-dependent)
    assert tr.header["workload"]["backend"] == "dask"
    assert "digests identical across all runs: True" in capsys.readouterr().out


def test_bench_dask_bad_input_names_the_flag(tmp_path, capsys):
    from adaptive_lab.cli.main import main

    assert main(["bench-dask", "--workers", "0", "--output", str(tmp_path / "x.json")]) == 2
    assert "--workers" in capsys.readouterr().err
