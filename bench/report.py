"""Writing a benchmark run: JSON (all figures), a markdown table (for the README) and Plotly figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


MODE_TITLES = {
    "arrival_order": "one call per batch, in arrival order",
    "sorted_batches": "the pipeline's way (batches sorted by length)",
    "sorted_whole_list": "whole list sorted by length (ceiling)",
}


def summary_rows(run: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, met?) rows for whatever this run measured."""
    rows = []
    model = run.get("model")
    if model:
        for mode, what in MODE_TITLES.items():
            sizes = ", ".join(f"{size}: {rate:.0f}" for size, rate in model[mode].items())
            rows.append((f"Raw model, posts/s by forward-pass size: {what}", sizes, "-", "-"))
    pipeline = run.get("pipeline")
    if pipeline and model:
        rate = pipeline["posts_per_second"]
        arrival, best = model["best_arrival_order"], model["best"]
        ratio = rate / arrival["posts_per_second"]
        same_work = model["sorted_batches"].get(pipeline["model_batch_size"])
        rows.append(
            (
                "Pipeline throughput (1 worker) / best raw batch prediction (one call per batch)",
                f"{rate:.1f} posts/s = {ratio:.2f} of {arrival['posts_per_second']:.1f} (batch {arrival['batch_size']}); "
                + (
                    f"{rate / same_work:.2f} of the model alone scoring the pipeline's sorted batches; "
                    if same_work
                    else ""
                )
                + f"{rate / best['posts_per_second']:.2f} of the best raw figure of any kind "
                f"({best['posts_per_second']:.1f}, {best['mode'].replace('_', ' ')}, {best['batch_size']})",
                ">= 0.90",
                "yes" if ratio >= 0.9 else "no",
            )
        )
        profile = pipeline.get("profile")
        if profile:
            shares = "; ".join(f"{part} {share:.1%}" for part, share in profile["shares"].items())
            rows.append(
                (f"Where the pipeline worker's time goes (py-spy, {profile['samples']:,} samples)", shares, "-", "-")
            )
    latency = run.get("latency")
    if latency:
        e2e = latency["end_to_end_seconds"]
        rows.append(
            (
                f"End-to-end latency at {latency['rate']:.0f} posts/s (50% load), p50 / p95 / p99",
                f"{_ms(e2e['p50'])} / {_ms(e2e['p95'])} / {_ms(e2e['p99'])}",
                "p95 <= 500 ms",
                "yes" if e2e["p95"] <= 0.5 else "no",
            )
        )
        adhoc = latency.get("adhoc_round_trip_seconds")
        if adhoc:
            rows.append(
                (
                    "Ad-hoc round trip under that load, p50 / p95",
                    f"{_ms(adhoc['p50'])} / {_ms(adhoc['p95'])}",
                    "p95 <= 1 s",
                    "yes" if adhoc["p95"] <= 1.0 and not latency["adhoc_lost"] else "no",
                )
            )
    producer = run.get("producer")
    if producer:
        rows.append(
            (
                "Producer, small JSON posts to one broker",
                f"{producer['posts_per_second']:,.0f} posts/s, {producer['megabytes_per_second']:.1f} MB/s",
                ">= 100,000 posts/s",
                "yes" if producer["posts_per_second"] >= 100_000 else "no",
            )
        )
        pacing = producer.get("pacing")
        if pacing:
            switch = pacing["switch"]
            rows.append(
                (
                    f"Paced producer, posts/s sent over {pacing['seconds']:g} s at each target; rate changed while running",
                    ", ".join(f"{r['target']:g}: {r['posts_per_second']:.1f}" for r in pacing["runs"])
                    + f"; {switch['from']:g} -> {switch['to']:g}: {switch['before']:.1f} -> {switch['after']:.1f}",
                    "within 5 %",
                    "yes" if pacing["worst_error"] <= 0.05 else "no",
                )
            )
    dashboard = run.get("dashboard")
    if dashboard:
        rows.append(
            (
                f"Dashboard consumer, {dashboard['results']:,} results",
                f"{dashboard['results_per_second']:,.0f} results/s, peak RSS growth {dashboard['rss_growth_mib']:.0f} MiB, "
                f"snapshot {dashboard['snapshot_ms']['p95']:.0f} ms p95",
                "bounded memory, refresh <= 200 ms",
                "yes" if dashboard["bounded"] and dashboard["snapshot_ms"]["p95"] <= 200 else "no",
            )
        )
    scaling = run.get("scaling")
    if scaling:
        rows.append(
            (
                "Scaling, posts/s with 1 / 2 workers (torch threads each)",
                " / ".join(f"{s['posts_per_second']:.1f} ({s['torch_threads']})" for s in scaling),
                "-",
                "-",
            )
        )
    slowest = run.get("slowest")
    if slowest:
        rows.append(
            (
                f"Slowest batch: {slowest['batch_size']} posts of {slowest['max_text_chars']:,} characters, 1 torch thread",
                f"{slowest['slowest_seconds']:.1f} s ({slowest['slowest_kind']})",
                f"< max.poll.interval.ms / 3 ({slowest['max_poll_interval_s']:.0f} s)",
                "yes" if slowest["slowest_seconds"] * 3 < slowest["max_poll_interval_s"] else "no",
            )
        )
    return rows


