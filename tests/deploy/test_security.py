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
from tests.waiting import wait_for

# Product code (tests build their clients from the same settings, but are not shipped).
PRODUCT_CODE = [
    "app.py",
    "run.py",
    "common",
    "pipeline",
    "producer",
    "dashboard",
    "pages",
    "sentiment_model",
    "kafka_local",
    "bench",
]
KAFKA_CLIENTS = {"Producer", "Consumer", "AdminClient", "Application", "SerializingProducer", "DeserializingConsumer"}


def python_files() -> list:
    files = []
    for entry in PRODUCT_CODE:
        path = PROJECT_ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
    return files


def uses_kafka_client_config(node: ast.AST) -> bool:
    """``node`` calls ``<something>.kafka_client_config()`` (in code: a comment or a string does not count)."""
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "kafka_client_config"
        for n in ast.walk(node)
    )


def configured_from_settings(call: ast.Call, scope: ast.AST) -> bool:
    """A client's configuration comes from ``kafka_client_config()``: an argument calls it, or is a name the
    enclosing function assigns from an expression that calls it (PostProducer builds ``self.config`` first)."""
    assignments = [node for node in ast.walk(scope) if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value]
    for argument in [*call.args, *(keyword.value for keyword in call.keywords)]:
        if uses_kafka_client_config(argument):
            return True
        name = ast.unparse(argument)
        for node in assignments:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(ast.unparse(target) == name for target in targets) and uses_kafka_client_config(node.value):
                return True
    return False


def client_constructions() -> list[tuple[str, int, str, bool]]:
    """(file, line, client class, configured from the settings?) of every Kafka client construction."""
    found = []
    for path in python_files():
        tree = ast.parse(path.read_text())
        functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
            if name not in KAFKA_CLIENTS:
                continue
            enclosing = [f for f in functions if f.lineno <= call.lineno <= (f.end_lineno or f.lineno)]
            scope = min(enclosing, key=lambda f: (f.end_lineno or 0) - f.lineno) if enclosing else tree
            found.append(
                (str(path.relative_to(PROJECT_ROOT)), call.lineno, name, configured_from_settings(call, scope))
            )
    return found


def test_every_kafka_client_is_built_from_the_shared_security_settings() -> None:
    clients = client_constructions()
    assert {name for _, _, name, _ in clients} >= {"Producer", "Consumer", "AdminClient", "Application"}
    missing = [f"{file}:{line} {name}(...)" for file, line, name, configured in clients if not configured]
    assert not missing, f"Kafka clients not configured from Settings.kafka_client_config(): {missing}"


def test_quix_keeps_every_security_setting() -> None:
    settings = Settings(
        bootstrap_servers="kafka.example:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="not-a-real-password",
        ssl_ca_location="/etc/ssl/ca.pem",
    )
    config = settings.kafka_client_config()
    assert set(config) == {
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
    }
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
    re.compile(
        r"""(?i)\b(?:SENTISTREAM_SASL_PASSWORD|sasl[._]password|password)\s*[=:]\s*["']?(?!["'$<{]|\s|$|None\b|SecretStr\b|not-a-real)[^\s"']{6,}"""
    ),
]


def test_no_secrets_in_the_repository() -> None:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
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
        "SENTISTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "SENTISTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SENTISTREAM_SASL_MECHANISM": "PLAIN",
        "SENTISTREAM_SASL_USERNAME": "svc",
        "SENTISTREAM_SASL_PASSWORD": password,
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
    assert (
        password not in repr(settings) and password not in str(settings) and password not in settings.model_dump_json()
    )

    with caplog.at_level(logging.DEBUG):
        app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
        app.run()  # the server's start: settings logged, producer, results feed and cluster monitor created
        assert not app.exception, app.exception
        # The monitor's first poll fails (no Kafka) and says so in the log.
        wait_for(lambda: resources.cluster_monitor().snapshot().error, 30, "the monitor's first poll")
    assert (
        "Dashboard started with Settings(" in caplog.text
        and "does not answer" in caplog.text
        and "sasl_password=SecretStr('**********')" in caplog.text
    )
    assert password not in caplog.text
    output = capfd.readouterr()
    assert password not in output.out + output.err  # librdkafka's own log lines included
    # Every server object is cached under the settings' JSON: the password is masked in it.
    assert resources._key() == settings.model_dump_json() and password not in resources._key()
