"""Analyze text: send your own text through Kafka and the pipeline, and see its label within seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboard import charts, resources, widgets
from dashboard.adhoc import MAX_BATCH, SubmissionError, batch_lines
from dashboard.histogram import format_latency
from dashboard.records import DeadLetterRecord, ResultRecord

widgets.run_through_app()

RESULT_TIMEOUT = 30.0
HISTORY = 200


@dataclass(frozen=True)
class Submission:
    post_id: str
    text: str
    submitted_at: float


settings = resources.settings()
feed = resources.results_feed()
if "submissions" not in st.session_state:
    st.session_state["submissions"] = []

widgets.status_bar()
st.title("Analyze text")
st.caption(
    "Your text travels as a post (source “adhoc”) through Kafka into the same pipeline as every other post; "
    "its result is picked out of the live results by the post id."
)

batch = st.toggle("Batch mode: one post per line", key="analyze-batch")
with st.form("analyze-form", clear_on_submit=False, border=True):
    text = st.text_area(
        f"Texts, one per line (at most {MAX_BATCH})" if batch else "Text",
        height=160 if batch else 100,
        placeholder="What a fantastic day!"
        if not batch
        else "I love it\nThe bus is late again\nThe shop opens at nine",
        key="analyze-text",
    )
    st.caption(f"At most {settings.max_text_chars:,} characters per post.")
    submitted = st.form_submit_button("Analyze", icon=":material/send:", type="primary")

if submitted:
    texts = batch_lines(text) if batch else ([text] if text.strip() else [])
    try:
        posts = resources.submitter().submit(texts)
    except SubmissionError as exc:
        st.error(str(exc), icon=":material/error:")
    else:  # newest submission first, a batch in its line order
        now = time.time()
        st.session_state["submissions"] = [Submission(post.id, post.text, now) for post in posts] + st.session_state[
            "submissions"
        ][: HISTORY - len(posts)]


def outcome_row(submission: Submission, now: float) -> dict[str, object]:
    outcome = feed.outcome(submission.post_id)
    undelivered = resources.submitter().delivery_error(submission.post_id) if outcome is None else None
    row: dict[str, object] = {
        "sent": submission.submitted_at,
        "text": submission.text,
        "label": None,
        "confidence": None,
        "latency": None,
        "reason": None,
    }
    if isinstance(outcome, ResultRecord):
        row.update(status="done", label=[outcome.label], confidence=outcome.score, latency=outcome.latency)
    elif isinstance(outcome, DeadLetterRecord):
        row.update(status=f"rejected: {outcome.reason}", reason=outcome.detail)
    elif undelivered is not None:
        row.update(status="not sent", reason=f"Kafka did not take it: {undelivered}")
    elif now - submission.submitted_at < RESULT_TIMEOUT:
        row.update(status="waiting…")
    else:
        row.update(status="no result")
    return row


@st.fragment(run_every=1)
def results() -> None:
    submissions: list[Submission] = st.session_state["submissions"]
    if not submissions:
        st.info("Nothing sent yet. Type a text above and press Analyze.", icon=":material/edit_note:")
        return
    now = time.time()
    rows = [outcome_row(submission, now) for submission in submissions]
    latest = rows[0]
    with st.container(horizontal=True):
        if latest["status"] == "done":
            st.metric("Label", charts.coloured(latest["label"][0]), border=True)
            st.metric("Confidence", f"{latest['confidence']:.0%}", border=True)
            st.metric("Latency", format_latency(latest["latency"]), border=True)
        else:
            st.metric("Latest", str(latest["status"]).split(":")[0].capitalize(), border=True)
    if any(row["status"] == "no result" for row in rows):
        st.warning(
            f"No result within {RESULT_TIMEOUT:.0f} s for some posts: is the pipeline running? "
            "They are classified as soon as it is, and show up here then.",
            icon=":material/timer_off:",
        )
    if any(str(row["status"]).startswith("rejected") for row in rows):
        st.error("The pipeline rejected some posts; the reason is in the table.", icon=":material/block:")
    if any(row["status"] == "not sent" for row in rows):
        st.error(
            "Kafka did not take some posts (is it running?); the reason is in the table. Send them again when it is back.",
            icon=":material/cloud_off:",
        )
    table = pd.DataFrame(rows)
    table["sent"] = pd.to_datetime(table["sent"], unit="s", utc=True).dt.tz_convert(charts.local_timezone())
    # User text only ever goes through st.dataframe: shown as text, never as markdown or HTML.
    st.dataframe(
        table[
            ["sent", "status", "label", "confidence", "latency", "text"]
            + (["reason"] if table["reason"].notna().any() else [])
        ],
        hide_index=True,
        column_config={
            "sent": st.column_config.DatetimeColumn("Sent", format="HH:mm:ss", width="small"),
            "status": st.column_config.TextColumn("Status", width="small"),
            "label": charts.label_column("Label"),
            "reason": st.column_config.TextColumn("Reason", width="medium"),
            "confidence": st.column_config.ProgressColumn(
                "Confidence", min_value=0.0, max_value=1.0, format="%.2f", width="small"
            ),
            "latency": st.column_config.NumberColumn("Latency (s)", format="%.2f", width="small"),
            "text": st.column_config.TextColumn("Text", width="large"),
        },
        key="analyze-history",
    )


results()
