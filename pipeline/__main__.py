"""``python -m pipeline [--workers N]``: run the sentiment pipeline (``worker ROLE`` runs one process)."""

from __future__ import annotations

import argparse
import logging
import sys

from common.logs import configure_logging
from common.settings import get_settings
from common.topics import KafkaUnreachable, ensure_topics
from pipeline.supervisor import Supervisor
from pipeline.worker import ROLES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("--workers", type=int, default=1, help="classifier processes in the consumer group")
    parser.add_argument("--no-stats", action="store_true", help="do not run the statistics worker")
    commands = parser.add_subparsers(dest="command")
    worker = commands.add_parser("worker", help="run a single worker process in the foreground")
    worker.add_argument("role", choices=sorted(ROLES))
    args = parser.parse_args(argv)

    configure_logging()
    settings = get_settings()
    if args.command == "worker":
        ROLES[args.role](settings)
        return 0
    while True:  # Kafka may come up after us (or be down for a while): wait for it rather than exit.
        try:
            ensure_topics(settings, timeout=10)
            break
        except KafkaUnreachable as error:
            logging.getLogger("pipeline").warning("%s Retrying.", error)
    return Supervisor(args.workers, statistics=not args.no_stats).run()


if __name__ == "__main__":
    sys.exit(main())
