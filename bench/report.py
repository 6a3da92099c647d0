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


def _per_core(rate: float, run: dict[str, Any]) -> str:
    return f"{rate / (run['machine']['cores'] or 1):.1f} per core"


def _runtime_rows(runtime: str, figures: dict[str, Any], run: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    model = figures.get("model")
    if model:
        for mode, what in MODE_TITLES.items():
            sizes = ", ".join(f"{size}: {rate:.0f}" for size, rate in model[mode].items())
            rows.append((f"{runtime}: raw model, posts/s by forward-pass size: {what}", sizes, "-", "-"))
    pipeline = figures.get("pipeline")
    if pipeline and model:
        rate = pipeline["posts_per_second"]
        arrival, best = model["best_arrival_order"], model["best"]
        ratio = rate / arrival["posts_per_second"]
        same_work = model["sorted_batches"].get(pipeline["model_batch_size"])
        rows.append(
            (
                f"{runtime}: pipeline throughput (1 worker) / best raw batch prediction (one call per batch)",
                f"{rate:.1f} posts/s ({_per_core(rate, run)}) = {ratio:.2f} of {arrival['posts_per_second']:.1f} "
                f"(batch {arrival['batch_size']}); "
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
        profile = figures.get("profile")
        if profile:
            shares = "; ".join(f"{part} {share:.1%}" for part, share in profile["shares"].items())
            rows.append(
                (
                    f"{runtime}: where the pipeline worker's time goes (py-spy, {profile['samples']:,} samples, in a "
                    "run of its own)",
                    shares + f" ({profile['posts_per_second_while_sampled']:.1f} posts/s while sampled)",
                    "-",
                    "-",
                )
            )
    latency = figures.get("latency")
    if latency:
        e2e = latency["end_to_end_seconds"]
        rows.append(
            (
                f"{runtime}: end-to-end latency at {latency['rate']:.0f} posts/s (50% load), p50 / p95 / p99",
                f"{_ms(e2e['p50'])} / {_ms(e2e['p95'])} / {_ms(e2e['p99'])}",
                "p95 <= 250 ms",
                "yes" if e2e["p95"] <= 0.25 else "no",
            )
        )
        adhoc = latency.get("adhoc_round_trip_seconds")
        if adhoc:
            rows.append(
                (
                    f"{runtime}: ad-hoc round trip under that load, p50 / p95",
                    f"{_ms(adhoc['p50'])} / {_ms(adhoc['p95'])}",
                    "p95 <= 500 ms",
                    "yes" if adhoc["p95"] <= 0.5 and not latency["adhoc_lost"] else "no",
                )
            )
    scaling = figures.get("scaling")
    if scaling:
        rows.append(
            (
                f"{runtime}: scaling, posts/s with 1 / 2 workers (threads each)",
                " / ".join(f"{s['posts_per_second']:.1f} ({s['torch_threads']})" for s in scaling),
                "-",
                "-",
            )
        )
    return rows


def _layout(figures: dict[str, Any]) -> str:
    return f"{figures['workers']} x {figures['torch_threads']}"


def speedup(run: dict[str, Any], any_layout: bool = False) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """The fastest runtime's pipeline figures and torch's, when both were measured: with 1 worker each, or
    (``any_layout``) each runtime in its fastest layout of workers x threads (the scaling runs)."""
    pipelines = {}
    for runtime, figures in run.get("runtimes", {}).items():
        measured = ([figures["pipeline"]] if "pipeline" in figures else []) + (
            figures.get("scaling", []) if any_layout else []
        )
        if measured:
            pipelines[runtime] = max(measured, key=lambda pipeline: pipeline["posts_per_second"])
    if "torch" not in pipelines:
        return None
    best = max(pipelines, key=lambda runtime: pipelines[runtime]["posts_per_second"])
    return best, pipelines[best], pipelines["torch"]


def _speedup_rows(run: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for any_layout, what in ((False, "1 worker each"), (True, "each in its fastest layout, workers x threads")):
        fastest = speedup(run, any_layout)
        if fastest is None:
            continue
        best, figures, torch = fastest
        rate, torch_rate = figures["posts_per_second"], torch["posts_per_second"]
        rows.append(
            (
                f"Pipeline throughput, fastest runtime / torch fp32 ({what})",
                f"{best} ({_layout(figures)}): {rate:.1f} / torch ({_layout(torch)}): {torch_rate:.1f} posts/s = "
                f"{rate / torch_rate:.2f}x ({_per_core(rate, run)} / {_per_core(torch_rate, run)})",
                ">= 2.5x",
                "yes" if rate >= 2.5 * torch_rate else "no",
            )
        )
    return rows


def _physical_row(run: dict[str, Any]) -> tuple[str, str, str, str]:
    physical = run["physical"]
    per_core, threads = physical["per_core_ops_per_second"], physical["threads"]
    measured = []
    for runtime, figures in run.get("runtimes", {}).items():
        if "model" in figures:
            best = figures["model"]["best"]["posts_per_second"]
            kind = "int8" if runtime == "onnx-int8" else "fp32"
            measured.append(f"{runtime} {best:.0f} posts/s = {best / physical[f'{kind}_ceiling_posts_per_second']:.0%}")
    return (
        f"Physical estimate: FLOPs per post ({physical['mean_tokens']:.1f} tokens) against matrix-multiply throughput",
        f"{physical['flops_per_post'] / 1e6:.0f} MFLOP per post; per core fp32 {per_core['fp32'] / 1e9:.1f} GFLOP/s, "
        f"int8 {per_core['int8'] / 1e9:.1f} GOP/s; ceiling on {threads} cores fp32 "
        f"{physical['fp32_ceiling_posts_per_second']:.0f}, int8 {physical['int8_ceiling_posts_per_second']:.0f} posts/s"
        + (f"; best raw model: {', '.join(measured)} of its ceiling" if measured else ""),
        "-",
        "-",
    )


def summary_rows(run: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, met?) rows for whatever this run measured."""
    rows = []
    for runtime, why in run.get("skipped_runtimes", {}).items():
        rows.append((f"{runtime}: not measured", why, "-", "-"))
    for runtime, figures in run.get("runtimes", {}).items():
        rows += _runtime_rows(runtime, figures, run)
    rows += _speedup_rows(run)
    if "physical" in run:
        rows.append(_physical_row(run))
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


def model_name(run: dict[str, Any]) -> str:
    """The model's name as the torch runtime loads it (others add -int8), else the spec benchmarked."""
    names = [figures["model"]["model"] for figures in run.get("runtimes", {}).values() if "model" in figures]
    return names[0] if names else str(run["model_spec"])


def markdown(run: dict[str, Any]) -> str:
    machine = run["machine"]
    lines = [
        f"Measured {run['finished_at']} on {machine['cores']} cores, {machine['memory_gib']} GiB ({machine['cpu']}, "
        f"{machine['os']}, Python {machine['python']}), model `{model_name(run)}`"
        f"{' (quick run: tiny sizes, figures not meaningful)' if run['quick'] else ''}.",
        "",
        "| what | measured | target | met |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {what} | {measured} | {target} | {met} |" for what, measured, target, met in summary_rows(run)]
    return "\n".join(lines) + "\n"


def figures(run: dict[str, Any], out: Path) -> list[Path]:
    written = []
    measured = run.get("runtimes", {})
    modelled = {runtime: figures["model"] for runtime, figures in measured.items() if "model" in figures}
    if modelled:
        figure = go.Figure(
            [
                go.Bar(
                    x=[str(size) for size in model[mode]],
                    y=list(model[mode].values()),
                    name=f"{runtime}: {MODE_TITLES[mode]}",
                )
                for runtime, model in modelled.items()
                for mode in ("arrival_order", "sorted_batches")
            ]
        )
        for runtime, figures_ in measured.items():
            if "pipeline" in figures_:
                figure.add_hline(
                    y=figures_["pipeline"]["posts_per_second"],
                    line_dash="dash",
                    annotation_text=f"pipeline on {runtime}, 1 worker",
                )
        figure.update_layout(
            title="Model throughput by forward-pass size and runtime",
            xaxis_title="posts per forward pass",
            yaxis_title="posts/s",
            barmode="group",
        )
        written.append(out / "throughput.html")
        figure.write_html(written[-1], include_plotlyjs="cdn")
    latencies = {runtime: figures["latency"] for runtime, figures in measured.items() if "latency" in figures}
    if latencies:
        series = {
            "end to end, p50": ("end_to_end_seconds", "p50"),
            "end to end, p95": ("end_to_end_seconds", "p95"),
            "end to end, p99": ("end_to_end_seconds", "p99"),
            "ad-hoc round trip, p95": ("adhoc_round_trip_seconds", "p95"),
        }
        figure = go.Figure(
            [
                go.Bar(
                    name=name,
                    x=[f"{runtime} at {latency['rate']:.0f} posts/s" for runtime, latency in latencies.items()],
                    y=[latency.get(key, {}).get(cut, 0) * 1000 for latency in latencies.values()],
                )
                for name, (key, cut) in series.items()
            ]
        )
        figure.add_hline(y=250, line_dash="dash", annotation_text="target: end-to-end p95 <= 250 ms")
        figure.update_layout(
            title="Latency at 50 % of each runtime's measured maximum", yaxis_title="ms", barmode="group"
        )
        written.append(out / "latency.html")
        figure.write_html(written[-1], include_plotlyjs="cdn")
    return written


def write(run: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(run, indent=2, default=str))
    (out / "results.md").write_text(markdown(run))
    for path in [out / "results.json", out / "results.md", *figures(run, out)]:
        print(f"wrote {path}")
