"""Producer: start and stop the server's post producer, pick its source, change its rate live; run live sources
(Bluesky, Mastodon, a Facebook page) and see every live source's status."""

from __future__ import annotations

import time

import streamlit as st

from common.contract import SourceState
from dashboard import resources, widgets
from dashboard.live_control import NETWORK_LABELS, LiveOptions, Network
from dashboard.live_sources import shown_state, sources_table
from dashboard.producer_control import SOURCE_LABELS, SourceKind, Upload

widgets.run_through_app()

holder = resources.producer_holder()
live = resources.live_sources()
settings = resources.settings()

widgets.status_bar()
st.title("Producer")
st.caption("One producer per server: it keeps running when this tab closes, and every tab sees and controls it.")

if "producer-rate" not in st.session_state:
    current = holder.state().stats
    st.session_state["producer-rate"] = (
        float(current.target_rate or settings.producer_rate) if current else float(settings.producer_rate)
    )


def apply_rate() -> None:
    holder.set_rate(st.session_state["producer-rate"])


def start() -> None:
    kind: SourceKind = st.session_state["producer-source"]
    file = st.session_state.get("producer-file")  # an UploadedFile: read as a stream, never copied whole
    upload = Upload(file.name, file, st.session_state["producer-text-column"]) if kind == "upload" and file else None
    try:
        holder.start(kind, st.session_state["producer-rate"], upload)
    except (ValueError, RuntimeError) as exc:
        st.session_state["producer-error"] = str(exc)
    else:
        st.session_state.pop("producer-error", None)


with st.container(border=True):
    left, right = st.columns([2, 1])
    kind = left.radio(
        "Source", list(SOURCE_LABELS), format_func=SOURCE_LABELS.get, horizontal=True, key="producer-source"
    )
    right.number_input(
        "Rate (posts/s)",
        min_value=0.1,
        max_value=5000.0,
        step=5.0,
        key="producer-rate",
        on_change=apply_rate,
        help="Changes apply at once, also while the producer runs.",
    )
    if kind == "upload":
        file_column, text_column = st.columns([2, 1])
        file_column.file_uploader(
            "CSV, JSON Lines or JSON file", type=["csv", "jsonl", "ndjson", "json"], key="producer-file"
        )
        text_column.text_input("Text column", value="text", key="producer-text-column")
        st.caption(
            f"At most {st.get_option('server.maxUploadSize'):,} MB and {settings.upload_max_rows:,} rows. "
            "CSV with a header row; JSON Lines (.jsonl, .ndjson): one object a line; JSON (.json): an array of "
            "objects. Optional author and source columns; the posts are replayed in a loop."
        )


@st.fragment(run_every=1)
def controls_and_stats() -> None:
    """Refreshes every second, so the buttons follow what other tabs do too."""
    state = holder.state()
    with st.container(horizontal=True):
        st.button(
            "Start",
            icon=":material/play_arrow:",
            type="primary",
            disabled=state.running,
            on_click=start,
            key="producer-start",
        )
        st.button("Stop", icon=":material/stop:", disabled=not state.running, on_click=holder.stop, key="producer-stop")
    if "producer-error" in st.session_state:
        st.error("The producer did not start.", icon=":material/error:")
        st.text(st.session_state["producer-error"])
    if state.stats is None:
        st.info(
            "The producer has not run since the server started. Choose a source and press Start.",
            icon=":material/info:",
        )
        return
    stats = state.stats
    status = "Running" if state.running else "Stopped"
    st.subheader(f"{status} — {state.source}")
    if state.file:
        st.text(state.file)  # the file's name is the user's: text, never Markdown
    with st.container(horizontal=True):
        st.metric("Sent", f"{stats.sent:,}", border=True)
        st.metric("Delivered", f"{stats.delivered:,}", border=True)
        st.metric("Failed", f"{stats.failed:,}", border=True)
        st.metric("In flight", f"{stats.queued:,}", border=True)
        st.metric("Rate now", f"{stats.rate:.1f}/s", border=True)
        st.metric("Target", "max" if stats.target_rate is None else f"{stats.target_rate:g}/s", border=True)
        if state.running and stats.started_at is not None:
            st.metric("Running for", f"{(time.time() - stats.started_at) / 60:.1f} min", border=True)
    if stats.last_error:
        st.warning("Last delivery error (Kafka unreachable or rejecting posts):", icon=":material/warning:")
        st.text(stats.last_error)


controls_and_stats()


st.header("Live sources", divider="gray")
st.caption(
    "Real posts as they are written, one process per network (python -m producer --source ...), run by the server: "
    "they keep running when this tab closes. The table shows every source reporting on "
    f"{widgets.literal(settings.topic_source_status)}, the webhook and those started elsewhere included."
)


LIVE_FIELDS: dict[Network, tuple[str, ...]] = {
    "bluesky": ("keywords", "languages", "accounts"),
    "mastodon": ("instance_url", "timeline", "hashtag", "list_id", "keywords", "languages"),
    "facebook": ("page_id", "keywords", "languages"),
}


