"""``python -m bench [--quick] [--only NAME ...]``: run the benchmarks against local Kafka and write the report."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys

from bench import latency, model_throughput, pipeline_throughput, producer_throughput, slowest_batch
from bench.environment import bench_kafka, machine, output_dir
from bench.report import markdown, write
from common.settings import PROJECT_ROOT, get_settings

BENCHMARKS = ("model", "pipeline", "latency", "producer", "dashboard", "scaling", "slowest")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the benchmarks run, measures nothing")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--model", help="model spec (default: SENTISTREAM_MODEL)")
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
    model = args.model or settings.model
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
    with bench_kafka() as servers:
        if "model" in args.only:
            print("Raw model throughput", flush=True)
            run["model"] = model_throughput.measure(
                model, 64 if quick else 1024, settings.torch_threads, settings.batch_size, settings.model_quantize
            )
        best = run["model"]["best"]["posts_per_second"] if "model" in run else 80.0
        # >= 60 s of work at the model's own speed.
        posts = 200 if quick else int(best * 75)
        if "pipeline" in args.only:
            print("Pipeline throughput", flush=True)
            run["pipeline"] = pipeline_throughput.measure(
                servers,
                model,
                posts,
                1,
                settings.torch_threads,
                profile_to=out / "pipeline-profile.raw" if args.profile else None,
            )
        if "latency" in args.only:
            max_rate = run["pipeline"]["posts_per_second"] if "pipeline" in run else best
            rate = args.latency_rate or 0.5 * max_rate
            print(f"Latency at {rate:.0f} posts/s", flush=True)
            run["latency"] = latency.measure(servers, model, rate, 10 if quick else 60, 5 if quick else 100)
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
        if "scaling" in args.only:
            # The cores are shared: each of N workers gets cores / N torch threads (more would oversubscribe).
            cores = os.cpu_count() or 1
            print("Scaling: 1 and 2 workers", flush=True)
            run["scaling"] = [
                pipeline_throughput.measure(servers, model, posts, workers, max(1, cores // workers))
                for workers in (1, 2)
            ]
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


if __name__ == "__main__":
    sys.exit(main())
