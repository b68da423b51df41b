"""Corpus generator, workload profiles and the reference scans."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import statistics
import time
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from adaptive_lab.bench.references import native_scan_command, plain_loop_scan, run_native_scan
from adaptive_lab.scanner.core import scan
from adaptive_lab.scanner.corpus import MANIFEST_NAME, corpus_sizes, make_corpus
from adaptive_lab.scanner.profiles import PROFILES, Profile, inspect_bytes, profile_by_name
from adaptive_lab.scanner.signatures import eicar_bytes


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_corpus_is_deterministic_and_seed_dependent(tmp_path):
    a = make_corpus(tmp_path / "a", files=150, dirs=12, seed=7)
    b = make_corpus(tmp_path / "b", files=150, dirs=12, seed=7)
    c = make_corpus(tmp_path / "c", files=150, dirs=12, seed=8)
    assert tree_digest(Path(a.root)) == tree_digest(Path(b.root))
    assert tree_digest(Path(a.root)) != tree_digest(Path(c.root))
    assert (a.files, a.bytes) == (b.files, b.bytes)


def test_corpus_counts_match_a_scan_and_the_manifest(tmp_path):
    info = make_corpus(tmp_path / "c", files=300, dirs=20, seed=1, eicar=5)
    summary = scan(info.root, signatures="builtin")
    assert summary.files == summary.files_seen == info.files == 300
    assert summary.bytes == info.bytes and summary.matched_files == 5
    leaves = {p.parent for p in Path(info.root).rglob("*.bin")}
    assert len(leaves) == 20 and all(len(p.relative_to(info.root).parts) == 2 for p in leaves)
    for rel in info.eicar:
        assert (Path(info.root) / rel).read_bytes() == eicar_bytes()
    manifest = (Path(info.root) / MANIFEST_NAME).read_text()
    assert '"seed": 1' in manifest and '"eicar_count": 5' in manifest


def test_corpus_reuse_and_refusal(tmp_path):
    info = make_corpus(tmp_path / "c", files=40, seed=2)
    assert make_corpus(tmp_path / "c", files=40, seed=2) == info  # reused as is
    with pytest.raises(ValueError, match="not empty"):
        make_corpus(tmp_path / "c", files=41, seed=2)
    with pytest.raises(ValueError, match="not empty"):
        make_corpus(tmp_path / "c", files=40, seed=2, reuse=False)
    shutil.rmtree(tmp_path / "c")


@pytest.mark.parametrize("kwargs, name", [
    ({"files": 0}, "files"), ({"dirs": 0}, "dirs"), ({"seed": -1}, "seed"),
    ({"eicar": 10, "files": 5}, "eicar"), ({"size_mix": "Z"}, "size_mix"),
])
def test_corpus_bad_arguments(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_corpus(tmp_path / "x", **{"files": 20, **kwargs})


def test_size_mix_a_looks_like_corpus_a_and_b_is_flat():
    sizes = corpus_sizes(9999, "A", seed=0)
    assert 6 * 1024 <= statistics.median(sizes) <= 10 * 1024
    assert sizes.count(1 << 20) == pytest.approx(100, abs=3)  # 1 % at 1 MiB
    assert max(sizes) == 1 << 20
    mean_mib_per_10k = sum(sizes) / len(sizes) * 10_000 / 2**20
    assert 240 <= mean_mib_per_10k <= 330  # corpus A is 282 MiB per 10,000 files
    assert set(corpus_sizes(100, "B")) == {4096}


def test_profiles_by_name_and_overrides():
    assert set(PROFILES) == {"local", "latency", "cpu", "mixed", "step"}
    p = profile_by_name("latency", latency_ms=20)
    assert p.latency_ms == 20 and p.name == "latency"
    assert profile_by_name("mixed").latency_ms > 0 and profile_by_name("mixed").cpu_work > 0
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(FrozenInstanceError):
        p.latency_ms = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="nope"):
        profile_by_name("nope")
    with pytest.raises(ValueError, match="latency_sec"):
        profile_by_name("latency", latency_sec=3)


@pytest.mark.parametrize("kwargs, name", [
    ({"latency_ms": -1}, "latency_ms"), ({"cpu_work": float("nan")}, "cpu_work"),
    ({"step_latency_ms": 5}, "step_after"), ({"name": ""}, "name"),
])
def test_profile_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Profile(**kwargs)


def test_step_profile_changes_latency_by_index_or_time():
    p = profile_by_name("step", latency_ms=1, step_latency_ms=20, step_after_files=100)
    assert [p.latency_at(i, 0.0) for i in (0, 99, 100, 5000)] == [1, 1, 20, 20]
    q = Profile("step", latency_ms=1, step_latency_ms=20, step_after_s=2.0)
    assert (q.latency_at(10**6, 1.9), q.latency_at(0, 2.0)) == (1, 20)


def test_latency_profile_sleeps_in_the_read_path(tmp_path):
    for i in range(10):
        (tmp_path / f"f{i}").write_bytes(b"x")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as ex:  # one worker: the sleeps add up
        summary = scan(tmp_path, ex, profile=profile_by_name("latency", latency_ms=30))
    assert summary.elapsed >= 10 * 0.030 * 0.9 and summary.profile == "latency"


def test_cpu_work_is_pure_python_and_scales():
    data = bytes(range(256)) * 4
    assert inspect_bytes(data, 1000) == inspect_bytes(data, 1000)
    assert inspect_bytes(b"", 10) == 0
    t0 = time.perf_counter()
    inspect_bytes(data, 2000)
    small = time.perf_counter() - t0
    t0 = time.perf_counter()
    inspect_bytes(data, 200_000)
    assert time.perf_counter() - t0 > small  # more work costs more time


def test_plain_loop_and_native_reference(tmp_path):
    info = make_corpus(tmp_path / "c", files=60, seed=4)
    plain = plain_loop_scan(info.root)
    assert plain["files"] == 60 and plain["bytes"] == info.bytes and plain["files_per_s"] > 0
    cmd = native_scan_command(info.root)
    assert cmd.startswith("find ") and "xargs -0 -n500 -P2 openssl dgst -sha256" in cmd
    if shutil.which("openssl") and shutil.which("xargs"):
        assert run_native_scan(info.root)["returncode"] == 0


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("xargs")),
                    reason="needs openssl and xargs")
def test_compare_scan_speed_reports_every_configuration(tmp_path):
    from adaptive_lab.bench.references import compare_scan_speed

    info = make_corpus(tmp_path / "c", files=40, seed=6)
    r = compare_scan_speed(info.root, repeats=1, workers=(1, 2))
    names = {"native", "plain_loop", "scan_default", "scan_tpe1", "scan_tpe2"}
    assert set(r["files_per_s"]) == names and r["files"] == 40
    assert r["ratio_to_native"]["native"] == 1.0
    assert all(len(v) == 1 and v[0] > 0 for v in r["runs"].values())
