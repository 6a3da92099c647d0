"""``python -m kafka_local {fetch,start,stop,status,logs,reset}``: the project's local Kafka."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.logs import configure_logging
from common.settings import PROJECT_ROOT, get_settings
from kafka_local.cluster import KafkaLauncherError, LocalCluster, fetch_jars

DEFAULT_HOME = PROJECT_ROOT / ".local" / "kafka"
DEFAULT_LIBS = PROJECT_ROOT / ".cache" / "kafka" / "libs"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kafka_local", description=__doc__)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="cluster data and logs (default: %(default)s)")
    parser.add_argument("--libs", type=Path, default=DEFAULT_LIBS, help="Kafka jar cache (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="resolve the Kafka jars from Maven Central")
    start = commands.add_parser("start", help="start the cluster (or --node) and wait until it serves")
    start.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    start.add_argument("--port", type=int, default=9092, help="first broker port; controllers use port+100")
    start.add_argument("--node", type=int, action="append", help="start only this node (repeatable)")
    start.add_argument("--timeout", type=float, default=90.0)
    start.add_argument("--no-topics", action="store_true", help="do not create the project's topics")
    stop = commands.add_parser("stop", help="controlled shutdown (SIGTERM) of the cluster or --node")
    stop.add_argument("--node", type=int, action="append")
    stop.add_argument("--kill", action="store_true", help="SIGKILL instead: simulate a crash")
    commands.add_parser("status", help="which nodes run, and where")
    logs = commands.add_parser("logs", help="print the tail of a node's log")
    logs.add_argument("--node", type=int, default=1)
    logs.add_argument("-n", "--lines", type=int, default=60)
    commands.add_parser("reset", help="stop and delete all cluster data")
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = _parser().parse_args(argv)
    settings = get_settings()
    if not settings.uses_local_kafka and args.command in ("start", "stop", "reset"):
        print(f"SENTISTREAM_BOOTSTRAP_SERVERS={settings.bootstrap_servers}: using that cluster, starting nothing.")
        if args.command == "start" and not args.no_topics:
            from common.topics import ensure_topics

            ensure_topics(settings)
        return 0
    cluster = LocalCluster(args.home, args.libs)
    try:
        if args.command == "fetch":
            print(fetch_jars(args.libs))
        elif args.command == "start":
            spec = cluster.start(args.nodes, args.port, args.timeout, only=args.node)
            print(f"Kafka serving at {spec.bootstrap_servers} ({spec.nodes} node(s), data in {args.home})")
            if not args.no_topics and not args.node:
                from common.topics import ensure_topics

                ensure_topics(settings.model_copy(update={"bootstrap_servers": spec.bootstrap_servers}))
        elif args.command == "stop":
            stopped = cluster.stop(only=args.node, kill=args.kill)
            print(f"{'Killed' if args.kill else 'Stopped'} node(s): {stopped or 'none were running'}")
        elif args.command == "status":
            spec = cluster.spec()
            if spec is None:
                print(f"No cluster configured in {args.home}")
                return 1
            running = cluster.running_nodes()
            for node_id in spec.node_ids:
                state = f"running (pid {cluster.pid(node_id)})" if node_id in running else "stopped"
                print(f"node {node_id}: 127.0.0.1:{spec.broker_port(node_id)} {state}")
            return 0 if running else 3
        elif args.command == "logs":
            print(cluster.tail(args.node, args.lines))
        elif args.command == "reset":
            cluster.reset()
            print(f"Deleted {args.home}")
    except KafkaLauncherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
