"""Kafka monitoring: brokers, partitions and replicas, offsets and throughput, lag, workers, dead letters."""

from __future__ import annotations

import logging

import pandas as pd
import streamlit as st
from confluent_kafka import KafkaException

from dashboard import charts, resources, widgets
from dashboard.monitoring import ClusterView, GroupView, ThroughputTracker, cluster_view, group_view

logger = logging.getLogger(__name__)

widgets.run_through_app()

STATS_GROUP_SUFFIX = "-stats"  # the pipeline's statistics worker group: consumer_group + this

settings = resources.settings()
admin = resources.admin()
feed = resources.results_feed()
if "throughput-tracker" not in st.session_state:
    st.session_state["throughput-tracker"] = ThroughputTracker()

widgets.status_bar()
st.title("Kafka monitoring")
project_topics = [settings.topic_posts, settings.topic_results, settings.topic_dead_letters, settings.topic_stats]
all_topics = st.toggle("Show every topic (also the pipeline's internal ones)", key="monitoring-all-topics")


def partitions_table(cluster: ClusterView, rates: dict[tuple[str, int], float | None]) -> pd.DataFrame:
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
                "msgs/s": rates.get((p.topic, p.partition)),
            }
            for p in cluster.partitions
        ]
    )


def lag_table(group: GroupView) -> pd.DataFrame:
    return pd.DataFrame(
        [{"partition": p.partition, "committed": p.committed, "end offset": p.end_offset, "lag": p.lag} for p in group.lag]
    )


def group_section(title: str, group: GroupView) -> None:
    st.subheader(title)
    st.caption(f"Group {group.group}: {group.state.lower()}, {group.members} member(s); lag = end offset − committed offset.")
    st.dataframe(
        lag_table(group), hide_index=True, key=f"lag-{group.group}",
        column_config={"lag": st.column_config.ProgressColumn("lag", min_value=0, max_value=max(max((p.lag for p in group.lag), default=0), 1), format="%d")},
    )


@st.fragment(run_every=5)
def monitor() -> None:
    try:
        cluster = cluster_view(admin, None if all_topics else project_topics)
        pipeline = group_view(admin, settings.consumer_group, settings.topic_posts, cluster)
        statistics = group_view(admin, settings.consumer_group + STATS_GROUP_SUFFIX, settings.topic_results, cluster)
    except KafkaException as exc:
        st.error(f"Kafka does not answer at {settings.brokers}; this page refreshes itself and recovers when it is back.", icon=":material/cloud_off:")
        st.text(str(exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc))
        return
    rates = st.session_state["throughput-tracker"].update(cluster.end_offsets(), cluster.taken_at)
    incoming = sum(rate or 0.0 for (topic, _), rate in rates.items() if topic == settings.topic_posts)
    under = sum(p.under_replicated for p in cluster.partitions)
    with st.container(horizontal=True):
        st.metric("Brokers", len(cluster.brokers), border=True)
        st.metric("Partitions", len(cluster.partitions), border=True)
        st.metric("Under-replicated", under, border=True, delta="attention" if under else None, delta_color="inverse")
        st.metric("Pipeline workers", pipeline.members, border=True)
        st.metric("Pipeline lag", f"{pipeline.total_lag:,}", border=True)
        st.metric("Posts in", f"{incoming:.1f}/s", border=True)
        st.metric("Dead letters", f"{cluster.topic_messages(settings.topic_dead_letters):,}", border=True)
    if pipeline.members == 0:
        st.warning(f"No worker in the pipeline group {settings.consumer_group}: the pipeline is not running.", icon=":material/pause_circle:")

    st.subheader("Brokers")
    st.dataframe(
        pd.DataFrame([{"id": b.id, "address": b.address, "controller": "✔" if b.controller else ""} for b in cluster.brokers]),
        hide_index=True, key="brokers",
    )
    st.subheader("Topics and partitions")
    st.dataframe(
        partitions_table(cluster, rates), hide_index=True, key="partitions",
        column_config={"msgs/s": st.column_config.NumberColumn("msgs/s", format="%.1f", help="growth of the end offset since the last refresh")},
    )
    left, right = st.columns(2)
    with left:
        group_section("Pipeline lag (posts)", pipeline)
    with right:
        group_section("Statistics worker lag (results)", statistics)

    st.subheader("Recent dead letters")
    letters = feed.recent_dead_letters()
    if not letters:
        st.info("No dead letters in the dashboard's history window. Malformed posts would show here with their reason.", icon=":material/inbox:")
        return
    table = pd.DataFrame(letters)
    table["failed_at"] = pd.to_datetime(table["failed_at"], unit="s", utc=True).dt.tz_convert(charts.local_timezone())
    # The preview is whatever was sent: st.dataframe shows it as text.
    st.dataframe(
        table[["failed_at", "reason", "detail", "partition", "offset", "preview"]], hide_index=True, key="dead-letters",
        column_config={"failed_at": st.column_config.DatetimeColumn("Failed at", format="YYYY-MM-DD HH:mm:ss")},
    )


monitor()
