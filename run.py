"""``make run``: the whole product on this machine, stopped by one Ctrl-C.

Starts local Kafka (unless SENTISTREAM_BOOTSTRAP_SERVERS names a cluster), then at once the pipeline, the
Streamlit app (whose producer starts at once) or, with ``--no-app``, a producer process, and, when the
offline models are not built yet, their build in the background (the quick model first, then the full
one). Until a model is there the pipeline waits and posts queue in Kafka; it starts scoring the moment the
first model is ready and switches to the better one when that is. Everything it started, it stops, in an
order that leaves nothing half done: first the producer (which flushes what it sent), then the build
(the next run starts it again), then the pipeline once it has scored every queued post (a second Ctrl-C
skips that wait), then Kafka.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common.logs import configure_logging
from common.settings import PROJECT_ROOT, Settings, get_settings
from common.topics import KafkaUnreachable, ensure_topics, group_lag
from kafka_local.__main__ import DEFAULT_HOME, DEFAULT_LIBS
from kafka_local.cluster import KafkaLauncherError, LocalCluster
from sentiment_model import registry

logger = logging.getLogger("run")

STOP_TIMEOUT_S = 30.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python run.py", description=__doc__)
    parser.add_argument("--nodes", type=int, choices=(1, 3), default=1, help="local Kafka nodes")
    parser.add_argument("--workers", type=int, default=1, help="pipeline classifier processes")
    parser.add_argument("--rate", type=float, help="producer posts/s (default: SENTISTREAM_PRODUCER_RATE)")
    parser.add_argument("--port", type=int, default=8501, help="Streamlit port")
    parser.add_argument("--no-app", action="store_true", help="run a producer process instead of the app")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds Ctrl-C waits for the pipeline to score the posts still queued (default: 60)",
    )
    return parser


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    # A session of its own: the terminal's Ctrl-C reaches only this script, which stops the children in order.
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True)


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not stop in %.0f s; killing it", " ".join(child.args[1:4]), STOP_TIMEOUT_S)
        child.kill()
        child.wait()


def _drain(settings: Settings, pipeline: subprocess.Popen, timeout: float, hurry: Callable[[], bool]) -> None:
    """Wait until the pipeline has committed every raw post, so none waits for the next run."""
    deadline = time.monotonic() + timeout
    announced = False
    while pipeline.poll() is None and not hurry() and time.monotonic() < deadline:
        queued = group_lag(settings, settings.consumer_group, settings.topic_posts)
        if queued == 0:
            return
        if queued is not None and not announced:
            logger.info("Letting the pipeline score the %d posts still queued (Ctrl-C again to stop at once)", queued)
            announced = True
        time.sleep(0.5)
    if not hurry() and pipeline.poll() is None:
        logger.warning("The pipeline had not caught up after %.0f s; the rest is scored on the next run", timeout)


def _needs_build(settings: Settings) -> bool:
    """The configured model is the product's own (``auto`` or one of its names) and some of them are not built."""
    spec = settings.model
    ours = spec == registry.AUTO or spec in registry.PROFILE_OF or Path(spec).stem in registry.PROFILE_OF
    missing = [name for name in registry.PROFILE_OF if registry.resolve(name, settings.models_dir) is None]
    return ours and bool(missing)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = _parser().parse_args(argv)
    settings = get_settings()
    rate = settings.producer_rate if args.rate is None else args.rate
    cluster = LocalCluster(DEFAULT_HOME, DEFAULT_LIBS) if settings.uses_local_kafka else None
    pipeline: subprocess.Popen | None = None
    source: subprocess.Popen | None = None  # the app (with its producer) or the producer process
    build: subprocess.Popen | None = None
    stop_requests = 0

    def request_stop(*_: object) -> None:
        nonlocal stop_requests
        stop_requests += 1

    # SIGHUP too: the children do not share our terminal session, so a closed terminal reaches only us.
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, request_stop)
    try:
        if cluster:
            if cluster.running_nodes():
                logger.info("Local Kafka is already running; it will be left running")
                cluster = None
            else:
                spec = cluster.start(nodes=args.nodes)
                logger.info("Local Kafka serving at %s", spec.bootstrap_servers)
        ensure_topics(settings)
        env = {**os.environ, "SENTISTREAM_PRODUCER_RATE": str(rate)}
        pipeline = _start([sys.executable, "-m", "pipeline", "--workers", str(args.workers)], env)
        if _needs_build(settings):
            logger.info(
                "Building the offline models in %s in the background: the quick one first (minutes), then the "
                "full one (about 20 minutes on 2 cores); the pipeline starts scoring with the first one ready",
                settings.models_dir,
            )
            build = _start([sys.executable, "-m", "sentiment_model.build"], env)
        if args.no_app:
            source = _start([sys.executable, "-m", "producer", "--rate", str(rate)], env)
        else:
            env["SENTISTREAM_PRODUCER_AUTOSTART"] = "true"
            source = _start([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(args.port)], env)
            print(f"\n  sentistream is up: open http://127.0.0.1:{args.port}  (Ctrl-C stops everything)\n", flush=True)
        while not stop_requests:
            for child in (pipeline, source):
                if child.poll() is not None:
                    logger.error("%s exited with %d; stopping", " ".join(child.args[1:4]), child.returncode)
                    stop_requests += 1
            if build is not None and build.poll() is not None:
                if build.returncode == 0:
                    logger.info("The models are built (cards in %s)", settings.models_dir)
                elif build.returncode == registry.EXIT_BUSY:
                    logger.info(
                        "Another process is building the models already; the pipeline serves each one when it is ready"
                    )
                else:
                    logger.error(
                        "The model build failed (exit %d); its log is in %s", build.returncode, settings.models_dir
                    )
                build = None
            time.sleep(0.5)
    except (KafkaLauncherError, KafkaUnreachable, subprocess.CalledProcessError) as exc:
        logger.error("%s", exc)
        return 2
    finally:
        if source is not None:
            _stop(source)
        if build is not None:
            _stop(build)
            logger.info("Stopped the model build; the next run starts it again")
        if pipeline is not None:
            if source is not None and registry.resolve(settings.model, settings.models_dir) is not None:
                _drain(settings, pipeline, args.drain_timeout, hurry=lambda: stop_requests > 1)
            _stop(pipeline)
        if cluster:
            cluster.stop()
            logger.info("Stopped local Kafka (data kept in %s)", DEFAULT_HOME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
