"""Producer: start and stop the server's post producer, pick its source, change its rate live."""

from __future__ import annotations

import time

import streamlit as st

from dashboard import resources, widgets
from dashboard.producer_control import SOURCE_LABELS, SourceKind, Upload

widgets.run_through_app()

holder = resources.producer_holder()
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
