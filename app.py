"""sentistream dashboard: ``streamlit run app.py`` (settings from SENTISTREAM_* variables)."""

from __future__ import annotations

import logging

import streamlit as st

from dashboard import resources

logger = logging.getLogger(__name__)

st.set_page_config(page_title="sentistream", page_icon=":material/monitoring:", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/live.py", title="Live sentiment", icon=":material/monitoring:", default=True),
        st.Page("pages/producer.py", title="Producer", icon=":material/send:"),
        st.Page("pages/analyze.py", title="Analyze text", icon=":material/edit_note:"),
        st.Page("pages/monitoring.py", title="Kafka monitoring", icon=":material/dns:"),
    ]
)
resources.producer_holder()  # created once per server: starts the producer if settings.producer_autostart
navigation.run()  # each page opens with the shared status bar
