"""One log format for every process of the product (several share a terminal: the pid tells them apart)."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr; a no-op when logging is already set up (e.g. by a test runner or an earlier call)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
