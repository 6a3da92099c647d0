"""``python -m pipeline [--workers N]``: run the sentiment pipeline (``worker ROLE`` runs one process)."""

from __future__ import annotations

import argparse
import logging
import sys

from common.logs import configure_logging
from common.settings import get_settings
from common.topics import KafkaUnreachable, ensure_topics
from pipeline.instance import WorkerIdentity, claim_instance
from pipeline.supervisor import Supervisor
from pipeline.worker import ROLES, WorkerFiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("--workers", type=int, default=1, help="classifier processes in the consumer group")
    parser.add_argument("--no-stats", action="store_true", help="do not run the statistics worker")
    commands = parser.add_subparsers(dest="command")
    worker = commands.add_parser("worker", help="run a single worker process in the foreground")
    worker.add_argument("role", choices=sorted(ROLES))
    worker.add_argument("--instance", help="its supervisor's instance (default: claim one, as a supervisor does)")
    worker.add_argument("--slot", type=int, default=0, help="its number among the workers of its role")
    worker.add_argument("--careful", action="store_true", help="one message per checkpoint, then exit (after a crash)")
    args = parser.parse_args(argv)

    configure_logging()
    settings = get_settings()
    if args.command == "worker":
        # On its own (not under a supervisor) a worker claims an instance as a supervisor would, and holds it.
        instance = args.instance or claim_instance(settings.state_dir, settings.consumer_group)
        identity = WorkerIdentity(instance if isinstance(instance, str) else instance.name, args.role, args.slot)
        try:
            ROLES[args.role](settings, identity, args.careful)
        except Exception as error:
            WorkerFiles(settings.state_dir, identity).write_crash_report(error)
            raise
        return 0
    while True:  # Kafka may come up after us (or be down for a while): wait for it rather than exit.
        try:
            ensure_topics(settings, timeout=10)
            break
        except KafkaUnreachable as error:
            logging.getLogger("pipeline").warning("%s Retrying.", error)
    return Supervisor(settings, args.workers, statistics=not args.no_stats).run()


if __name__ == "__main__":
    sys.exit(main())