def start_live() -> None:
    network: Network = st.session_state["live-network"]
    token_key = f"live-token-{network}"
    token = st.session_state.get(token_key, "")
    st.session_state[token_key] = ""  # used once: never kept, never shown again
    options = LiveOptions(
        network,
        **{field: st.session_state.get(f"live-{field}") or "" for field in LIVE_FIELDS[network]},
    )
    try:
        live.start(options, token)
    except (OSError, RuntimeError) as exc:
        st.session_state["live-error"] = str(exc)
    else:
        st.session_state.pop("live-error", None)


with st.container(border=True):
    network = st.radio(
        "Network", list(NETWORK_LABELS), format_func=NETWORK_LABELS.get, horizontal=True, key="live-network"
    )
    first, second, third = st.columns(3)
    if network == "mastodon":
        first.text_input("Instance URL", placeholder=settings.mastodon_instance_url, key="live-instance_url")
        second.selectbox(
            "Timeline",
            ["public", "local", "hashtag", "list"],
            index=None,
            placeholder=settings.mastodon_timeline,
            key="live-timeline",
        )
        third.text_input("Hashtag (hashtag timeline)", key="live-hashtag")
        first.text_input("List id (list timeline, needs a token)", key="live-list_id")
    if network == "facebook":
        first.text_input("Page id", placeholder=settings.facebook_page_id or "", key="live-page_id")
    second.text_input("Keywords", placeholder="comma-separated, whole words; empty = every post", key="live-keywords")
    third.text_input(
        "Languages",
        placeholder=f"comma-separated; empty = {settings.live_languages or settings.model_languages}",
        key="live-languages",
    )
    if network == "bluesky":
        first.text_input("Accounts", placeholder="comma-separated DIDs; empty = everyone", key="live-accounts")
    else:
        token_name = "Access token (optional)" if network == "mastodon" else "Page access token"
        st.text_input(
            token_name,
            type="password",
            key=f"live-token-{network}",
            help="Passed to the source's process in its environment only; not kept, logged or shown again. "
            "Empty: the server's own setting, if any.",
        )


@st.fragment(run_every=2)
def live_sources() -> None:
    """The server's live source processes and every source's status; refreshes itself (reads snapshots only)."""
    children = {child.network: child for child in live.states()}
    chosen: Network = st.session_state["live-network"]
    st.button(
        f"Connect {NETWORK_LABELS[chosen]}",
        icon=":material/play_arrow:",
        type="primary",
        disabled=chosen in children and children[chosen].running,
        on_click=start_live,
        key="live-start",
    )
    if "live-error" in st.session_state:
        st.error("The live source did not start.", icon=":material/error:")
        st.text(st.session_state["live-error"])
    now = time.time()
    for child in children.values():
        label = NETWORK_LABELS[child.network]
        with st.container(border=True, key=f"live-child-{child.network}"):
            if child.running:
                left, right = st.columns([4, 1])
                left.success(
                    f"{label} source running since {widgets.clock(child.started_at)} (pid {child.pid})",
                    icon=":material/play_circle:",
                )
                right.button(
                    "Disconnect",
                    icon=":material/link_off:",
                    on_click=live.stop,
                    args=(child.network,),
                    key=f"live-stop-{child.network}",
                )
            elif child.failed:
                st.error(
                    f"{label} source exited with code {child.returncode} {widgets.ago(now - (child.ended_at or now))}.",
                    icon=":material/error:",
                )
                st.code(child.tail or "(it wrote nothing)", language=None)
            else:
                st.info(
                    f"{label} source stopped {widgets.ago(now - (child.ended_at or now))}.",
                    icon=":material/stop_circle:",
                )
    snapshot = resources.cluster_monitor().snapshot()
    if not snapshot.sources:
        st.info(
            "No live source has reported yet." if snapshot.sources_read else "Reading the live sources' statuses…",
            icon=":material/info:",
        )
        return
    st.dataframe(
        sources_table(snapshot.sources, now, widgets.clock, widgets.ago),
        hide_index=True,
        column_config={
            "source": st.column_config.TextColumn(width="small"),
            "network": st.column_config.TextColumn(width="small"),
            "state": st.column_config.TextColumn(width="medium"),
            "posts/s": st.column_config.NumberColumn(format="%.1f", width="small"),
            "duplicates": st.column_config.NumberColumn(width="small"),
            "skipped": st.column_config.TextColumn(width="medium"),
            "bad frames": st.column_config.NumberColumn(width="small"),
            "last post": st.column_config.TextColumn(width="medium"),
            "last error": st.column_config.TextColumn(width="large"),
            "following": st.column_config.TextColumn(width="large"),
        },
    )
    for status in snapshot.sources:  # the whole error, which the table cuts
        if shown_state(status, now) == SourceState.RETRYING and status.last_error:
            st.text(f"{status.name} retrying: {status.last_error}")


live_sources()
