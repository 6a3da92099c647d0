"""Ends a worker whose main thread is stuck inside one Kafka transaction call.

librdkafka can block forever in ``send_offsets_to_transaction`` when the group coordinator dies
(confluentinc/librdkafka#5456, #5511); Quix calls it without a timeout. A transaction normally
commits in milliseconds, so a worker still inside the same call after ``limit`` seconds is stuck:
it exits, the supervisor starts a fresh one, and the broker aborts the open transaction, so its
results are neither lost (the offsets were not committed) nor duplicated (they were never visible).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from types import FrameType

logger = logging.getLogger(__name__)

STUCK_EXIT_CODE = 75
_TRANSACTION_CALLS = {"commit_transaction", "abort_transaction", "begin_transaction"}


def _transaction_frame(frame: FrameType | None) -> FrameType | None:
    while frame is not None:
        if frame.f_code.co_name in _TRANSACTION_CALLS and frame.f_code.co_filename.endswith("internal_producer.py"):
            return frame
        frame = frame.f_back
    return None


def watch_transactions(limit: float, interval: float = 1.0) -> threading.Thread:
    """Start a daemon thread that exits the process if the calling thread stays in one transaction call."""
    watched = threading.get_ident()

    def watch() -> None:
        stuck_frame, since = None, 0.0
        while True:
            time.sleep(interval)
            frame = _transaction_frame(sys._current_frames().get(watched))
            if frame is not stuck_frame:
                stuck_frame, since = frame, time.monotonic()
            elif frame is not None and time.monotonic() - since > limit:
                logger.critical(
                    "Stuck in Kafka %s for %.0f s; exiting so that a fresh worker takes over",
                    frame.f_code.co_name,
                    time.monotonic() - since,
                )
                os._exit(STUCK_EXIT_CODE)

    thread = threading.Thread(target=watch, name="transaction-watchdog", daemon=True)
    thread.start()
    return thread
