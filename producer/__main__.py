"""``python -m producer [--rate R] [--count N] [--duration S] [--source dataset|synthetic|PATH]``.

Writes posts to the raw topic until the count, the duration or Ctrl-C / SIGTERM (which flush what
is in flight), prints the final stats, and exits non-zero if any post was not delivered.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from common.contract import Post
from common.logs import configure_logging
from common.settings import get_settings
from producer.producer import PostProducer
from producer.sources import dataset_posts, file_posts, synthetic_posts

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m producer", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate",
        type=float,
        default=get_settings().producer_rate,
        help="posts per second; 0 = as fast as possible (default: SENTISTREAM_PRODUCER_RATE, %(default)g)",
    )
    parser.add_argument("--count", type=int, help="stop after this many posts")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--source",
        default="dataset",
        help="dataset (the shipped sample), synthetic, or a PATH.csv / PATH.jsonl (default: %(default)s)",
    )
    parser.add_argument(
        "--text-column", default="text", help="the text column of a CSV/JSONL source (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, help="seed of the synthetic source")
    parser.add_argument("--stats-interval", type=float, default=10.0, help="seconds between stats log lines; 0 = none")
    return parser


def _source(args: argparse.Namespace) -> Iterator[Post]:
    if args.source == "dataset":
        return dataset_posts()
    if args.source == "synthetic":
        return synthetic_posts(args.seed)
    path = Path(args.source)
    if not path.is_file():
        raise ValueError(f"--source {args.source!r} is neither 'dataset', 'synthetic' nor an existing file")
    return file_posts(path, text_column=args.text_column)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        source = _source(args)
        producer = PostProducer(get_settings(), source, args.rate, stats_interval=args.stats_interval or None)
    except ValueError as exc:
        parser.error(str(exc))

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("%s received: stopping and flushing", signal.Signals(signum).name)
        producer.stop()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stats = producer.run(count=args.count, duration=args.duration)
    print(f"Final stats: {stats.summary()}")
    return 1 if stats.failed or stats.queued else 0


if __name__ == "__main__":
    sys.exit(main())
