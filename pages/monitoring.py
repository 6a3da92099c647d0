"""Kafka monitoring: brokers, partitions and replicas, offsets and throughput, lag, workers, dead letters.

Everything comes from the server's cluster monitor snapshot: this page never waits on Kafka.
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from dashboard import charts, resources, widgets
from dashboard.background import ThreadHealth
from dashboard.cluster_monitor import ClusterSnapshot
from dashboard.monitoring import GroupView
from dashboard.pipeline_health import is_live

widgets.run_through_app()

settings = resources.settings()
monitor = resources.cluster_monitor()
feed = resources.results_feed()

widgets.status_bar()
st.title("Kafka monitoring")
project_topics = {
    settings.topic_posts,
    settings.topic_results,
    settings.topic_dead_letters,
    settings.topic_stats,
    settings.topic_pipeline_status,
}
all_topics = st.toggle("Show every topic (also the pipeline's internal ones)", key="monitoring-all-topics")


def partitions_table(snapshot: ClusterSnapshot) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "topic": p.topic,
                "partition": p.partition,
                "leader": p.leader,
                "replicas": ", ".join(map(str, p.replicas)),
                "in sync": ", ".join(map(str, p.in_sync)),
                "under-replicated": "YES" if p.under_replicated else "",
                "start offset": p.start_offset,
                "end offset": p.end_offset,
                "msgs/s": snapshot.rates.get((p.topic, p.partition)),
            }
            for p in snapshot.cluster.partitions
            if all_topics or p.topic in project_topics
        ]
    )


def lag_table(group: GroupView) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "partition": p.partition,
                "committed": p.committed,
                "end offset": p.end_offset,
                "lag": p.lag,
                "member": f"{p.member.instance_id or p.member.client_id} ({p.member.host.lstrip('/')})"
                if p.member
                else "",
            }
            for p in group.lag
        ]
    )


def group_section(title: str, group: GroupView | None, key: str) -> None:
    st.subheader(title)
    if group is None:
        st.info("Kafka has not described this consumer group yet (see above).", icon=":material/hourglass_empty:")
        return
    st.caption(
        f"Group {widgets.literal(group.group)}: {group.state.lower()}, {len(group.members)} member(s); "
        "lag = end offset − committed offset (from the first retained offset where the group never committed)."
    )
    st.dataframe(
        lag_table(group),
        hide_index=True,
        key=key,
        column_config={
            "lag": st.column_config.ProgressColumn(
                "lag", min_value=0, max_value=max(max((p.lag for p in group.lag), default=0), 1), format="%d"
            )
        },
    )


def workers_section(snapshot: ClusterSnapshot, now: float) -> None:
    """The supervisors' heartbeats: one row per worker process (hosts and errors are data: table cells only)."""
    st.subheader("Pipeline workers")
    pipeline = snapshot.pipeline
    if not pipeline.supervisors:
        st.info(
            "No pipeline supervisor has reported on the status topic. `python -m pipeline` reports its workers "
            f"every {settings.status_interval_seconds:g} s.",
            icon=":material/info:",
        )
        return
    if not pipeline.live:
        st.caption("No supervisor reports now: the last one to report said this.")
    rows = [
        {  # what tells a crash loop first; the rest after
            "worker": f"{worker.role} {worker.slot}",
            "state": worker.state.value.replace("_", "-"),
            "restarts": worker.restarts,
            "stuck at": worker.stuck_at or "",
            "careful": "yes" if worker.careful else "",
            "last error": worker.last_error or "",
            "last exit": worker.last_exit or "",
            "supervisor": f"{status.host} pid {status.pid}",
            "pid": worker.pid,
            "restarts in all": worker.restarts_total,
            "poisoned": worker.poisoned,
            "heartbeat": now - status.sent_at,
            "reporting": "stopping" if status.stopping else "yes" if is_live(status, now) else "gone",
        }
        for status in pipeline.supervisors
        for worker in status.workers
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        key="pipeline-workers",
        column_config={
            "heartbeat": st.column_config.NumberColumn("heartbeat (s ago)", format="%.0f"),
            "restarts": st.column_config.NumberColumn(
                "restarts", help=f"in the last {settings.crash_loop_window_seconds / 60:g} min"
            ),
            "careful": st.column_config.TextColumn(
                "careful", help="scoring one message per checkpoint to isolate the one that crashes it"
            ),
            "last error": st.column_config.TextColumn("last error", width="large"),
        },
    )