def markdown(run: dict[str, Any]) -> str:
    machine = run["machine"]
    lines = [
        f"Measured {run['finished_at']} on {machine['cores']} cores, {machine['memory_gib']} GiB ({machine['cpu']}, "
        f"{machine['os']}, Python {machine['python']}), model `{run.get('model', {}).get('model', '?')}`"
        f"{' (quick run: tiny sizes, figures not meaningful)' if run['quick'] else ''}.",
        "",
        "| what | measured | target | met |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {what} | {measured} | {target} | {met} |" for what, measured, target, met in summary_rows(run)]
    return "\n".join(lines) + "\n"


def figures(run: dict[str, Any], out: Path) -> list[Path]:
    written = []
    model = run.get("model")
    if model:
        figure = go.Figure(
            [
                go.Bar(x=[str(size) for size in model[mode]], y=list(model[mode].values()), name=f"model: {what}")
                for mode, what in MODE_TITLES.items()
            ]
        )
        for label, entry in (("pipeline, 1 worker", run.get("pipeline")),):
            if entry:
                figure.add_hline(y=entry["posts_per_second"], line_dash="dash", annotation_text=label)
        figure.update_layout(
            title="Model throughput by forward-pass size",
            xaxis_title="posts per forward pass",
            yaxis_title="posts/s",
            barmode="group",
        )
        written.append(out / "throughput.html")
        figure.write_html(written[-1], include_plotlyjs="cdn")
    latency = run.get("latency")
    if latency:
        names = ["end to end", "produced to scored"] + (
            ["ad-hoc round trip"] if "adhoc_round_trip_seconds" in latency else []
        )
        keys = ["end_to_end_seconds", "produced_to_scored_seconds", "adhoc_round_trip_seconds"]
        figure = go.Figure(
            [
                go.Bar(
                    name=name, x=["p50", "p95", "p99"], y=[latency[key].get(p, 0) * 1000 for p in ("p50", "p95", "p99")]
                )
                for name, key in zip(names, keys, strict=True)
            ]
        )
        figure.update_layout(title=f"Latency at {latency['rate']:.0f} posts/s", yaxis_title="ms", barmode="group")
        written.append(out / "latency.html")
        figure.write_html(written[-1], include_plotlyjs="cdn")
    return written


def write(run: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(run, indent=2, default=str))
    (out / "results.md").write_text(markdown(run))
    for path in [out / "results.json", out / "results.md", *figures(run, out)]:
        print(f"wrote {path}")
