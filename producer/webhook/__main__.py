"""``python -m producer.webhook [--host H] [--port P]``: serve the webhook until Ctrl-C / SIGTERM.

Stopping waits for the requests in flight (each answered once Kafka acknowledged its posts, or 503).
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from common.logs import configure_logging
from common.settings import get_settings
from producer.webhook.app import create_app


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m producer.webhook", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=settings.webhook_host, help="default: SENTISTREAM_WEBHOOK_HOST, %(default)s")
    parser.add_argument(
        "--port", type=int, default=settings.webhook_port, help="default: SENTISTREAM_WEBHOOK_PORT, %(default)s"
    )
    args = parser.parse_args(argv)
    configure_logging()
    # No access log: a Facebook verification URL carries the verify token in its query string.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
