"""The Streamlit app's non-UI logic: results feed, aggregates, Kafka monitoring, producer control."""
