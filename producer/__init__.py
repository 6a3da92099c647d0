"""The post producer: sources of posts, pacing, and the Kafka writer (``python -m producer``)."""
