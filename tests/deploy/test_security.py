"""Security settings reach every Kafka client; no secrets in the repository; the app binds to localhost."""

from __future__ import annotations

import ast
import logging
import re
import subprocess
import tomllib
import uuid
from collections.abc import Iterator

import pytest
import streamlit as st
from quixstreams.kafka.configuration import ConnectionConfig
from streamlit.testing.v1 import AppTest

from common.settings import PROJECT_ROOT, Settings, get_settings
from dashboard import resources
from tests.dashboard.conftest import wait_until

# Product code (tests build their clients from the same settings, but are not shipped).
PRODUCT_CODE = ["app.py", "run.py", "common", "pipeline", "producer", "dashboard", "pages", "sentiment_model", "kafka_local", "bench"]
KAFKA_CLIENTS = {"Producer", "Consumer", "AdminClient", "Application", "SerializingProducer", "DeserializingConsumer"}


def python_files() -> list:
    files = []
    for entry in PRODUCT_CODE:
        path = PROJECT_ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
    return files


def client_constructions() -> list[tuple[str, int, str, str]]:
    """(file, line, client class, source of the enclosing function) of every Kafka client construction."""
    found = []
    for path in python_files():
        source = path.read_text()
        tree = ast.parse(source)
        functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
            if name not in KAFKA_CLIENTS:
                continue
            enclosing = [f for f in functions if f.lineno <= call.lineno <= (f.end_lineno or f.lineno)]
            scope = min(enclosing, key=lambda f: (f.end_lineno or 0) - f.lineno) if enclosing else tree
            # A class's client may be configured in __init__ from a dict built there (PostProducer).
            found.append((str(path.relative_to(PROJECT_ROOT)), call.lineno, name, ast.get_source_segment(source, scope) or source))
    return found


def test_every_kafka_client_is_built_from_the_shared_security_settings() -> None:
    clients = client_constructions()
    assert {name for _, _, name, _ in clients} >= {"Producer", "Consumer", "AdminClient", "Application"}
    missing = [f"{file}:{line} {name}(...)" for file, line, name, scope in clients if "kafka_client_config()" not in scope]
    assert not missing, f"Kafka clients that do not use Settings.kafka_client_config(): {missing}"


def test_quix_keeps_every_security_setting() -> None:
    settings = Settings(
        bootstrap_servers="kafka.example:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc", sasl_password="not-a-real-password", ssl_ca_location="/etc/ssl/ca.pem",
    )
    config = settings.kafka_client_config()
    assert set(config) == {"bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location"}
    through_quix = ConnectionConfig.from_librdkafka_dict(config).as_librdkafka_dict()
    assert {k: str(v).lower() for k, v in through_quix.items()} == {k: v.lower() for k, v in config.items()}


def test_the_app_binds_to_localhost_by_default() -> None:
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] in ("127.0.0.1", "localhost")


SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),  # GitHub token
    re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"),  # Slack token
    # A value, not a type annotation (``sasl_password: SecretStr | None``).
    re.compile(r"""(?i)\b(?:SENTISTREAM_SASL_PASSWORD|sasl[._]password|password)\s*[=:]\s*["']?(?!["'$<{]|\s|$|None\b|SecretStr\b|not-a-real)[^\s"']{6,}"""),
]


def test_no_secrets_in_the_repository() -> None:
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell which files belong to the repository")
    assert not [name for name in listed if re.search(r"(^|/)\.env($|\.)|\.(pem|key|p12|jks|keystore)$", name)]
    hits = []
    for name in listed:
        path = PROJECT_ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000 or name.startswith("tests/deploy/"):
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{name}: {match.group(0)[:40]}" for pattern in SECRET_PATTERNS for match in pattern.finditer(text)]
    assert not hits, f"what looks like secrets: {hits[:10]}"


@pytest.fixture
def password_in_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A SASL password given the way operators give it, and an app with no Kafka to talk to."""
    password = f"pw-{uuid.uuid4().hex}"
    for name, value in {
        "SENTISTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:1", "SENTISTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SENTISTREAM_SASL_MECHANISM": "PLAIN", "SENTISTREAM_SASL_USERNAME": "svc", "SENTISTREAM_SASL_PASSWORD": password,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield password
    st.cache_resource.clear()  # stops the app's background threads
    get_settings.cache_clear()


def test_the_sasl_password_is_in_no_repr_log_line_or_cache_key(
    password_in_environment: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    password = password_in_environment
    settings = get_settings()
    assert settings.kafka_client_config()["sasl.password"] == password  # read, and handed to Kafka clients
    assert password not in repr(settings) and password not in str(settings) and password not in settings.model_dump_json()

    with caplog.at_level(logging.DEBUG):
        app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
        app.run()  # the server's start: settings logged, producer, results feed and cluster monitor created
        assert not app.exception, app.exception
        # The monitor's first poll fails (no Kafka) and says so in the log.
        wait_until(lambda: resources.cluster_monitor().snapshot().error, 30, "the monitor's first poll")
    assert "Dashboard started with Settings(" in caplog.text and "does not answer" in caplog.text and "sasl_password=SecretStr('**********')" in caplog.text
    assert password not in caplog.text
    output = capfd.readouterr()
    assert password not in output.out + output.err  # librdkafka's own log lines included
    # Every server object is cached under the settings' JSON: the password is masked in it.
    assert resources._key() == settings.model_dump_json() and password not in resources._key()
