"""``python -m producer [--rate R] [--count N] [--duration S] [--source dataset|synthetic|PATH|bluesky|mastodon|facebook]``.

Writes posts to the raw topic until the count, the duration or Ctrl-C / SIGTERM (which flush what
is in flight), prints the final stats, and exits non-zero if any post was not delivered.

A live source (bluesky, mastodon, facebook) sends the network's posts as they are written, until Ctrl-C / SIGTERM, at
the network's pace (``--rate``, ``--count`` and ``--duration`` do not apply); its options override the
``SENTISTREAM_BLUESKY_*`` / ``SENTISTREAM_MASTODON_*`` / ``SENTISTREAM_FACEBOOK_*`` settings, and a token is only ever read from its setting.
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
from producer.live.base import LiveSource
from producer.live.bluesky import BlueskySource
from producer.live.facebook import FacebookPageSource
from producer.live.mastodon import MastodonSource
from producer.live.runner import run_live_source
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
        help="dataset (the shipped sample), synthetic, a PATH.csv / PATH.jsonl, or a live source: bluesky, mastodon, facebook "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--text-column", default="text", help="the text column of a CSV/JSONL source (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, help="seed of the synthetic source")
    parser.add_argument("--stats-interval", type=float, default=10.0, help="seconds between stats log lines; 0 = none")
    live = parser.add_argument_group("live sources (bluesky, mastodon, facebook)")
    live.add_argument("--keywords", help="comma-separated; only posts containing one of them, as whole words")
    live.add_argument(
        "--languages", help="comma-separated BCP-47 languages to send, * = all (default: SENTISTREAM_LIVE_LANGUAGES)"
    )
    live.add_argument("--name", help="the source's name: its state and status key (default: the network's)")
    live.add_argument("--accounts", help="bluesky: comma-separated DIDs to follow (default: everyone)")
    live.add_argument("--timeline", choices=("public", "local", "hashtag", "list"), help="mastodon: the timeline")
    live.add_argument("--hashtag", help="mastodon: the hashtag of the hashtag timeline")
    live.add_argument(
        "--list-id", help="mastodon: the list of the list timeline (needs SENTISTREAM_MASTODON_ACCESS_TOKEN)"
    )
    live.add_argument(
        "--page-id",
        help="facebook: the page (default: SENTISTREAM_FACEBOOK_PAGE_ID; the token is SENTISTREAM_FACEBOOK_PAGE_TOKEN)",
    )
    return parser


def _live_source(args: argparse.Namespace) -> LiveSource | None:
    """The live source the arguments ask for, or None for the other sources."""
    common = {"keywords": args.keywords, "languages": args.languages, "name": args.name}
    if args.source == "bluesky":
        return BlueskySource.from_settings(get_settings(), accounts=args.accounts, **common)
    if args.source == "mastodon":
        return MastodonSource.from_settings(
            get_settings(), timeline=args.timeline, hashtag=args.hashtag, list_id=args.list_id, **common
        )
    if args.source == "facebook":
        return FacebookPageSource.from_settings(get_settings(), page_id=args.page_id, **common)
    return None


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
        live = _live_source(args)
    except ValueError as exc:
        parser.error(str(exc))
    if live is not None:
        if args.count is not None or args.duration is not None:
            parser.error("--count and --duration do not apply to a live source: it runs until stopped")
        run_live_source(get_settings(), live)  # raises if the source's process failed
        return 0
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
