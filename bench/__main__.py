"""``python -m bench [--quick] [--only NAME ...] [--runtimes NAME ...]``: run the benchmarks against local Kafka and
write the report.

The model's benchmarks (raw model, pipeline, latency, scaling) run once per runtime the model can run on: torch,
and each ONNX runtime whose export passed its check (``sentiment_model.runtimes``); the others are listed with the
reason they were left out.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
from pathlib import Path

from bench import latency, model_throughput, physical, pipeline_throughput, producer_throughput, slowest_batch
from bench.environment import bench_kafka, machine, output_dir
from bench.report import markdown, write
from common.settings import PROJECT_ROOT, get_settings
from sentiment_model import registry, runtimes

BENCHMARKS = ("model", "pipeline", "latency", "producer", "dashboard", "scaling", "slowest", "physical")


def model_to_measure(spec: str, models_dir: Path) -> str:
    """What a worker would load for ``spec``: ``auto`` and model names become the built file."""
    model = registry.resolve(spec, models_dir)
    if model is None:
        raise LookupError(f"model {spec!r} is not built yet in {models_dir} (`make model` builds the offline models)")
    return model


def runnable(model: str, asked: list[str], models_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The runtimes of ``asked`` that ``model`` can run on, and why each other one cannot."""
    resolved = registry.resolve(model, models_dir)
    chosen, skipped = [], {}
    for runtime in asked:
        if runtime == runtimes.TORCH:
            chosen.append(runtime)
        elif resolved is None or not resolved.endswith(".pt"):
            skipped[runtime] = f"{model} is no built .pt model"
        elif (choice := runtimes.choose(runtime, Path(resolved))).runtime != runtime:
            skipped[runtime] = choice.why
        else:
            chosen.append(runtime)
    return chosen, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the benchmarks run, measures nothing")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--model", help="model spec (default: SENTISTREAM_MODEL)")
    parser.add_argument(
        "--runtimes",
        nargs="+",
        choices=runtimes.RUNTIMES,
        default=list(runtimes.RUNTIMES),
        help="the runtimes to measure the model on (default: every one it can run on)",
    )
    parser.add_argument(
        "--latency-rate", type=float, help="posts/s of the latency run (default: 50%% of the measured maximum)"
    )
    parser.add_argument("--out", default=str(PROJECT_ROOT / "docs" / "benchmarks"))
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the pipeline worker with py-spy during the throughput run (needs root or ptrace rights)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    try:
        model = model_to_measure(args.model or settings.model, settings.models_dir)
    except LookupError as exc:
        parser.error(str(exc))
    quick = args.quick
    out = output_dir(args.out)
    run: dict[str, object] = {
        "machine": machine(),
        "quick": quick,
        "model_spec": model,
        "batch_size": settings.batch_size,
        "model_batch_size": settings.model_batch_size,
        "batch_max_wait_ms": settings.batch_max_wait_ms,
    }
    measured, run["skipped_runtimes"] = runnable(model, args.runtimes, settings.models_dir)
    for runtime, why in run["skipped_runtimes"].items():
        print(f"Not measuring {runtime}: {why}", flush=True)
    if "physical" in args.only:
        print("Physical estimate: FLOPs per post, matrix-multiply throughput", flush=True)
        run["physical"] = physical.measure(
            model, model_throughput.sample_texts(64 if quick else 1024), settings.worker_threads()
        )
    run["runtimes"] = {}
    with bench_kafka() as servers:
        for runtime in measured:
            run["runtimes"][runtime] = measure_runtime(servers, model, runtime, args, out)
        if "producer" in args.only:
            print("Producer throughput", flush=True)
            run["producer"] = {
                **producer_throughput.measure(servers, 5_000 if quick else 500_000),
                "pacing": producer_throughput.pacing(servers, (200, 2000), 1 if quick else 10),
            }
        if "dashboard" in args.only:
            from bench import dashboard_ingest

            print("Dashboard consumer", flush=True)
            run["dashboard"] = dashboard_ingest.measure(servers, 20_000 if quick else 1_000_000)
    if "slowest" in args.only:
        print("Slowest possible batch", flush=True)
        run["slowest"] = {
            **slowest_batch.measure(
                model,
                8 if quick else settings.batch_size,
                settings.model_batch_size,
                settings.max_text_chars,
                rounds=1 if quick else 2,
            ),
            "max_poll_interval_s": settings.max_poll_interval_ms / 1000,
        }
    run["finished_at"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    write(run, out)
    print(markdown(run))
    return 0


def measure_runtime(servers: str, model: str, runtime: str, args: argparse.Namespace, out: Path) -> dict[str, object]:
    """The model's benchmarks on one runtime: raw model, pipeline (1 worker), latency at half its rate, scaling."""
    settings = get_settings()
    quick = args.quick
    figures: dict[str, object] = {}
    if "model" in args.only:
        print(f"Raw model throughput on {runtime}", flush=True)
        figures["model"] = model_throughput.measure(
            model,
            64 if quick else 1024,
            settings.worker_threads(),
            settings.batch_size,
            settings.model_quantize,
            runtime=runtime,
        )
    best = figures["model"]["best"]["posts_per_second"] if "model" in figures else 80.0
    # >= 60 s of work at the model's own speed.
    posts = 200 if quick else int(best * 75)
    cores = os.cpu_count() or 1
    if "pipeline" in args.only:
        print(f"Pipeline throughput on {runtime}", flush=True)
        figures["pipeline"] = pipeline_throughput.measure(
            servers, model, posts, 1, settings.worker_threads(), runtime=runtime
        )
        if args.profile:
            # A run of its own: the profiler takes CPU from the worker it samples (on 2 cores, 5-17 % of its
            # throughput), so a profiled run's rate is no measure of the pipeline.
            print(f"Profile of the pipeline worker on {runtime}", flush=True)
            profiled = pipeline_throughput.measure(
                servers,
                model,
                posts,
                1,
                settings.worker_threads(),
                profile_to=out / f"pipeline-profile-{runtime}.raw",
                runtime=runtime,
            )
            if profiled.get("profile"):  # None when py-spy could not sample (not installed, no ptrace rights)
                figures["profile"] = {
                    **profiled["profile"],
                    "posts_per_second_while_sampled": profiled["posts_per_second"],
                }
    if "latency" in args.only:
        max_rate = figures["pipeline"]["posts_per_second"] if "pipeline" in figures else best
        rate = args.latency_rate or 0.5 * max_rate
        print(f"Latency on {runtime} at {rate:.0f} posts/s", flush=True)
        figures["latency"] = latency.measure(
            servers, model, rate, 10 if quick else 60, 5 if quick else 100, runtime=runtime
        )
    if "scaling" in args.only and cores > 1:
        # The cores are shared: one worker per core, one thread each (more would oversubscribe), against the
        # pipeline run above (one worker, SENTISTREAM_TORCH_THREADS threads).
        print(f"Scaling on {runtime}: {cores} workers x 1 thread", flush=True)
        figures["scaling"] = [
            *([figures["pipeline"]] if "pipeline" in figures else []),
            pipeline_throughput.measure(servers, model, posts, cores, 1, runtime=runtime),
        ]
    return figures


if __name__ == "__main__":
    sys.exit(main())
