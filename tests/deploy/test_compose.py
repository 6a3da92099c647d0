"""docker-compose.yml and the Dockerfile: valid, wired in the right order, running the project's own code.

This machine has no Docker engine; the file is validated with Compose's own parser (``docker-compose
config``, Debian's ``docker-compose`` package) and its content checked here: every Python service runs
one of the project's entry points with flags it has, every ``SENTISTREAM_*`` variable is a documented
setting, and every published port is bound to the host's loopback.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common.settings import PROJECT_ROOT, Settings
from tests.conftest import require_tool

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
KAFKA_IMAGE = "apache/kafka:4.1.1"
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
PROJECT_IMAGE = "sentistream:local"
# Entry point (the command's start) -> the file that must provide it.
ENTRY_POINTS = {
    ("python", "-m", "common.topics"): "common/topics.py",
    ("python", "-m", "sentiment_model.build"): "sentiment_model/build.py",
    ("python", "-m", "pipeline"): "pipeline/__main__.py",
    ("python", "-m", "producer"): "producer/__main__.py",
    ("python", "-m", "producer.webhook"): "producer/webhook/__main__.py",
    ("streamlit", "run", "app.py"): "app.py",
}


def compose_binary() -> str:
    binary = shutil.which("docker-compose")
    require_tool(
        binary is not None, "docker-compose", "apt-get install -y docker-compose (scripts/install-test-tools.sh)"
    )
    return binary


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def python_services(services: dict[str, dict]) -> dict[str, dict]:
    return {name: service for name, service in services.items() if service.get("image") == PROJECT_IMAGE}


def command_of(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def entry_point_of(command: list[str]) -> tuple[str, ...]:
    return next(entry for entry in ENTRY_POINTS if tuple(command[: len(entry)]) == entry)


# --- Compose's own verdict ----------------------------------------------------------------------------


@pytest.mark.parametrize("profile_args", [[], ["--profile", "producer"]], ids=["default", "producer-profile"])
def test_compose_accepts_the_file(profile_args: list[str]) -> None:
    result = subprocess.run(
        [compose_binary(), "-f", str(COMPOSE_FILE), *profile_args, "config"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SENTISTREAM_")},
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    # docker-compose 1.29 lists profiled services in `config` whatever the profile; Compose v2 does not.
    expected = {*KAFKA_NODES, "topic-init", "model-build", "pipeline", "app", "webhook", "kafka-ui"}
    assert expected <= set(resolved["services"]) <= expected | {"producer"}
    if profile_args:
        assert resolved["services"]["producer"]["profiles"] == ["producer"]
    assert "WARNING" not in result.stderr, result.stderr


# --- Kafka ----------------------------------------------------------------------------------------------


def test_three_kafka_4_nodes_in_kraft_combined_mode_rf3_min_isr_2(services: dict[str, dict]) -> None:
    voters = {f"{n}@kafka-{n}:9093" for n in (1, 2, 3)}
    cluster_ids, node_ids = set(), set()
    for name in KAFKA_NODES:
        node = services[name]
        env = {key: str(value) for key, value in node["environment"].items()}
        assert node["image"] == KAFKA_IMAGE
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        for key in (
            "KAFKA_DEFAULT_REPLICATION_FACTOR",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        ):
            assert env[key] == "3", key
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert f"INTERNAL://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert "healthcheck" in node and "kafka-broker-api-versions" in " ".join(node["healthcheck"]["test"])
        assert any(volume.endswith(":/var/lib/kafka/data") for volume in node["volumes"]), "data survives a restart"
        cluster_ids.add(env["CLUSTER_ID"])
        node_ids.add(env["KAFKA_NODE_ID"])
    assert len(cluster_ids) == 1 and node_ids == {"1", "2", "3"}
    cluster_id = cluster_ids.pop()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), "a Kafka cluster id is 16 bytes, base64url, unpadded"


# --- the project's services -----------------------------------------------------------------------------


def test_every_python_service_runs_one_of_the_projects_entry_points(services: dict[str, dict]) -> None:
    ours = python_services(services)
    assert set(ours) == {"topic-init", "model-build", "pipeline", "app", "webhook", "producer"}
    seen = set()
    for name, service in ours.items():
        command = command_of(service)
        assert any(tuple(command[: len(entry)]) == entry for entry in ENTRY_POINTS), f"{name}: {command}"
        seen.add(entry_point_of(command))
        assert service["build"] in (".", {"context": "."}), f"{name} is built from this repository's Dockerfile"
    assert seen == set(ENTRY_POINTS)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS), ids=lambda entry: " ".join(entry))
def test_each_entry_point_exists_and_has_the_flags_compose_passes(
    entry: tuple[str, ...], services: dict[str, dict]
) -> None:
    path = PROJECT_ROOT / ENTRY_POINTS[entry]
    assert path.exists(), f"{ENTRY_POINTS[entry]} is missing"
    flags = {
        part.split("=", 1)[0]
        for service in python_services(services).values()
        if entry_point_of(command := command_of(service)) == entry
        for part in command
        if part.startswith("--")
    }
    if not flags:
        return
    help_command = ["streamlit", "run", "--help"] if entry[0] == "streamlit" else [sys.executable, *entry[1:], "--help"]
    if entry[0] == "streamlit":
        help_command[0] = str(Path(sys.executable).parent / "streamlit")
    result = subprocess.run(help_command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for flag in flags:
        assert flag in result.stdout, f"{' '.join(entry)} has no {flag}"


def sentistream_variables(services: dict[str, dict]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for service in services.values():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for key, value in environment.items():
            if key.startswith("SENTISTREAM_"):
                found.setdefault(key, set()).add(str(value))
    return found


def test_every_sentistream_variable_is_a_documented_setting_with_a_valid_value(
    services: dict[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = sentistream_variables(services)
    assert {"SENTISTREAM_BOOTSTRAP_SERVERS", "SENTISTREAM_MODEL"} <= set(variables)
    readme = (PROJECT_ROOT / "README.md").read_text()
    for variable, values in variables.items():
        field = variable.removeprefix("SENTISTREAM_").lower()
        assert field in Settings.model_fields, f"{variable} is not a setting (common/settings.py)"
        short = "_" + variable.removeprefix("SENTISTREAM_")
        assert f"`{variable}`" in readme or f"`{short}`" in readme, f"{variable} is not documented in README.md"
        for value in values:
            monkeypatch.setenv(variable, value)
            Settings()  # raises if the value does not parse
            monkeypatch.delenv(variable)


def test_services_start_in_order(services: dict[str, dict]) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name].get("depends_on", {}).items()}

    healthy_kafka = {node: "service_healthy" for node in KAFKA_NODES}
    assert conditions("topic-init") == healthy_kafka, "topics are created once all three nodes serve (replication 3)"
    assert conditions("kafka-ui") == healthy_kafka
    # The pipeline waits for a model by itself: it must not wait for the whole build (the full model's 20 minutes).
    assert conditions("pipeline") == {"topic-init": "service_completed_successfully"}
    assert conditions("model-build") == {"topic-init": "service_completed_successfully"}
    assert conditions("app")["topic-init"] == "service_completed_successfully"
    assert conditions("producer") == {"topic-init": "service_completed_successfully"}
    for one_shot in ("topic-init", "model-build"):
        assert services[one_shot]["restart"] == "no"
    for name in ("pipeline", "app"):
        assert "healthcheck" in services[name], f"{name} has a health check"


def test_the_models_are_built_once_into_a_named_volume_the_pipeline_and_app_read(
    compose: dict, services: dict[str, dict]
) -> None:
    build = command_of(services["model-build"])
    assert build == ["python", "-m", "sentiment_model.build"], "the plan: every missing model, quick first"
    volume_of = {
        name: {v.split(":")[1]: v.split(":")[0] for v in services[name].get("volumes", [])} for name in services
    }
    for name in ("model-build", "pipeline", "app"):
        models_dir = services[name]["environment"]["SENTISTREAM_MODELS_DIR"]
        assert volume_of[name][models_dir] == volume_of["model-build"][models_dir] in compose["volumes"]
        assert services[name]["environment"]["SENTISTREAM_MODEL"] == "auto"
    assert any(v.endswith(":ro") for v in services["pipeline"]["volumes"]), "the pipeline only reads the models"


def test_two_pipeline_replicas(services: dict[str, dict]) -> None:
    assert services["pipeline"]["deploy"]["replicas"] == 2
    assert "container_name" not in services["pipeline"]


def test_the_app_listens_inside_but_is_published_on_localhost_only(services: dict[str, dict]) -> None:
    command = command_of(services["app"])
    assert command[command.index("--server.address") + 1] == "0.0.0.0"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
    assert services["kafka-ui"]["image"].startswith("kafbat/kafka-ui:")
    ui_env = services["kafka-ui"]["environment"]
    assert set(ui_env["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"].split(",")) == {f"{n}:9092" for n in KAFKA_NODES}


def test_the_producer_service_is_behind_a_profile(services: dict[str, dict]) -> None:
    assert services["producer"]["profiles"] == ["producer"]


def test_no_secrets_in_the_compose_file(services: dict[str, dict]) -> None:
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|SASL_JAAS|KEY$", key):
                assert str(value).startswith("${"), f"{name}: {key} holds a literal secret"


def test_the_dockerfile_builds_the_python_services_from_requirements() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"^RUN pip install .*-r requirements\.txt", dockerfile, re.M)
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M), "the services do not run as root"
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".cache", ".local", "models", ".env"):
        assert path in ignored, f".dockerignore must keep {path} out of the image"