def threads_section(threads: list[ThreadHealth], now: float) -> None:
    st.subheader("Dashboard background threads")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "thread": widgets.THREAD_NAMES[thread.name],
                    "state": "restarting after an error" if thread.failing else "working",
                    "last success": widgets.ago(now - thread.last_success_at) if thread.last_success_at else "not yet",
                    "restarts": thread.restarts,
                    "last error": f"{thread.last_error} ({widgets.ago(now - thread.last_error_at)})"
                    if thread.last_error
                    else None,
                }
                for thread in threads
            ]
        ),
        hide_index=True,
        key="background-threads",
    )


def dead_letters_section() -> None:
    st.subheader("Recent dead letters")
    letters = feed.recent_dead_letters()
    if not letters:
        st.info(
            "No dead letters in the dashboard's history window. Malformed posts would show here with their reason.",
            icon=":material/inbox:",
        )
        return
    table = pd.DataFrame(letters)
    table["failed_at"] = pd.to_datetime(table["failed_at"], unit="s", utc=True).dt.tz_convert(charts.local_timezone())
    # The preview is whatever was sent: st.dataframe shows it as text.
    st.dataframe(
        table[["failed_at", "reason", "detail", "partition", "offset", "preview"]],
        hide_index=True,
        key="dead-letters",
        column_config={"failed_at": st.column_config.DatetimeColumn("Failed at", format="YYYY-MM-DD HH:mm:ss")},
    )


@st.fragment(run_every=5)
def monitor_view() -> None:
    snapshot = monitor.snapshot()
    now = time.time()
    threads = [monitor.thread_health(), feed.status().thread]
    if snapshot.cluster is None:
        if snapshot.error is None:
            st.info(
                f"Taking a first look at the cluster (the server polls it every {monitor.interval:g} s)…",
                icon=":material/sync:",
            )
        else:
            st.error(
                "Kafka does not answer, and has not since the dashboard started: nothing to show yet.",
                icon=":material/cloud_off:",
            )
        threads_section(threads, now)
        return
    if snapshot.error is not None:
        st.warning(
            f"Kafka does not answer: these are the last figures it gave. {widgets.data_age(snapshot, now)}",
            icon=":material/history:",
        )
    else:
        st.caption(
            f"{widgets.data_age(snapshot, now)} The server polls Kafka every {monitor.interval:g} s, once for all tabs."
        )
    if snapshot.problems:
        st.warning(
            "Kafka answered only in part at the last poll: these parts are older, or missing.",
            icon=":material/warning:",
        )
        st.text("\n".join(snapshot.problems))
    cluster, pipeline_group = snapshot.cluster, snapshot.pipeline_group
    incoming = [
        rate for (topic, _), rate in snapshot.rates.items() if topic == settings.topic_posts and rate is not None
    ]
    under = sum(p.under_replicated for p in cluster.partitions)
    with st.container(horizontal=True):
        st.metric("Brokers", len(cluster.brokers), border=True)
        st.metric("Partitions", len(cluster.partitions), border=True)
        st.metric("Under-replicated", under, border=True, delta="attention" if under else None, delta_color="inverse")
        st.metric("Pipeline workers", snapshot.pipeline.workers, border=True, help="classifier workers running")
        st.metric("Pipeline lag", f"{pipeline_group.total_lag:,}" if pipeline_group else "–", border=True)
        st.metric("Posts in", f"{sum(incoming):.1f}/s" if incoming else "–", border=True, help="since the poll before")
        st.metric("Dead letters", f"{cluster.topic_messages(settings.topic_dead_letters):,}", border=True)

    workers_section(snapshot, now)
    st.subheader("Brokers")
    st.dataframe(
        pd.DataFrame(
            [{"id": b.id, "address": b.address, "controller": "✔" if b.controller else ""} for b in cluster.brokers]
        ),
        hide_index=True,
        key="brokers",
    )
    st.subheader("Topics and partitions")
    st.dataframe(
        partitions_table(snapshot),
        hide_index=True,
        key="partitions",
        column_config={
            "msgs/s": st.column_config.NumberColumn(
                "msgs/s", format="%.1f", help="growth of the end offset between the last two polls"
            )
        },
    )
    left, right = st.columns(2)
    with left:
        group_section("Pipeline lag (posts)", pipeline_group, "pipeline-lag")
    with right:
        group_section("Statistics worker lag (results)", snapshot.stats_group, "statistics-lag")
    dead_letters_section()
    threads_section(threads, now)


monitor_view()
