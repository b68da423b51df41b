"""The benchmark's results document as text: a plain table, Markdown, HTML.

Pure functions of the document :func:`adaptive_lab.run_benchmark` returns (its
verdicts come from :mod:`adaptive_lab.bench.report`). :func:`format_table` is what
``adaptive-lab bench`` prints; :func:`format_markdown` is the README's summary;
:func:`write_html` writes a self-contained plotly report.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from adaptive_lab.bench.report import DEFAULT_POLICY, REPORT_CONFIG, row_named
from adaptive_lab.bench.stats import describe

__all__ = ["format_markdown", "format_matrix", "format_table", "write_html"]


# -- text --------------------------------------------------------------------------
def _f(x: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def format_table(doc: dict[str, Any]) -> str:
    """A plain-text table per profile, plus verdicts (what ``adaptive-lab bench`` prints)."""
    lines = []
    for p in doc["profiles"]:
        lines.append(f"== {p['name']} ({p['cache']}): {p['description']}")
        if not p["available"]:
            lines.append(f"   unavailable: {p['reason']}")
            lines.append("")
            continue
        head = (f"{'config':<24} {'files/s':>8} {'[min-max]':>15} {'ms/file':>7} "
                f"{'p50/p95 ms':>11} {'cpu%':>4} {'rssMB':>5} {'wrk':>7} {'gain%':>6} "
                f"{'xorac':>5} {'conv s':>6} {'wrk*s':>6} {'dir/m':>5}")
        lines += [head, "-" * len(head)]
        for r in p["configs"]:
            s = r["summary"]
            fps = s["files_per_s"]
            conv = s.get("converge_s")
            lines.append(
                f"{r['name']:<24} {_f(fps['median']):>8} "
                f"{_f(fps['min']) + '-' + _f(fps['max']):>15} "
                f"{_f(s['ms_per_file']['median'], '{:.3f}'):>7} "
                f"{_f(s['task_p50_ms']['median'], '{:.1f}') + '/' + _f(s['task_p95_ms']['median'], '{:.1f}'):>11} "  # noqa: E501
                f"{_f(s['peak_cpu_percent']['median']):>4} {_f(s['peak_rss_mb']['median']):>5} "
                f"{_f(s['mean_workers']['median']) + '/' + _f(s['max_workers']['median']):>7} "
                f"{_f(s['gain_percent']['median'], '{:+.0f}'):>6} "
                f"{_f(s['ratio_to_oracle']['median'], '{:.2f}'):>5} "
                f"{(_f(conv['median'], '{:.1f}') if conv and conv['median'] is not None else ('never' if conv else '-')):>6} "  # noqa: E501
                f"{_f(s['worker_seconds']['median']):>6} "
                f"{_f(s['direction_changes_per_min']['median'], '{:.1f}'):>5}"
                + ("  (capped)" if r["capped_runs"] else "")
                + (f"  {r['failed_runs']} RUN(S) FAILED" if r.get("failed_runs") else
                   "" if r["all_accounted"] else "  FILES NOT ACCOUNTED"))
        o = p["oracle"]
        if o:
            lines.append(f"oracle: {o['config']} at {o['files_per_s']:.0f} files/s")
        if "step" in p:
            st = p["step"]
            lines.append(f"step at {st['step_at_s']:g} s; best fixed after the step: "
                         f"{st['best_fixed_after']} at {_f(st['best_fixed_after_files_per_s'])}"
                         f" files/s; converged = 90 % of that in a 0.5 s window")
        lines.append(p["report_claim"]["text"])
        if "native_targets" in p:
            lines.append("vs native tools: " + p["native_targets"]["text"])
        lines.append("")
    lines.append(format_matrix(doc))
    return "\n".join(lines)


def format_matrix(doc: dict[str, Any]) -> str:
    """Policy x profile: median ratio to the oracle (and convergence on the step)."""
    profs = [p for p in doc["profiles"] if p["available"]]
    names: list[str] = []
    for p in profs:
        for r in p["configs"]:
            if r["kind"] in ("report", "policy", "tpe_default", "baseline") \
                    and r["name"] not in names:
                names.append(r["name"])
    if not names:
        return ""
    head = f"{'ratio to oracle':<24} " + " ".join(f"{p['name'][:12]:>12}" for p in profs)
    lines = [head, "-" * len(head)]
    for n in names:
        cells = []
        for p in profs:
            r = row_named(p["configs"], n)
            v = r["summary"]["ratio_to_oracle"]["median"] if r else None
            c = r["summary"].get("converge_s") if r else None
            cell = _f(v, "{:.2f}")
            if c is not None:
                cell += f"/{_f(c['median'], '{:.1f}')}s" if c["median"] is not None else "/never"
            cells.append(f"{cell:>12}")
        lines.append(f"{n:<24} " + " ".join(cells))
    if any("step" in p for p in profs):
        lines.append("(step: ratio to the oracle / seconds to 90 % of the best fixed pool "
                     "after the step)")
    return "\n".join(lines)


# -- HTML --------------------------------------------------------------------------
def write_html(doc: dict[str, Any], path: str | Path) -> Path | None:
    """Write a self-contained HTML report; returns None (with a message on stderr)
    if plotly is not installed."""
    import sys

    try:
        import plotly.graph_objects as go
    except ImportError:
        print("plotly is not installed: skipping the HTML report "
              "(pip install plotly, or adaptive-lab[notebooks])", file=sys.stderr)
        return None
    parts = [f"<h1>adaptive-lab bench</h1><p>{html.escape(doc['created'])}, "
             f"{doc['host']['cores']} cores, {html.escape(doc['host']['platform'])}; "
             f"{html.escape(doc['shared_machine_note'])}</p>",
             "<h2>Verdicts</h2><ul>" + "".join(
                 f"<li><b>{html.escape(p['name'])}</b> ({p['cache']}): "
                 + (html.escape(p["report_claim"]["text"]) if p["available"]
                    else "unavailable: " + html.escape(str(p["reason"])))
                 + (f"<br>vs native tools: {html.escape(p['native_targets']['text'])}"
                    if "native_targets" in p else "") + "</li>"
                 for p in doc["profiles"]) + "</ul>",
             f"<h2>Ratio to the oracle</h2><pre>{html.escape(format_matrix(doc))}</pre>"]
    first = True
    for p in doc["profiles"]:
        if not p["available"]:
            continue
        rows = list(p["configs"])
        fps = [r["summary"]["files_per_s"] for r in rows]
        bar = go.Figure(go.Bar(
            x=[r["name"] for r in rows], y=[f["median"] for f in fps],
            error_y={"type": "data", "symmetric": False,
                     "array": [(f["max"] or 0) - (f["median"] or 0) for f in fps],
                     "arrayminus": [(f["median"] or 0) - (f["min"] or 0) for f in fps]},
            marker_color=[_colour(r["kind"]) for r in rows]))
        bar.update_layout(title=f"{p['name']} ({p['cache']}): files/s, median and min-max",
                          yaxis_title="files/s", height=420)
        lines = go.Figure()
        for r in rows:
            if r["kind"] not in ("report", "policy", "baseline", "tpe_default") \
                    and r["name"] != (p["oracle"] or {}).get("config"):
                continue
            tl = r["runs"][0].get("timeline") or {}
            if tl.get("t"):
                lines.add_trace(go.Scatter(x=tl["t"], y=tl["workers"], name=r["name"],
                                           mode="lines", line_shape="hv"))
        lines.update_layout(title=f"{p['name']}: pool size over time (first repetition)",
                            xaxis_title="s", yaxis_title="workers", height=420)
        figs = [bar, lines]
        if "step" in p:
            thr = go.Figure()
            for r in rows:
                if r["kind"] in ("report", "policy") or r["name"] == p["step"]["best_fixed_after"]:
                    tl = r["runs"][0].get("timeline") or {}
                    thr.add_trace(go.Scatter(x=tl.get("t", []), y=tl.get("files_per_s", []),
                                             name=r["name"], mode="lines"))
            thr.add_vline(x=p["step"]["step_at_s"], line_dash="dash")
            if p["step"]["target_files_per_s"]:
                thr.add_hline(y=p["step"]["target_files_per_s"], line_dash="dot",
                              annotation_text="90 % of the best fixed pool after the step")
            thr.update_layout(title="step: files/s over time (first repetition)",
                              xaxis_title="s", yaxis_title="files/s", height=420)
            figs.append(thr)
        for fig in figs:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
            first = False
    parts.append(f"<h2>All numbers</h2><pre>{html.escape(format_table(doc))}</pre>")
    body = "\n".join(parts)
    out = Path(path)
    out.write_text("<!doctype html><html><head><meta charset='utf-8'>"
                   "<title>adaptive-lab bench</title></head><body>"
                   f"{body}</body></html>\n", encoding="utf-8")
    return out


def _colour(kind: str) -> str:
    return {"baseline": "#7f7f7f", "tpe_default": "#8c564b", "fixed": "#1f77b4",
            "report": "#d62728", "policy": "#2ca02c", "reference": "#9467bd"}.get(kind, "#333")


def format_markdown(doc: dict[str, Any]) -> str:
    """A compact Markdown summary for a README: per profile the baseline, the TPE
    default, the oracle, the report's threshold policy and the default policy; then
    the policy matrix."""
    profs = [p for p in doc["profiles"] if p["available"]]
    key = ("tpe-default", REPORT_CONFIG, DEFAULT_POLICY)
    out = [f"| profile | baseline-4 | tpe-default | oracle | {REPORT_CONFIG} | "
           f"{DEFAULT_POLICY} | report's claim |", "|---|---|---|---|---|---|---|"]
    for p in profs:
        def cell(name: str, p: dict = p) -> str:
            r = row_named(p["configs"], name)
            if r is None:
                return "-"
            s = r["summary"]
            txt = _f(s["files_per_s"]["median"])
            if name != p["baseline"]["config"]:
                txt += f" ({_f(s['ratio_to_oracle']['median'], '{:.2f}')} x)"
            return txt
        o = p["oracle"] or {}
        sc = p["report_claim"]
        verdict = ("holds" if sc.get("holds") else
                   "vs baseline only" if sc.get("holds_vs_baseline") else
                   "vs TPE default only" if sc.get("holds_vs_tpe_default") else "no")
        g = sc.get("gain_vs_baseline_percent")
        verdict += f" ({_f(g, '{:+.0f}')} %)" if g is not None else ""
        out.append(f"| {p['name']} ({p['cache']}) | {cell(p['baseline']['config'])} | "
                   f"{cell(key[0])} | {_f(o.get('files_per_s'))} ({o.get('config', '-')}) | "
                   f"{cell(key[1])} | {cell(key[2])} | {verdict} |")
    for p in doc["profiles"]:
        if not p["available"]:
            out.append(f"| {p['name']} | unavailable: {p['reason']} | | | | | |")
    names = []
    for p in profs:
        for r in p["configs"]:
            if r["kind"] in ("report", "policy") and r["name"] not in names:
                names.append(r["name"])
    out += ["", "Ratio to the oracle (median; step: ratio / time to 90 % after the step; "
            "cost = worker-seconds, osc = direction changes per minute, medians over "
            "profiles):", "",
            "| policy | " + " | ".join(p["name"] for p in profs) + " | cost | osc |",
            "|---|" + "---|" * (len(profs) + 2)]
    for n in names:
        cells, cost, osc = [], [], []
        for p in profs:
            r = row_named(p["configs"], n)
            if r is None:
                cells.append("-")
                continue
            s = r["summary"]
            c = _f(s["ratio_to_oracle"]["median"], "{:.2f}")
            conv = s.get("converge_s")
            if conv is not None:
                c += " / " + (_f(conv["median"], "{:.1f} s") if conv["median"] is not None
                              else "never")
            cells.append(c)
            cost.append(s["worker_seconds"]["median"])
            osc.append(s["direction_changes_per_min"]["median"])
        out.append(f"| {n} | " + " | ".join(cells)
                   + f" | {_f(describe(cost)['median'])} | "
                     f"{_f(describe(osc)['median'], '{:.1f}')} |")
    return "\n".join(out)
