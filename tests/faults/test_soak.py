"""Soak: the full stack (pipeline with two classifiers and statistics, producer CLI) at a steady rate.

The memory (RSS) of every process is sampled throughout; after a warm-up, none may trend upwards.
No process may log an error or restart, the pipeline's lag must stay measurable and come to 0 once the
producer is done, and every post must get exactly one result. How far behind the pipeline was and the rate
the producer kept are reported, not judged (they measure the machine; ``make bench`` measures throughput).
CI runs a short soak; the long one is the same test with more seconds::

    SOAK_SECONDS=1800 .venv/bin/python -m pytest tests/faults/test_soak.py -s

(``SOAK_RATE`` sets posts/s, default 40.)
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from common.settings import Settings
from common.topics import group_lag
from pipeline.application import STATS_GROUP_SUFFIX
from tests.faults.conftest import MEASUREMENTS, ThreeNodes
from tests.faults.support import (
    account,
    log_problems,
    pipeline_workers,
    wait_for_workers,
    wait_until_caught_up,
    wait_until_ready,
)
from tests.processes import running

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "75"))
SOAK_RATE = float(os.environ.get("SOAK_RATE", "40"))
SAMPLE_EVERY = max(1.0, SOAK_SECONDS / 300)
# Allocators, caches and torch's buffers settle in the first part of a run; the trend is judged after.
WARM_UP_FRACTION = 0.3
MIB = 1024 * 1024


@dataclass
class Memory:
    name: str
    process: psutil.Process
    samples: list[tuple[float, int]] = field(default_factory=list)

    def sample(self, now: float) -> None:
        self.samples.append((now, self.process.memory_info().rss))

    def steady(self, since: float) -> list[tuple[float, int]]:
        return [(t, rss) for t, rss in self.samples if t >= since]

    def slope_mib_per_min(self, since: float) -> float:
        """Theil-Sen: the median of the slopes between every two samples (robust to GC spikes)."""
        points = self.steady(since)
        slopes = [
            (r2 - r1) / (t2 - t1)
            for i, (t1, r1) in enumerate(points)
            for t2, r2 in points[i + 1 :: max(1, len(points) // 100)]
            if t2 > t1
        ]
        return statistics.median(slopes) * 60 / MIB if slopes else 0.0


def test_soak_full_stack_steady_rate_no_memory_growth_no_errors(
    three_nodes: ThreeNodes, fault_settings: Settings, tmp_path: Path
) -> None:
    settings = fault_settings
    pipeline_log, producer_log = tmp_path / "pipeline.log", tmp_path / "producer.log"
    lags: list[tuple[float, int | None]] = []
    with running(settings, "pipeline", "--workers", "2", log=pipeline_log) as pipeline:
        wait_until_ready(settings)
        workers = wait_for_workers(pipeline, 3)
        producer_args = [
            "producer",
            "--source",
            "synthetic",
            "--rate",
            f"{SOAK_RATE:g}",
            "--duration",
            f"{SOAK_SECONDS:g}",
        ]
        with running(settings, *producer_args, log=producer_log) as producer:
            started = time.monotonic()
            memories = [
                Memory("supervisor", psutil.Process(pipeline.pid)),
                Memory("producer", psutil.Process(producer.pid)),
            ]
            memories += [Memory(f"{role}-{pid}", psutil.Process(pid)) for pid, role in sorted(workers.items())]
            next_lag = started
            while producer.poll() is None:
                now = time.monotonic() - started
                for memory in memories:
                    if memory.process.is_running():
                        memory.sample(now)
                if time.monotonic() >= next_lag:
                    lags.append((now, group_lag(settings, settings.consumer_group, settings.topic_posts)))
                    next_lag = time.monotonic() + max(5.0, SAMPLE_EVERY)
                assert pipeline_workers(pipeline) == workers, f"a pipeline worker died; log: {pipeline_log}"
                time.sleep(SAMPLE_EVERY)
            ran_for = time.monotonic() - started
        assert producer.returncode == 0, f"the producer reports undelivered posts; log: {producer_log}"
        caught_up_in = wait_until_caught_up(settings, settings.consumer_group, settings.topic_posts, timeout=120)
        wait_until_caught_up(
            settings, settings.consumer_group + STATS_GROUP_SUFFIX, settings.topic_results, timeout=120
        )
        assert pipeline_workers(pipeline) == workers, f"no pipeline worker may restart; log: {pipeline_log}"
    assert pipeline.returncode == 0

    accounting = account(settings)
    steady_since = ran_for * WARM_UP_FRACTION
    steady_lags = [lag for t, lag in lags if t >= steady_since]
    produced = sum(accounting.produced.values()) - 1  # minus the canary
    lines = [
        f"soak: {ran_for:.0f} s at {SOAK_RATE:g} posts/s ({produced / ran_for:.1f} kept), {accounting.summary()}, "
        f"most behind {max(filter(None, steady_lags), default=0)} posts, caught up {caught_up_in:.0f} s after the producer"
    ]
    verdicts = []
    for memory in memories:
        steady = [rss for _, rss in memory.steady(steady_since)]
        slope = memory.slope_mib_per_min(steady_since)
        growth = slope * (ran_for - steady_since) / 60  # MiB over the steady part, by the trend
        median = statistics.median(steady) / MIB
        # A leak of a few KiB per post shows within minutes; the short CI soak catches only gross ones.
        allowed = max(16.0, 0.05 * median)
        lines.append(
            f"  {memory.name:<18} RSS start {memory.samples[0][1] / MIB:7.1f} MiB, steady median {median:7.1f} MiB, "
            f"end {memory.samples[-1][1] / MIB:7.1f} MiB, trend {slope:+6.2f} MiB/min ({growth:+.1f} MiB over the steady part, "
            f"allowed {allowed:.0f}) [{len(memory.samples)} samples]"
        )
        verdicts.append((memory.name, growth, allowed))
    print("\n".join(lines))
    MEASUREMENTS.extend(lines)

    problems = log_problems(pipeline_log) + log_problems(producer_log)
    assert not problems, f"errors logged during the soak: {problems[:5]}"
    assert "failed=0 queued=0" in producer_log.read_text(), "the producer's final stats"
    accounting.assert_every_post_accounted_for()
    assert accounting.duplicates == 0, "no fault, no duplicate"
    assert steady_lags and all(lag is not None for lag in steady_lags), (
        f"the pipeline's lag must stay measurable: {lags}"
    )
    for name, growth, allowed in verdicts:
        assert growth <= allowed, f"{name}: RSS grows by {growth:.1f} MiB over the steady part (allowed {allowed:.0f})"
