"""Prometheus export: a real endpoint on 127.0.0.1 scraped during a real scan, parsed by
prometheus_client's own parser; the Grafana dashboard queries only what is exported."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from adaptive_lab.control import registry  # noqa: E402
from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor  # noqa: E402
from adaptive_lab.executors.aio import ResizableLimiter  # noqa: E402
from adaptive_lab.integrations import prometheus as prom  # noqa: E402
from adaptive_lab.scanner.core import Scanner  # noqa: E402
from adaptive_lab.scanner.corpus import make_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
SUFFIXES = {"gauge": ("",), "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum")}


def _scrape(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(fams, family: str, sample: str | None = None, **labels: str) -> float:
    found = [s.value for s in fams[family].samples
             if (sample is None or s.name == sample)
             and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (family, labels, fams[family].samples)
    return found[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prom") / "corpus"
    make_corpus(root, files=3000, dirs=30, seed=3)
    return root


def test_a_scrape_during_a_real_scan_has_every_family_and_counters_grow(corpus):
    pool = AdaptiveThreadPoolExecutor(8, thread_name_prefix="prom-scan", policy="fixed",
                                      interval=0.05, sample_period=0.05)
    with prom.serve(0) as server, pool:
        assert server.addr == "127.0.0.1" and server.port > 0
        scanner = Scanner(corpus, pool, digest="sha256")
        assert prom.watch(scanner, "prom-scan") == "prom-scan"
        scrapes = []
        results = scanner.results()
        for i, _ in enumerate(results, 1):
            if i == 300:
                assert pool.controller.wait_ticks(pool.controller.ticks + 3, timeout=30)
                scrapes.append(_scrape(server.url))
                pool.resize(pool.size + 1, "manual: from the test")
            if i == 2000:
                scrapes.append(_scrape(server.url))
        first, second = scrapes
    registry.unregister(scanner)

    for fams in scrapes:
        for name, (kind, labels, help_text) in prom.FAMILIES.items():
            assert name in fams, name
            assert fams[name].type == kind, name
            assert fams[name].documentation == help_text, name
            for s in fams[name].samples:
                assert set(labels) <= set(s.labels), (name, s)
    # every family has samples for this pool or scan
    for name, (_kind, labels, _) in prom.FAMILIES.items():
        key = "scan" if "scan" in labels else "pool"
        if name == "adaptive_lab_decisions" or name == "adaptive_lab_scale_events":
            continue
        assert any(s.labels.get(key) == "prom-scan" for s in second[name].samples), name

    files = ("adaptive_lab_scan_files", "adaptive_lab_scan_files_total")
    assert _value(first, *files, scan="prom-scan", status="ok") == 300
    assert _value(second, *files, scan="prom-scan", status="ok") == 2000
    grow = [("adaptive_lab_scan_bytes", "adaptive_lab_scan_bytes_total", "scan"),
            ("adaptive_lab_tasks_completed", "adaptive_lab_tasks_completed_total", "pool"),
            ("adaptive_lab_tasks_submitted", "adaptive_lab_tasks_submitted_total", "pool"),
            ("adaptive_lab_task_duration_seconds", "adaptive_lab_task_duration_seconds_count",
             "pool")]
    for family, sample, key in grow:
        before = _value(first, family, sample, **{key: "prom-scan"})
        after = _value(second, family, sample, **{key: "prom-scan"})
        assert after > before > 0, family

    # the histogram is a histogram: cumulative, +Inf equals the count
    hist = "adaptive_lab_task_duration_seconds"
    buckets = [(float(s.labels["le"]), s.value) for s in second[hist].samples
               if s.name == hist + "_bucket" and s.labels["pool"] == "prom-scan"]
    assert [b for b, _ in buckets] == sorted(b for b, _ in buckets)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1] == (float("inf"), _value(second, hist, hist + "_count", pool="prom-scan"))

    # the controller's decisions: the target it set, holds by rule, the manual resize
    assert _value(first, "adaptive_lab_workers_target", pool="prom-scan") == 8
    assert _value(first, "adaptive_lab_workers_min", pool="prom-scan") == 1
    assert _value(first, "adaptive_lab_decisions", pool="prom-scan", rule="fixed") >= 1
    assert _value(second, "adaptive_lab_scale_events", pool="prom-scan", direction="up",
                  rule="manual") == 1


def test_register_into_an_existing_registry():
    reg = prometheus_client.CollectorRegistry()
    col = prom.register(reg)
    assert prom.register(reg) is col  # once per registry
    with AdaptiveThreadPoolExecutor(2, thread_name_prefix="prom-reg", policy=None) as pool:
        prom.watch(pool)
        list(pool.map(abs, range(100)))
        text = prometheus_client.generate_latest(reg).decode()
    registry.unregister(pool)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert _value(fams, "adaptive_lab_tasks_completed", pool="prom-reg") == 100
    assert _value(fams, "adaptive_lab_workers", pool="prom-reg") == 2
    # no policy, no controller: no target, bounds or decisions for this pool
    assert not [s for s in fams["adaptive_lab_workers_target"].samples
                if s.labels["pool"] == "prom-reg"]


def test_a_limiter_is_exported_in_the_pools_terms():
    lim = ResizableLimiter(3)
    prom.watch(lim, "prom-limiter")

    async def main() -> None:
        async def one(i: int) -> None:
            async with lim:
                await asyncio.sleep(0)
                if i % 10 == 0:
                    lim.drop()

        await asyncio.gather(*(one(i) for i in range(50)))

    asyncio.run(main())
    reg = prometheus_client.CollectorRegistry()
    prom.register(reg)
    fams = {f.name: f for f in text_string_to_metric_families(
        prometheus_client.generate_latest(reg).decode())}
    registry.unregister(lim)
    assert _value(fams, "adaptive_lab_workers", pool="prom-limiter") == 3
    assert _value(fams, "adaptive_lab_tasks_completed", pool="prom-limiter") == 45
    assert _value(fams, "adaptive_lab_tasks_failed", pool="prom-limiter") == 5
    assert _value(fams, "adaptive_lab_task_duration_seconds",
                  "adaptive_lab_task_duration_seconds_count", pool="prom-limiter") == 50


class _Broken:
    def stats(self):
        raise RuntimeError("no stats today")


def test_a_failing_target_does_not_fail_the_scrape():
    broken = _Broken()
    prom.watch(broken, "prom-broken")
    with AdaptiveThreadPoolExecutor(1, thread_name_prefix="prom-ok", policy=None) as pool:
        prom.watch(pool)
        reg = prometheus_client.CollectorRegistry()
        prom.register(reg)
        fams = {f.name: f for f in text_string_to_metric_families(
            prometheus_client.generate_latest(reg).decode())}
    registry.unregister(pool)
    registry.unregister(broken)
    pools = {s.labels["pool"] for s in fams["adaptive_lab_workers"].samples}
    assert "prom-ok" in pools and "prom-broken" not in pools


@pytest.mark.parametrize(("port", "addr"), [(-1, "127.0.0.1"), (65536, "127.0.0.1"),
                                            ("80", "127.0.0.1"), (True, "127.0.0.1"),
                                            (0, "")])
def test_serve_validates_its_arguments(port, addr):
    with pytest.raises(ValueError, match=r"port|addr"):
        prom.serve(port, addr)


def test_names_follow_prometheus_conventions():
    for name, (kind, labels, help_text) in prom.FAMILIES.items():
        assert re.fullmatch(r"adaptive_lab_[a-z_]+", name) and help_text, name
        assert not name.endswith("_total"), name  # added to counters' samples
        if (kind == "histogram" and "duration" in name) or "cpu" in name:
            assert name.endswith("_seconds"), name
        assert labels and all(re.fullmatch(r"[a-z]+", x) for x in labels), name
    for wanted in ("adaptive_lab_workers", "adaptive_lab_workers_target",
                   "adaptive_lab_workers_busy", "adaptive_lab_queue_depth",
                   "adaptive_lab_tasks_completed", "adaptive_lab_tasks_failed",
                   "adaptive_lab_task_duration_seconds", "adaptive_lab_scale_events",
                   "adaptive_lab_scan_files", "adaptive_lab_scan_bytes"):
        assert wanted in prom.FAMILIES, wanted
    assert prom.FAMILIES["adaptive_lab_scale_events"][1] == ("pool", "direction", "rule")


def _exprs(node) -> list[str]:
    if isinstance(node, dict):
        out = [v for k, v in node.items() if k in ("expr", "query") and isinstance(v, str)]
        for v in node.values():
            out += _exprs(v)
        return out
    if isinstance(node, list):
        return [e for v in node for e in _exprs(v)]
    return []


def test_the_dashboard_queries_only_exported_metrics():
    board = json.loads(DASHBOARD.read_text())
    exported = {name + suffix for name, (kind, _, _) in prom.FAMILIES.items()
                for suffix in SUFFIXES[kind]}
    exprs = _exprs(board)
    assert len(exprs) >= 8
    used = {m for e in exprs for m in re.findall(r"\badaptive_lab_[a-z_]+", e)}
    assert used and used <= exported, sorted(used - exported)
    for e in exprs:  # a typo'd metric of another prefix would chart nothing too
        names = set(re.findall(r"\b([a-z_:]+)(?=\{|\[)", e))
        assert names <= exported, (e, names - exported)
    titles = " ".join(p.get("title", "") for p in board["panels"]).lower()
    for what in ("size", "busy", "queue", "throughput", "latency", "decisions", "scale"):
        assert what in titles, what
    joined = " ".join(exprs)
    for needed in ("adaptive_lab_workers_target", "histogram_quantile",
                   "adaptive_lab_decisions_total", "adaptive_lab_scale_events_total"):
        assert needed in joined, needed


def test_the_scan_command_serves_metrics_while_it_runs(tmp_path):
    root = tmp_path / "c"
    make_corpus(root, files=300, dirs=6, seed=1)
    # two workers and 20 ms of emulated latency per file: the scan lasts seconds
    proc = subprocess.Popen(
        [sys.executable, "-m", "adaptive_lab", "scan", str(root), "--workers", "2",
         "--profile", "latency", "--latency-ms", "20", "--metrics-port", "0", "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.match(r"metrics: (http://127\.0\.0\.1:\d+/metrics)$", line.strip())
        assert m, line
        fams = _scrape(m.group(1))
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out)["files"] == 300
    assert _value(fams, "adaptive_lab_workers", pool="scan") == 2
    assert any(s.labels.get("scan") == "scan" for s in fams["adaptive_lab_scan_files"].samples)


def test_metrics_port_without_the_extra_says_what_to_install(monkeypatch, tmp_path, capsys):
    from adaptive_lab.cli.main import main

    monkeypatch.setitem(sys.modules, "adaptive_lab.integrations.prometheus", None)
    (tmp_path / "f").write_text("x")
    assert main(["scan", str(tmp_path), "--workers", "1", "--metrics-port", "0"]) == 2
    assert "adaptive-lab[metrics]" in capsys.readouterr().err


def test_demo_takes_the_metrics_port():
    from adaptive_lab.cli.main import build_parser

    args = build_parser().parse_args(["demo", "--metrics-port", "9109"])
    assert args.metrics_port == 9109 and args.metrics_addr == "127.0.0.1"
