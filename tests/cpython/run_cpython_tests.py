#!/usr/bin/env python3
"""Run CPython's own thread-pool tests against AdaptiveThreadPoolExecutor.

CPython's ``Lib/test/test_concurrent_futures`` (a package since 3.12, one module
before) tests ``ThreadPoolExecutor``. This script runs its thread-pool classes (from
test_thread_pool, test_shutdown, test_wait, test_as_completed and test_init) with
``concurrent.futures.ThreadPoolExecutor`` replaced by our pool, in two configurations:

* ``adaptive``: ``AdaptiveThreadPoolExecutor`` as it comes (the default policy drives
  it; ``max_workers`` is the policy's upper bound);
* ``fixed``: ``AdaptiveThreadPoolExecutor(policy=None)``, which must behave exactly as
  ``ThreadPoolExecutor``.

The replacement is made before the tests are imported (so the suite's
``ThreadPoolMixin.executor_type`` is ours) and is prepended to the ``python -c`` code
the shutdown tests run in child interpreters. Each test runs in its own subprocess
with a time limit (a hang is a failure); ``--jobs`` run at once. One line per test,
then ``N passed, N failed``; the exit status is 1 if any test failed. A test listed in
``KNOWN_DIFFERENCES`` may fail (it reads a private attribute whose meaning differs
when a policy sizes the pool, with the reason given there).

Where the interpreter's own ``test`` package lacks ``test_concurrent_futures`` (as
pyenv's 3.11 build), ``--suite-dir`` names a directory holding it, e.g. Debian's
``libpython3.11-testsuite`` (``/usr/lib/python3.11/test``, the default when present):
that directory is appended to the ``test`` package's path, so the suite comes from
there while ``test.support`` and the whole standard library stay the interpreter's own.

Usage (the interpreter must have the package installed)::

    python tests/cpython/run_cpython_tests.py [--config adaptive|fixed|both]
        [--jobs 2] [--timeout 90] [-k SUBSTRING] [--suite-dir DIR] [--list]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor as RunnerPool  # the runner's own

SUITE = "test.test_concurrent_futures"
SUBMODULES = ("test_thread_pool", "test_shutdown", "test_wait", "test_as_completed",
              "test_init")
CONFIGS = ("adaptive", "fixed")

#: Code run first in every test process (and child interpreter) of a configuration.
PRELUDES = {
    "adaptive": (
        "import concurrent.futures as _cf\n"
        "from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor as _P\n"
        "_cf.ThreadPoolExecutor = _cf.AdaptiveThreadPoolExecutor = _P\n"
    ),
    "fixed": (
        "import concurrent.futures as _cf\n"
        "from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor as _A\n"
        "class FixedThreadPoolExecutor(_A):\n"
        "    def __init__(self, *args, policy=None, **kwargs):\n"
        "        super().__init__(*args, policy=policy, **kwargs)\n"
        "_cf.ThreadPoolExecutor = _cf.FixedThreadPoolExecutor = FixedThreadPoolExecutor\n"
    ),
}

#: (configuration, "Class.test_method") -> why the test may fail there. Only tests
#: that read private attributes (``_max_workers``, ``_threads``) whose meaning differs
#: when a policy sizes the pool.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("adaptive", "ThreadPoolExecutorTest.test_default_workers"):
        "reads _max_workers, which is the pool's current size: with a policy the pool "
        "starts at the core count and max_workers (default 512 here) is the policy's "
        "upper bound, not ThreadPoolExecutor's min(32, cores + 4)",
    ("adaptive", "ThreadPoolExecutorTest.test_saturation"):
        "compares len(_threads) with _max_workers after queueing 60 blocked tasks: "
        "_max_workers is the current size, which starts at the core count and which "
        "the policy raises while the test reads the two",
    ("adaptive", "ThreadPoolShutdownTest.test_threads_terminate"):
        "expects len(_threads) == 3 right after submitting 3 blocked tasks to a pool "
        "of max_workers=5; with a policy the pool starts at the core count (2 here) "
        "and grows only when the policy decides. When the assertion fails the 3 tasks "
        "stay blocked, so the suite's tearDown (shutdown(wait=True)) waits for them "
        "forever: it shows as a hang",
}
KNOWN_TIMEOUT = 10.0  # seconds a known difference may run (its failure may be a hang)


def _suite_path_code(suite_dir: str | None) -> str:
    """Code that makes ``test.test_concurrent_futures`` importable from ``suite_dir``."""
    if not suite_dir:
        return ""
    return (
        "import sys as _s, types as _ty\n"
        "try:\n"
        "    import test as _t\n"
        "except ImportError:\n"
        "    _t = _s.modules['test'] = _ty.ModuleType('test'); _t.__path__ = []\n"
        f"_t.__path__.append({suite_dir!r})\n"
    )


def _default_suite_dir() -> str | None:
    try:
        importlib.import_module(SUITE)
        return None
    except ImportError:
        pass
    d = f"/usr/lib/python{sys.version_info.major}.{sys.version_info.minor}/test"
    found = os.path.exists(os.path.join(d, "test_concurrent_futures.py")) or \
        os.path.isdir(os.path.join(d, "test_concurrent_futures"))
    return d if found else None


def _thread_pool_classes() -> Iterator[type]:
    suite = importlib.import_module(SUITE)
    modules = ([importlib.import_module(f"{SUITE}.{m}") for m in SUBMODULES]
               if hasattr(suite, "__path__") else [suite])
    for mod in modules:
        for name in sorted(vars(mod)):
            obj = getattr(mod, name)
            if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                    and name.startswith("ThreadPool") and obj.__module__ == mod.__name__):
                yield obj


def list_tests() -> list[str]:
    loader = unittest.TestLoader()
    return [f"{cls.__module__}.{cls.__name__}.{m}" for cls in _thread_pool_classes()
            for m in loader.getTestCaseNames(cls)]


def short(test_id: str) -> str:
    """``Class.test_method`` (the same in the package and the single-module suite)."""
    return ".".join(test_id.rsplit(".", 2)[-2:])


# -- one test, in its own process ------------------------------------------------------
def run_one(test_id: str, config: str, suite_dir: str | None) -> int:
    prelude = _suite_path_code(suite_dir) + PRELUDES[config]
    exec(prelude, {})  # replace concurrent.futures.ThreadPoolExecutor before the suite
    from test.support import script_helper

    def with_prelude(run):  # child interpreters run `python -c CODE`: patch them too
        def wrapper(*args, **kwargs):
            args = list(args)
            if "-c" in args:
                i = args.index("-c") + 1
                args[i] = prelude + args[i]
            return run(*args, **kwargs)
        return wrapper

    for name in ("assert_python_ok", "assert_python_failure"):
        setattr(script_helper, name, with_prelude(getattr(script_helper, name)))
    suite = unittest.defaultTestLoader.loadTestsFromName(test_id)
    for mod in list(sys.modules.values()):  # names the suite imported before the patch
        if getattr(mod, "__name__", "").startswith(SUITE):
            for name in ("assert_python_ok", "assert_python_failure"):
                if hasattr(mod, name):
                    setattr(mod, name, getattr(script_helper, name))
    from adaptive_lab.executors.thread import ResizableThreadPoolExecutor

    mixins = [m.ThreadPoolMixin for m in list(sys.modules.values())
              if getattr(m, "__name__", "").startswith(SUITE) and hasattr(m, "ThreadPoolMixin")]
    if not mixins or not all(issubclass(m.executor_type, ResizableThreadPoolExecutor)
                             for m in mixins):
        print("the suite's ThreadPoolMixin does not use our pool", file=sys.stderr)
        return 3
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
    status = ("skip" if result.skipped and result.wasSuccessful() else
              "pass" if result.wasSuccessful() else "fail")
    # (on a line of its own: the suite's tearDown prints timings without a newline)
    print("\nRESULT " + json.dumps({"status": status, "run": result.testsRun}), flush=True)
    return 0 if result.wasSuccessful() else 1


def _spawn(test_id: str, config: str, suite_dir: str | None, timeout: float
           ) -> tuple[str, float, str]:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", test_id, "--config", config]
    if suite_dir:
        cmd += ["--suite-dir", suite_dir]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)  # its own group: a hang is killed whole
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return "hang", time.monotonic() - t0, err
    status = "fail"
    for line in out.splitlines():
        if line.startswith("RESULT "):
            status = json.loads(line[7:])["status"]
    if p.returncode != 0:
        status = "fail"
    return status, time.monotonic() - t0, err


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=(*CONFIGS, "both"), default="both")
    ap.add_argument("--jobs", type=int, default=2, help="tests at once (2)")
    ap.add_argument("--timeout", type=float, default=90.0,
                    help="seconds per test before it counts as a hang (90)")
    ap.add_argument("-k", dest="pattern", default=None, help="only tests whose id has this")
    ap.add_argument("--suite-dir", default=None,
                    help="directory holding test_concurrent_futures when the interpreter's "
                         "test package lacks it (default: Debian's, if installed)")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--verbose", action="store_true", help="print the output of failures")
    args = ap.parse_args(argv)
    if args.one:
        return run_one(args.one, args.config, args.suite_dir)
    if args.jobs < 1 or args.timeout <= 0:
        ap.error("--jobs must be >= 1 and --timeout > 0")
    suite_dir = args.suite_dir or _default_suite_dir()
    exec(_suite_path_code(suite_dir), {})
    try:
        tests = list_tests()
    except ImportError as exc:
        print(f"cannot import {SUITE} ({exc}); install the interpreter's test suite or "
              f"pass --suite-dir", file=sys.stderr)
        return 2
    if args.pattern:
        tests = [t for t in tests if args.pattern in t]
    if not tests:
        print("no test selected", file=sys.stderr)
        return 2
    configs = CONFIGS if args.config == "both" else (args.config,)
    jobs = [(c, t) for c in configs for t in tests]
    if args.list:
        for c, t in jobs:
            print(f"[{c}] {t}")
        return 0
    print(f"Python {sys.version.split()[0]}: {len(tests)} thread-pool tests of {SUITE}"
          f"{' from ' + suite_dir if suite_dir else ''}, configurations "
          f"{', '.join(configs)}, {args.jobs} at a time", flush=True)
    counts = {"pass": 0, "fail": 0, "skip": 0, "known": 0}
    lock = threading.Lock()

    def one(job: tuple[str, str]) -> None:
        config, test_id = job
        why = KNOWN_DIFFERENCES.get((config, short(test_id)))
        limit = min(args.timeout, KNOWN_TIMEOUT) if why else args.timeout
        status, secs, err = _spawn(test_id, config, suite_dir, limit)
        label = {"pass": "PASS", "skip": "SKIP", "fail": "FAIL", "hang": "HANG"}[status]
        if why and status in ("fail", "hang"):
            label, status = "KNOWN", "known"
        elif status == "hang":
            status = "fail"
        with lock:
            counts[status] += 1
            note = f"  ({why})" if label == "KNOWN" else ""
            print(f"{label:5} [{config}] {short(test_id)}  {secs:.1f}s{note}", flush=True)
            if label in ("FAIL", "HANG") and args.verbose:
                print(err[-4000:], flush=True)

    with RunnerPool(max_workers=args.jobs) as pool:
        list(pool.map(one, jobs))
    print(f"{counts['skip']} skipped, {counts['known']} known differences failed "
          f"as documented (neither is counted below)")
    print(f"{counts['pass']} passed, {counts['fail']} failed")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
