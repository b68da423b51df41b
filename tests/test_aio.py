"""The asyncio limiter: the resizable mechanism, the adaptive front door, and real
requests to a local aiohttp server on 127.0.0.1 (skipped without aiohttp).

No test asserts a speed: timeouts only guard against hangs.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

import pytest

from adaptive_lab.aio import AdaptiveLimiter, LoopClock
from adaptive_lab.control.metrics import ScriptedMetrics, SystemSample
from adaptive_lab.executors.aio import ResizableLimiter
from adaptive_lab.policies.base import Decision, Observation, Policy
from adaptive_lab.policies.fixed import FixedPolicy
from adaptive_lab.policies.registry import available_policies, make_policy
from adaptive_lab.sim.open_loop import replay
from adaptive_lab.trace.format import Trace

HANG = 30.0  # seconds: only a guard against a hang, never a measurement
METRICS = SystemSample(cpu_percent=10.0, memory_percent=30.0, available_mb=8000.0,
                       process_cpu_percent=5.0, cores=2.0, process_user_cpu_percent=4.0)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, HANG))


def scripted() -> ScriptedMetrics:
    return ScriptedMetrics([METRICS])


async def until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0.001)


# -- the mechanism, no server ---------------------------------------------------------
def test_waiters_enter_in_order_and_raising_wakes_exactly_the_new_slots():
    async def main() -> None:
        lim = ResizableLimiter(2)
        order: list[int] = []
        gate = asyncio.Event()

        async def req(i: int) -> None:
            async with lim:
                order.append(i)
                await gate.wait()

        tasks = [asyncio.create_task(req(i)) for i in range(6)]
        await until(lambda: lim.stats().queued == 4)
        assert order == [0, 1] and lim.stats().busy == 2
        lim.resize(4)
        await until(lambda: len(order) == 4)
        await asyncio.sleep(0.01)
        assert order == [0, 1, 2, 3] and lim.stats().queued == 2
        gate.set()
        await asyncio.gather(*tasks)
        st = lim.stats()
        assert order == list(range(6))
        assert (st.busy, st.queued, st.submitted, st.completed, st.failed) == (0, 0, 6, 6, 0)
        assert len(st.task_times) == 6

    run(main())


def test_lowering_lets_holders_finish_and_admits_no_one_above_the_new_limit():
    async def main() -> None:
        lim = ResizableLimiter(4)
        gate = asyncio.Event()
        inside = peak_after = 0
        lowered = False

        async def req() -> None:
            nonlocal inside, peak_after
            async with lim:
                inside += 1
                if lowered:
                    peak_after = max(peak_after, inside)
                await gate.wait()
                inside -= 1

        tasks = [asyncio.create_task(req()) for _ in range(10)]
        await until(lambda: lim.stats().busy == 4)
        assert lim.resize(1) == 4
        lowered = True
        st = lim.stats()
        assert (st.size, st.busy, st.alive, st.idle) == (1, 4, 4, 0)  # none interrupted
        gate.set()
        await asyncio.gather(*tasks)
        assert peak_after == 1  # after the holders left, one at a time
        assert lim.stats().completed == 10

    run(main())


def test_cancelled_while_waiting_or_after_being_granted_gives_the_slot_on():
    async def main() -> None:
        lim = ResizableLimiter(1)
        hold = asyncio.Event()
        entered: list[str] = []

        async def req(name: str) -> None:
            async with lim:
                entered.append(name)

        later: dict[str, asyncio.Task[None]] = {}

        async def first() -> None:
            async with lim:
                entered.append("a")
                await hold.wait()
            # a's exit granted b its slot; b is cancelled before it resumes: d gets it
            later["b"].cancel()

        a = asyncio.create_task(first())
        await until(lambda: entered == ["a"])
        later["b"] = b = asyncio.create_task(req("b"))
        c = asyncio.create_task(req("c"))
        d = asyncio.create_task(req("d"))
        await until(lambda: lim.stats().queued == 3)
        c.cancel()  # cancelled while waiting: leaves the queue
        await asyncio.gather(c, return_exceptions=True)
        assert lim.stats().queued == 2
        hold.set()
        await asyncio.gather(a, b, d, return_exceptions=True)
        st = lim.stats()
        assert entered == ["a", "d"]
        assert (st.busy, st.queued, st.completed, st.cancelled) == (0, 0, 2, 2)

    run(main())


def test_outcomes_exception_timeout_drop_and_cancel():
    async def main() -> None:
        lim = ResizableLimiter(2)
        with pytest.raises(KeyError):
            async with lim:
                raise KeyError("boom")  # an exception: a drop, and it propagates
        with pytest.raises(asyncio.TimeoutError):
            async with lim:  # a timeout inside: a drop
                await asyncio.wait_for(asyncio.sleep(10), 0.001)
        async with lim:
            lim.drop()  # marked by hand (e.g. HTTP 503)
        async with lim as same:
            assert same is lim
        async def guarded() -> None:
            async with lim:
                await asyncio.sleep(10)

        with pytest.raises(asyncio.TimeoutError):  # cancelled from outside: not a drop
            await asyncio.wait_for(guarded(), 0.001)
        st = lim.stats()
        assert (st.completed, st.failed, st.cancelled, st.busy) == (1, 3, 1, 0)
        assert len(lim.recent_task_times()) == 4  # cancelled blocks are not measured
        with pytest.raises(RuntimeError):
            lim.drop()  # outside any request

    run(main())


def test_nested_use_measures_each_block():
    async def main() -> None:
        lim = ResizableLimiter(2)
        async with lim:
            async with lim:
                lim.drop()  # the inner request
            await asyncio.sleep(0)
        st = lim.stats()
        assert (st.completed, st.failed, st.busy) == (1, 1, 0)

    run(main())


@pytest.mark.parametrize("seed", range(5))
def test_random_enter_leave_cancel_resize_keeps_the_books(seed):
    """Random steps: every request is counted exactly once, no place stays free while
    someone waits, and waiters enter in the order they came."""
    import random

    rng = random.Random(seed)

    async def main() -> None:
        lim = ResizableLimiter(rng.randint(1, 5))
        gates: dict[int, asyncio.Event] = {}
        tasks: dict[int, asyncio.Task[None]] = {}
        entered: list[int] = []

        async def req(i: int) -> None:
            async with lim:
                entered.append(i)
                await gates[i].wait()
                if i % 7 == 0:
                    raise ValueError("a failed request")

        for i in range(300):
            op = rng.random()
            if op < 0.45:
                gates[i] = asyncio.Event()
                tasks[i] = asyncio.create_task(req(i))
            elif op < 0.7 and tasks:
                gates[rng.choice(list(gates))].set()
            elif op < 0.85 and tasks:
                tasks[rng.choice(list(tasks))].cancel()
            else:
                lim.resize(rng.randint(1, 6))
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            st = lim.stats()
            assert st.submitted == (st.completed + st.failed + st.cancelled + st.busy
                                    + st.queued)
            assert st.queued == 0 or st.busy >= st.size
        for g in gates.values():
            g.set()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        st = lim.stats()
        assert st.busy == st.queued == 0
        assert st.submitted == len(tasks) == st.completed + st.failed + st.cancelled
        assert entered == sorted(entered)  # FIFO: no one overtook an earlier waiter

    run(main())


@pytest.mark.parametrize("bad", [0, -1])
def test_invalid_limits_raise_value_error_naming_the_parameter(bad):
    with pytest.raises(ValueError, match="limit"):
        ResizableLimiter(bad)
    lim = ResizableLimiter(1)
    with pytest.raises(ValueError, match="n must"):
        lim.resize(bad)
    with pytest.raises(TypeError):
        lim.resize(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_limit"):
        AdaptiveLimiter(min_limit=bad)
    with pytest.raises(ValueError, match="max_limit"):
        AdaptiveLimiter(min_limit=4, max_limit=2)
    with pytest.raises(ValueError, match="initial_limit"):
        AdaptiveLimiter(max_limit=4, initial_limit=8)
    with pytest.raises(ValueError, match="unknown policy"):
        AdaptiveLimiter("no-such-policy")


def test_resize_from_another_thread_takes_effect_on_the_loop():
    async def main() -> None:
        lim = ResizableLimiter(1)
        gate = asyncio.Event()

        async def req() -> None:
            async with lim:
                await gate.wait()

        tasks = [asyncio.create_task(req()) for _ in range(3)]
        await until(lambda: lim.stats().queued == 2)
        t = threading.Thread(target=lim.resize, args=(3,))
        t.start()
        t.join()
        await until(lambda: lim.stats().busy == 3)
        gate.set()
        await asyncio.gather(*tasks)

    run(main())


def test_limit_setter_and_bounds_of_the_front_door():
    async def main() -> None:
        lim = AdaptiveLimiter(None, min_limit=2, max_limit=8, initial_limit=4)
        lim.limit = 6
        assert lim.limit == 6
        with pytest.raises(ValueError, match=r"\[min_limit, max_limit\]"):
            lim.resize(9)
        lim.set_bounds(2, 5)
        assert lim.limit == 5
        assert lim.controller is None  # no policy, no record: no control task

    run(main())


class Greedy(Policy):
    """Always asks for far more than any bound."""

    name = "greedy-test"

    def decide(self, obs: Observation) -> Decision:
        return Decision(obs.workers * 10 + 1000, "more")


def test_the_controller_is_a_task_on_the_loop_with_the_loop_clock():
    async def main() -> None:
        threads = threading.active_count()
        lim = AdaptiveLimiter(Greedy(), max_limit=16, interval=0.01, metrics=scripted())
        ctl = lim.controller
        assert ctl is not None and isinstance(ctl.clock, LoopClock)
        assert ctl.clock.now() == pytest.approx(asyncio.get_running_loop().time(), abs=0.5)
        await until(lambda: ctl.ticks >= 3)
        assert threading.active_count() == threads  # no controller thread
        assert lim.limit == 16 and ctl.errors == 0
        lim.close()
        await asyncio.sleep(0.02)
        ticks = ctl.ticks
        await asyncio.sleep(0.05)
        assert ctl.ticks == ticks  # stopped

    run(main())


def test_a_limiter_nobody_holds_is_collected_and_its_task_ends():
    async def main() -> None:
        lim = AdaptiveLimiter(FixedPolicy(4), interval=0.01, metrics=scripted())
        task = lim._task
        ref = weakref.ref(lim)
        del lim
        gc.collect()
        assert ref() is None
        assert task is not None
        await asyncio.wait_for(task, HANG)

    run(main())


# -- real requests to a local server ------------------------------------------------------
@pytest.fixture
def http() -> Any:
    pytest.importorskip("aiohttp")
    from adaptive_lab.bench import aio_server

    return aio_server


async def _get(session: Any, url: str) -> int:
    async with session.get(url + "/work") as r:
        await r.read()
        return int(r.status)


def test_cancellation_inside_a_request_releases_the_slot(http):
    import aiohttp

    async def main() -> None:
        srv = await http.start_server(http.ServerConfig(capacity=4, service_ms=10_000))
        fast = await http.start_server(http.ServerConfig(capacity=4, service_ms=1))
        lim = ResizableLimiter(1)
        async with aiohttp.ClientSession() as s:
            async def slow() -> None:
                async with lim:
                    await _get(s, srv.url)

            t = asyncio.create_task(slow())
            await until(lambda: srv.state.inside == 1)
            t.cancel()
            await asyncio.gather(t, return_exceptions=True)
            assert lim.stats().busy == 0 and lim.stats().cancelled == 1
            async with lim:  # the slot is free again
                assert await _get(s, fast.url) == 200
        await srv.close()
        await fast.close()
        assert lim.stats().completed == 1

    run(main())


def test_the_limit_never_exceeds_max_limit(http):
    import aiohttp

    async def main() -> None:
        srv = await http.start_server(http.ServerConfig(capacity=64, service_ms=2))
        seen = {"limit": 0, "busy": 0}
        for policy in (Greedy(), make_policy("aimd"), make_policy("vegas")):
            lim = AdaptiveLimiter(policy, max_limit=6, initial_limit=6, interval=0.005,
                                  metrics=scripted(), record=True)
            async with aiohttp.ClientSession() as s:
                async def client(lim: AdaptiveLimiter = lim) -> None:
                    for _ in range(40):
                        async with lim:
                            st = lim.stats()
                            seen["limit"] = max(seen["limit"], st.size)
                            seen["busy"] = max(seen["busy"], st.busy)
                            await _get(s, srv.url)

                await asyncio.gather(*(client() for _ in range(20)))
            lim.close()
            trace = lim.trace()
            assert trace is not None
            assert max(x["workers"] for x in trace.samples) <= 6
            assert max(x["busy"] for x in trace.samples) <= 6
        await srv.close()
        assert 0 < seen["limit"] <= 6 and 0 < seen["busy"] <= 6

    run(main())


def test_no_request_waits_forever_when_the_limit_shrinks(http):
    import aiohttp

    async def main() -> None:
        srv = await http.start_server(http.ServerConfig(capacity=64, service_ms=5))
        lim = ResizableLimiter(32)
        done = 0
        async with aiohttp.ClientSession() as s:
            async def req() -> None:
                nonlocal done
                async with lim:
                    await _get(s, srv.url)
                done += 1

            tasks = [asyncio.create_task(req()) for _ in range(200)]
            for n in (16, 1, 8, 1, 2):  # shrink (and grow a little) while they wait
                await until(lambda: lim.stats().completed >= done // 2)
                lim.resize(n)
                await asyncio.sleep(0.01)
            await asyncio.gather(*tasks)
        await srv.close()
        st = lim.stats()
        assert done == 200 and (st.completed, st.busy, st.queued) == (200, 0, 0)

    run(main())


def test_drops_by_exception_timeout_and_drop_on_503(http):
    import aiohttp

    async def main() -> None:
        shed = await http.start_server(http.ServerConfig(capacity=1, service_ms=300,
                                                         shed_queue=0))
        slow = await http.start_server(http.ServerConfig(capacity=1, service_ms=5_000))
        lim = ResizableLimiter(4)
        async with aiohttp.ClientSession() as s:
            async def held() -> int:
                return await _get(s, shed.url)

            first = asyncio.create_task(held())
            await until(lambda: shed.state.inside == 1)
            async with lim:  # the server is full: 503, marked by hand
                if await _get(s, shed.url) == 503:
                    lim.drop()
            with pytest.raises(asyncio.TimeoutError):
                async with lim:  # a client timeout inside the guarded block
                    async with s.get(slow.url + "/work",
                                     timeout=aiohttp.ClientTimeout(total=0.01)) as r:
                        await r.read()
            with pytest.raises(aiohttp.ClientError):
                async with lim:  # a connection error: nothing listens there
                    await _get(s, "http://127.0.0.1:1")
            assert await first == 200
        await shed.close()
        await slow.close()
        st = lim.stats()
        assert (st.completed, st.failed, st.busy) == (0, 3, 0)
        assert shed.state.shed >= 1

    run(main())


def _one_loop(http: Any, n: int, out: dict[int, Any], errors: list[BaseException]) -> None:
    import aiohttp

    async def main() -> None:
        srv = await http.start_server(http.ServerConfig(capacity=8, service_ms=1))
        lim = AdaptiveLimiter("aimd", initial_limit=2 + n, interval=0.01, metrics=scripted())
        async with aiohttp.ClientSession() as s:
            async def req() -> None:
                async with lim:
                    await _get(s, srv.url)

            await asyncio.gather(*(req() for _ in range(50 + 10 * n)))
        lim.close()
        await srv.close()
        out[n] = (lim.stats(), lim.controller)

    try:
        asyncio.run(main())
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_many_event_loops_in_one_process_share_nothing(http):
    out: dict[int, Any] = {}
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_one_loop, args=(http, n, out, errors))
               for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
    assert not errors, errors
    for n, (st, _) in out.items():
        assert (st.submitted, st.completed, st.busy) == (50 + 10 * n, 50 + 10 * n, 0)
    assert len({id(ctl) for _, ctl in out.values()}) == 4


def test_a_limiter_serves_one_running_loop_at_a_time():
    lim = AdaptiveLimiter(FixedPolicy(2), interval=0.01, metrics=scripted())
    started, release = threading.Event(), threading.Event()

    async def hold() -> None:
        async with lim:
            started.set()
            while not release.is_set():
                await asyncio.sleep(0.001)

    t = threading.Thread(target=asyncio.run, args=(hold(),))
    t.start()
    assert started.wait(HANG)

    async def other() -> None:
        async with lim:
            pass

    try:
        with pytest.raises(RuntimeError, match="different event loop"):
            asyncio.run(other())
    finally:
        release.set()
        t.join(HANG)
    asyncio.run(other())  # the first loop ended: a later one may use it
    assert lim.stats().completed == 2
    lim.close()


@pytest.mark.parametrize("name", available_policies())
def test_every_registered_policy_runs_on_the_limiter(http, name):
    import aiohttp

    async def main() -> AdaptiveLimiter:
        srv = await http.start_server(http.ServerConfig(capacity=8, service_ms=2))
        lim = AdaptiveLimiter(name, max_limit=64, interval=0.01, metrics=scripted(),
                              record=True)
        ctl = lim.controller
        assert ctl is not None
        async with aiohttp.ClientSession() as s:
            async def client() -> None:
                while ctl.ticks < 10:
                    async with lim:
                        await _get(s, srv.url)

            await asyncio.gather(*(client() for _ in range(40)))
        lim.close()
        await srv.close()
        return lim

    lim = run(main())
    ctl = lim.controller
    assert ctl is not None and ctl.errors == 0 and ctl.last_observation is not None
    assert 1 <= lim.limit <= 64
    assert ctl.last_observation.throughput > 0 or ctl.last_observation.completed > 0


def test_traces_load_and_replay_like_pool_traces(http, tmp_path):
    import aiohttp

    path = tmp_path / "limiter.jsonl"

    async def main() -> None:
        srv = await http.start_server(http.ServerConfig(capacity=8, service_ms=2))
        lim = AdaptiveLimiter("gradient2", interval=0.01, metrics=scripted(), record=path,
                              workload={"server": "test"})
        ctl = lim.controller
        assert ctl is not None
        async with aiohttp.ClientSession() as s:
            async def client() -> None:
                while ctl.ticks < 20:
                    async with lim:
                        await _get(s, srv.url)

            await asyncio.gather(*(client() for _ in range(30)))
        lim.close()
        await srv.close()

    run(main())
    trace = Trace.load(path)
    assert trace.header["workload"]["kind"] == "asyncio limiter"
    assert trace.header["policy"]["name"] == "gradient2"
    assert len(trace.samples) >= 20 and trace.samples[-1]["completed"] > 0
    for name in available_policies():
        out = replay(trace, make_policy(name))
        assert len(out.samples) == len(trace.samples)
        assert all(1 <= s["target"] <= 1000 for s in out.samples)


# -- the benchmark's arithmetic (synthetic runs, no server) ---------------------------------
def _synthetic(name: str, kind: str, rate: float, latency: float, limit: int,
               until: float, drop_every: int = 0) -> Any:
    np = pytest.importorskip("numpy")
    pytest.importorskip("aiohttp")
    from adaptive_lab.bench.aio import Run

    t = np.arange(0.0, until, 1.0 / rate)
    ok = np.ones(t.size, dtype=bool)
    if drop_every:
        ok[::drop_every] = False
    return Run(name, kind, t, np.full(t.size, latency), ok, [(0.0, limit)])


def test_benchmark_ratios_are_to_the_best_fixed_limit_and_the_latency_at_capacity():
    from adaptive_lab.bench.aio import Scenario, format_table, summarise

    sc = Scenario("s", "steady", 4, 10, 4.0, 1.0)
    runs = [_synthetic("Semaphore(2)", "fixed", 200, 0.010, 2, 4.0),
            _synthetic("Semaphore(4)", "fixed", 400, 0.010, 4, 4.0),
            _synthetic("Semaphore(8)", "fixed", 400, 0.020, 8, 4.0),
            _synthetic("AdaptiveLimiter()", "default", 380, 0.012, 5, 4.0, drop_every=10)]
    s = summarise(sc, runs)
    assert s["best_fixed"] in ("Semaphore(4)", "Semaphore(8)")
    assert s["at_capacity"] == "Semaphore(4)"
    row = {r["name"]: r for r in s["rows"]}["AdaptiveLimiter()"]
    assert row["throughput_ratio"] == pytest.approx(0.9 * 380 / 400, rel=0.02)
    assert row["latency_ratio"] == pytest.approx(1.2)
    assert row["dropped"] == pytest.approx(0.1, abs=0.01)
    assert "* AdaptiveLimiter()" in format_table({"scenarios": [s], "overhead": {
        "asyncio.Semaphore_ns": 1.0, "ResizableLimiter_ns": 1.5, "ResizableLimiter_ratio": 1.5,
        "AdaptiveLimiter()_ns": 1.6, "AdaptiveLimiter()_ratio": 1.6}})


def test_benchmark_recovery_after_the_capacity_halves():
    np = pytest.importorskip("numpy")
    from adaptive_lab.bench.aio import Run, Scenario, summarise

    sc = Scenario("h", "halved", 8, 10, 10.0, 1.0, change_at=4.0)
    fixed = _synthetic("Semaphore(4)", "fixed", 400, 0.010, 4, 10.0)
    # slow latency for 2 s after the change, then back within 1.5 x
    t = np.arange(0.0, 10.0, 1 / 400)
    lat = np.where((t >= 4.0) & (t < 6.0), 0.030, 0.011)
    adaptive = Run("AdaptiveLimiter()", "default", t, lat, np.ones(t.size, dtype=bool),
                   [(0.0, 8), (6.0, 4)])
    row = {r["name"]: r for r in summarise(sc, [fixed, adaptive])["rows"]}[
        "AdaptiveLimiter()"]
    assert row["recovery_throughput_s"] == 0.0
    # the first 1 s window (in 0.25 s steps) whose median is within: [5.75, 6.75)
    assert row["recovery_latency_s"] == pytest.approx(1.75)
