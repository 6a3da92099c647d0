"""``make run``: the whole product on this machine, stopped by one Ctrl-C.

Starts local Kafka (unless SENTISTREAM_BOOTSTRAP_SERVERS names a cluster), builds the offline model
if it is the configured one and missing, then runs the pipeline, and the Streamlit app (whose
producer starts at once) or, with ``--no-app``, a producer process. Everything it started, it stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common.settings import PROJECT_ROOT, get_settings
from common.topics import KafkaUnreachable, ensure_topics
from kafka_local.__main__ import DEFAULT_HOME, DEFAULT_LIBS
from kafka_local.cluster import KafkaLauncherError, LocalCluster

logger = logging.getLogger("run")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python run.py", description=__doc__)
    parser.add_argument("--nodes", type=int, choices=(1, 3), default=1, help="local Kafka nodes")
    parser.add_argument("--workers", type=int, default=1, help="pipeline classifier processes")
    parser.add_argument("--rate", type=float, help="producer posts/s (default: SENTISTREAM_PRODUCER_RATE)")
    parser.add_argument("--port", type=int, default=8501, help="Streamlit port")
    parser.add_argument("--no-app", action="store_true", help="run a producer process instead of the app")
    return parser


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    settings = get_settings()
    rate = settings.producer_rate if args.rate is None else args.rate
    cluster = LocalCluster(DEFAULT_HOME, DEFAULT_LIBS) if settings.uses_local_kafka else None
    children: list[subprocess.Popen] = []
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        if cluster:
            if cluster.running_nodes():
                logger.info("Local Kafka is already running; it will be left running")
                cluster = None
            else:
                spec = cluster.start(nodes=args.nodes)
                logger.info("Local Kafka serving at %s", spec.bootstrap_servers)
        ensure_topics(settings)
        if settings.model.endswith(".pt") and not Path(settings.model).exists():
            logger.info("Building the offline sentiment model into %s, once (about 20 minutes on 2 cores)...", settings.model)
            subprocess.run([sys.executable, "-m", "sentiment_model.build"], cwd=PROJECT_ROOT, check=True)

        env = {**os.environ, "SENTISTREAM_PRODUCER_RATE": str(rate)}
        children.append(_start([sys.executable, "-m", "pipeline", "--workers", str(args.workers)], env))
        if args.no_app:
            children.append(_start([sys.executable, "-m", "producer", "--rate", str(rate)], env))
        else:
            env["SENTISTREAM_PRODUCER_AUTOSTART"] = "true"
            children.append(_start([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(args.port)], env))
            print(f"\n  sentistream is up: open http://127.0.0.1:{args.port}  (Ctrl-C stops everything)\n", flush=True)
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    logger.error("%s exited with %d; stopping", " ".join(child.args[1:4]), child.returncode)
                    stopping = True
            time.sleep(0.5)
    except (KafkaLauncherError, KafkaUnreachable, subprocess.CalledProcessError) as exc:
        logger.error("%s", exc)
        return 2
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        if cluster:
            cluster.stop()
            logger.info("Stopped local Kafka (data kept in %s)", DEFAULT_HOME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
