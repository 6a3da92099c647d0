"""The transaction watchdog ends a worker stuck in one Kafka transaction call, and only then."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common.settings import PROJECT_ROOT
from pipeline.watchdog import STUCK_EXIT_CODE

# Stands in for quixstreams/internal_producer.py: the watchdog knows a transaction call by its
# function name in a file of that name.
INTERNAL_PRODUCER = """
import time

def commit_transaction(seconds):
    time.sleep(seconds)
"""


def run_worker(tmp_path: Path, calls: str) -> subprocess.CompletedProcess:
    (tmp_path / "internal_producer.py").write_text(INTERNAL_PRODUCER)
    script = f"""
import sys
sys.path[:0] = [{str(tmp_path)!r}, {str(PROJECT_ROOT)!r}]
from internal_producer import commit_transaction
from pipeline.watchdog import watch_transactions
watch_transactions(limit=1.0, interval=0.1)
{calls}
"""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_a_worker_stuck_in_one_transaction_call_exits(tmp_path: Path) -> None:
    result = run_worker(tmp_path, "commit_transaction(30)")
    assert result.returncode == STUCK_EXIT_CODE
    assert "Stuck in Kafka commit_transaction" in result.stderr


def test_many_quick_transactions_in_a_row_are_not_a_stall(tmp_path: Path) -> None:
    result = run_worker(tmp_path, "for _ in range(6):\n    commit_transaction(0.25)")  # 1.5 s in all, past the limit
    assert result.returncode == 0, result.stderr
