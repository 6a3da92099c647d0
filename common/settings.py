"""Every setting of the product, read once from environment variables (prefix ``SENTISTREAM_``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

LOCAL_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
MODELS_DIR = PROJECT_ROOT / "models"


class Settings(BaseSettings):
    """Frozen settings shared by the launcher, producer, pipeline and app."""

    model_config = SettingsConfigDict(env_prefix="SENTISTREAM_", frozen=True, extra="ignore")

    # --- Kafka connection -------------------------------------------------------------------
    bootstrap_servers: str | None = Field(
        default=None,
        description="Use this existing cluster; when unset the project's local Kafka is used "
        f"({LOCAL_BOOTSTRAP_SERVERS}) and the launcher starts it.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = Field(default=None, description="e.g. PLAIN, SCRAM-SHA-512")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(default=None, description="never shown: not in repr, logs or cache keys")
    ssl_ca_location: str | None = Field(default=None, description="CA bundle file for SSL")

    # --- Topics -----------------------------------------------------------------------------
    topic_posts: str = "posts.raw"
    topic_results: str = "posts.sentiment"
    topic_dead_letters: str = "posts.dead-letters"
    topic_stats: str = "sentiment.stats"
    topic_pipeline_status: str = Field(default="pipeline.status", description="the supervisors' heartbeats (compacted)")
    topic_pipeline_control: str = Field(
        default="pipeline.control", description="the app's instructions to the pipeline: the model to serve (compacted)"
    )
    topic_source_status: str = Field(
        default="sources.status", description="the live sources' states and counters (compacted, key = source name)"
    )
    replication_factor: int | None = Field(
        default=None, ge=1, description="of the project's topics; unset = min(3, brokers in the cluster)"
    )
    posts_partitions: int = Field(default=6, ge=1)
    results_partitions: int = Field(default=6, ge=1)

    # --- Pipeline ---------------------------------------------------------------------------
    consumer_group: str = "sentiment-pipeline"
    processing_guarantee: Literal["at-least-once", "exactly-once"] = "at-least-once"
    transaction_stall_seconds: float = Field(
        default=30.0, gt=0, description="exactly-once: a worker stuck this long in one transaction call restarts"
    )
    # The slowest possible batch (bench/slowest_batch.py: batch_size posts at max_text_chars, one torch thread)
    # took 26 s here; both limits stay well above it.
    max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, description="A worker that does not poll this long leaves its group"
    )
    transaction_timeout_ms: int = Field(
        default=120_000,
        ge=1_000,
        le=900_000,
        description="exactly-once: the broker aborts a transaction open this long (its own cap is 15 min)",
    )
    batch_size: int = Field(default=128, ge=1, description="Most posts gathered into one batch before they are scored")
    model_batch_size: int = Field(
        default=16, ge=1, description="Posts per forward pass: the model sorts a batch by length, then runs these"
    )
    batch_max_wait_ms: int = Field(default=10, ge=1, description="Longest a batch gathers posts before it is scored")
    # At most 100,000: a result (its text JSON-escaped at up to 6 bytes a character) must fit in one message.
    max_text_chars: int = Field(default=5000, ge=1, le=100_000, description="Longer posts are dead-lettered")
    message_max_bytes: int = Field(
        default=1_000_000,
        ge=64 * 1024,
        description="Largest message the project writes (librdkafka message.max.bytes); a topic's lower "
        "max.message.bytes wins",
    )
    poison_crash_limit: int = Field(
        default=3, ge=1, description="A message that crashes a worker this many times is dead-lettered (poison_message)"
    )
    crash_loop_restarts: int = Field(default=3, ge=1, description="Restarts within the window that make a crash loop")
    crash_loop_window_seconds: float = Field(default=300.0, gt=0)
    status_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often the supervisor reports its workers"
    )
    stats_window_seconds: int = Field(default=60, ge=1)
    stats_grace_seconds: int = Field(
        default=10, ge=0, description="How late (event time) a result may arrive and still count in its window"
    )
    state_dir: Path = PROJECT_ROOT / ".local" / "state"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"

    # --- Model ------------------------------------------------------------------------------
    model: str = Field(
        default="auto",
        description="auto (the best model built in models_dir; the pipeline waits for the first), the name of a "
        "model in models_dir, a path to a .pt file, or a Flair pretrained name (sentiment, sentiment-fast). "
        "A choice made in the app (the control topic) overrides it.",
    )
    models_dir: Path = Field(default=MODELS_DIR, description="where the build writes models, cards and progress")
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="intra-op threads of each classifier worker (torch or ONNX Runtime); default: the machine's "
        "cores shared evenly among the workers (on 2 cores, 2 workers x 1 thread outran 1 x 2 on every runtime; "
        "docs/benchmarks/tuning.md)",
    )
    model_quantize: bool = Field(default=False, description="int8 dynamic quantisation of Linear layers (torch)")
    model_runtime: Literal["torch", "onnx", "onnx-int8", "auto"] = Field(
        default="auto",
        description="what runs a .pt model's transformer encoder: torch, ONNX Runtime fp32 or int8 (from the checked "
        "export beside the model; the next one down when that is missing or failed its check), or auto: the fastest "
        "that passed its check (torch when there is no export)",
    )
    # A plain string (not a list) so that as_environment() hands it to child processes as it came.
    model_languages: str = Field(
        default="en",
        pattern=r"^[a-z]{2,8}(,[a-z]{2,8})*$",
        description="the languages the served model reads, as comma-separated primary subtags (en,fr): posts "
        "tagged with another language are dead-lettered (unsupported_language), and live sources skip them",
    )

    # --- Producer and app ---------------------------------------------------------------------
    producer_rate: float = Field(default=20.0, ge=0, description="Posts/s the app's producer starts at")
    producer_autostart: bool = Field(default=False, description="The app starts its producer when first opened")
    dashboard_history_minutes: int = Field(default=15, ge=1, description="How far back the dashboard rewinds at start")
    monitor_interval_seconds: float = Field(default=5.0, gt=0, description="How often the dashboard polls the cluster")
    upload_max_rows: int = Field(default=200_000, ge=1, description="Most posts one uploaded file may hold")

    # --- Live sources (producer/live) ---------------------------------------------------------
    live_languages: str | None = Field(
        default=None,
        description="comma-separated BCP-47 languages a live source sends (posts in another known language are "
        "skipped and counted; unknown language is sent); * = every language; unset = SENTISTREAM_MODEL_LANGUAGES",
    )
    live_checkpoint_seconds: float = Field(
        default=1.0, gt=0, description="how often a live source saves its position (and flushes what it sent)"
    )
    bluesky_jetstream_url: str = Field(
        default="wss://jetstream2.us-east.bsky.network/subscribe", description="a Jetstream instance's subscribe URL"
    )
    bluesky_keywords: str = Field(default="", description="comma-separated; a post must contain one (empty = all)")
    bluesky_accounts: str = Field(default="", description="comma-separated DIDs to follow (empty = everyone)")
    mastodon_instance_url: str = "https://mastodon.social"
    mastodon_streaming_url: str | None = Field(
        default=None, description="the streaming server; unset = the one the instance announces"
    )
    mastodon_timeline: Literal["public", "local", "hashtag", "list"] = "public"
    mastodon_hashtag: str | None = Field(default=None, description="the hashtag of the hashtag timeline, without #")
    mastodon_list_id: str | None = Field(default=None, description="the list of the list timeline (needs a token)")
    mastodon_keywords: str = Field(default="", description="comma-separated; a post must contain one (empty = all)")
    mastodon_access_token: SecretStr | None = Field(
        default=None, description="optional where the instance allows; never shown: not in repr, logs or status"
    )

    # --- Webhook (python -m producer.webhook) ----------------------------------------------
    webhook_host: str = Field(default="127.0.0.1", description="address the webhook server listens on")
    webhook_port: int = Field(default=8600, ge=0, le=65535)
    webhook_token: SecretStr | None = Field(
        default=None, description="if set, POST /posts needs `Authorization: Bearer <token>`; never shown"
    )
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="larger request bodies get 413")
    webhook_max_posts: int = Field(default=1000, ge=1, description="a batch of more posts gets 413")
    webhook_delivery_timeout_seconds: float = Field(
        default=10.0, ge=1, description="longest a request waits for Kafka's acknowledgement before answering 503"
    )
    facebook_app_secret: SecretStr | None = Field(
        default=None, description="signs Facebook's webhook calls (X-Hub-Signature-256); unset = route disabled"
    )
    facebook_verify_token: SecretStr | None = Field(
        default=None, description="the token Facebook echoes when it verifies the webhook subscription"
    )

    # --- Facebook page source (python -m producer --source facebook) ------------------------
    facebook_page_id: str | None = Field(default=None, description="the page whose feed and comments are polled")
    facebook_page_token: SecretStr | None = Field(
        default=None, description="a page access token (pages_read_engagement, pages_read_user_content); never shown"
    )
    facebook_graph_url: str = Field(default="https://graph.facebook.com", description="the Graph API's address")
    facebook_api_version: str = "v24.0"
    facebook_poll_interval_seconds: float = Field(default=60.0, gt=0, description="between two polls of the page")
    facebook_comment_posts: int = Field(
        default=10, ge=0, description="the page's newest posts whose new comments are polled too (0 = no comments)"
    )

    @property
    def model_language_set(self) -> frozenset[str]:
        """``model_languages`` as a set of primary language subtags."""
        return frozenset(self.model_languages.split(","))

    @property
    def uses_local_kafka(self) -> bool:
        return self.bootstrap_servers is None

    @property
    def brokers(self) -> str:
        return self.bootstrap_servers or LOCAL_BOOTSTRAP_SERVERS

    def worker_threads(self, workers: int = 1) -> int:
        """Intra-op threads for each of ``workers`` classifier workers: ``torch_threads``, else cores / workers."""
        return self.torch_threads or max(1, (os.cpu_count() or 1) // workers)

    def as_environment(self) -> dict[str, str]:
        """These settings as the environment variables that reproduce them in a child process."""
        prefix = self.model_config["env_prefix"]
        return {
            f"{prefix}{name.upper()}": value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            for name, value in self.model_dump().items()
            if value is not None
        }

    def child_environment(self) -> dict[str, str]:
        """This process's environment with these settings replacing any SENTISTREAM_* variables."""
        prefix = self.model_config["env_prefix"]
        environment = {key: value for key, value in os.environ.items() if not key.startswith(prefix)}
        return {**environment, **self.as_environment()}

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka settings every client shares: address and security."""
        config = {"bootstrap.servers": self.brokers, "security.protocol": self.security_protocol}
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
        }
        config.update({key: value for key, value in optional.items() if value is not None})
        return config


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
