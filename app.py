"""sentistream dashboard: ``streamlit run app.py`` (settings from SENTISTREAM_* variables)."""

from __future__ import annotations

import streamlit as st

from common.logs import configure_logging
from dashboard import resources

configure_logging()  # the app's own records (producer, results feed) next to Streamlit's, once per server

st.set_page_config(page_title="sentistream", page_icon=":material/monitoring:", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/live.py", title="Live sentiment", icon=":material/monitoring:", default=True),
        st.Page("pages/producer.py", title="Producer", icon=":material/send:"),
        st.Page("pages/analyze.py", title="Analyze text", icon=":material/edit_note:"),
        st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
        st.Page("pages/monitoring.py", title="Kafka monitoring", icon=":material/dns:"),
    ]
)
resources.producer_holder()  # created once per server: starts the producer if settings.producer_autostart
navigation.run()  # each page opens with the shared status bar
