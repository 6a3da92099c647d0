"""A real Apache Kafka cluster (KRaft, combined broker+controller nodes) run from Maven-resolved jars.

Layout under ``home``::

    cluster.json            node count, ports and the cluster id (remembered across stop/start)
    log4j2.properties
    node-<id>/server.properties, node-<id>/data/, node-<id>/kafka.log, node-<id>/pid
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

POM = Path(__file__).resolve().parent / "pom.xml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
JVM_OPTIONS = [
    "-Xms256M",
    "-Xmx768M",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]
LOG4J2_PROPERTIES = """\
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class KafkaLauncherError(RuntimeError):
    """A problem the person running the launcher can act on; the message says what to do."""


@dataclass(frozen=True)
class ClusterSpec:
    nodes: int
    base_port: int
    cluster_id: str

    def broker_port(self, node_id: int) -> int:
        return self.base_port + node_id - 1

    def controller_port(self, node_id: int) -> int:
        return self.base_port + 100 + node_id - 1

    @property
    def node_ids(self) -> range:
        return range(1, self.nodes + 1)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{self.broker_port(n)}" for n in self.node_ids)


def new_cluster_id() -> str:
    """URL-safe base64 of 16 random bytes, unpadded, never starting with '-' (Kafka's rule)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def check_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaLauncherError(
            "Java is not installed: Kafka 4 needs Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless)."
        )
    output = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < 17:
        raise KafkaLauncherError(f"Java {major or '?'} found at {java}; Kafka 4 needs Java 17 or newer.")
    return java


def fetch_jars(libs: Path) -> Path:
    """Resolve the broker jars from Maven Central into ``libs`` (once; a marker records success)."""
    marker = libs / ".complete"
    if marker.exists() and marker.read_text() == POM.read_text():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLauncherError("Maven is not installed: it fetches the Kafka jars (Debian: apt-get install maven).")
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    logger.info("Resolving Apache Kafka jars from Maven Central into %s", libs)
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise KafkaLauncherError(f"Maven could not resolve the Kafka jars:\n{(result.stdout + result.stderr)[-3000:]}")
    marker.write_text(POM.read_text())
    return libs


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class LocalCluster:
    """Start, stop and inspect the project's local Kafka nodes."""

    def __init__(self, home: Path, libs: Path):
        self.home = home
        self.libs = libs

    # --- state -----------------------------------------------------------------------------
    @property
    def _spec_file(self) -> Path:
        return self.home / "cluster.json"

    def spec(self) -> ClusterSpec | None:
        if not self._spec_file.exists():
            return None
        return ClusterSpec(**json.loads(self._spec_file.read_text()))

    def node_dir(self, node_id: int) -> Path:
        return self.home / f"node-{node_id}"

    def log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "kafka.log"

    def pid(self, node_id: int) -> int | None:
        """The node's process id if it is running (the pid file also holds its start time, against pid reuse)."""
        pid_file = self.node_dir(node_id) / "pid"
        if not pid_file.exists():
            return None
        pid, started = (int(part) for part in pid_file.read_text().split())
        return pid if _alive(pid) and _start_time(pid) == started else None

    def running_nodes(self) -> list[int]:
        spec = self.spec()
        return [n for n in spec.node_ids if self.pid(n)] if spec else []

    # --- configuration -----------------------------------------------------------------------
    def configure(self, nodes: int, base_port: int) -> ClusterSpec:
        """Write node configs; keep the cluster id (and so the data) of an existing cluster."""
        existing = self.spec()
        if existing and (existing.nodes != nodes or existing.base_port != base_port):
            raise KafkaLauncherError(
                f"{self.home} holds a {existing.nodes}-node cluster on port {existing.base_port}; "
                f"asked for {nodes} node(s) on port {base_port}. Use another --home, or `reset` to delete it."
            )
        spec = existing or ClusterSpec(nodes=nodes, base_port=base_port, cluster_id=new_cluster_id())
        self.home.mkdir(parents=True, exist_ok=True)
        self._spec_file.write_text(json.dumps(asdict(spec), indent=2))
        (self.home / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        for node_id in spec.node_ids:
            self.node_dir(node_id).mkdir(exist_ok=True)
            (self.node_dir(node_id) / "server.properties").write_text(self._node_properties(spec, node_id))
        return spec

    def _node_properties(self, spec: ClusterSpec, node_id: int) -> str:
        replicas = min(3, spec.nodes)
        min_isr = 2 if spec.nodes >= 3 else 1
        properties = {
            "process.roles": "broker,controller",
            "node.id": node_id,
            "listeners": f"PLAINTEXT://127.0.0.1:{spec.broker_port(node_id)},"
            f"CONTROLLER://127.0.0.1:{spec.controller_port(node_id)}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{spec.broker_port(node_id)}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.node_dir(node_id) / "data",
            "num.partitions": 1,
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
            # The cleaner's 128 MiB default dedupe buffer is wasted on a laptop-sized box.
            "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
            "log.retention.hours": 168,
        }
        if spec.nodes == 1:
            properties["controller.quorum.bootstrap.servers"] = f"127.0.0.1:{spec.controller_port(node_id)}"
        else:
            properties["controller.quorum.voters"] = ",".join(
                f"{n}@127.0.0.1:{spec.controller_port(n)}" for n in spec.node_ids
            )
        return "".join(f"{key}={value}\n" for key, value in properties.items())

    def _java_command(self, java: str, main: str, *args: str) -> list[str]:
        log4j = f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}"
        return [java, *JVM_OPTIONS, log4j, "-cp", f"{self.libs}/*", main, *args]

    def _format(self, java: str, spec: ClusterSpec, node_id: int) -> None:
        if (self.node_dir(node_id) / "data" / "meta.properties").exists():
            return
        args = ["format", "-t", spec.cluster_id, "-c", str(self.node_dir(node_id) / "server.properties"), "-g"]
        if spec.nodes == 1:
            args.append("--standalone")
        result = subprocess.run(
            self._java_command(java, "kafka.tools.StorageTool", *args), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise KafkaLauncherError(f"Formatting node {node_id} failed:\n{(result.stdout + result.stderr)[-3000:]}")

    # --- lifecycle -----------------------------------------------------------------------------
    def start(
        self, nodes: int = 1, base_port: int = 9092, timeout: float = 90.0, only: list[int] | None = None
    ) -> ClusterSpec:
        """Start the cluster's nodes (or just ``only``) and wait until every started node serves."""
        java = check_java()
        fetch_jars(self.libs)
        spec = self.configure(nodes, base_port)
        wanted = only or list(spec.node_ids)
        to_start = [n for n in wanted if not self.pid(n)]
        for node_id in to_start:
            for port in (spec.broker_port(node_id), spec.controller_port(node_id)):
                if not port_is_free(port):
                    raise KafkaLauncherError(
                        f"Port {port} on 127.0.0.1 is already taken, so Kafka node {node_id} cannot listen on it. "
                        f"Stop whatever uses it (`ss -ltnp 'sport = :{port}'` shows it) or pick another --port."
                    )
        for node_id in to_start:
            self._format(java, spec, node_id)
        for node_id in to_start:
            log = open(self.log_file(node_id), "ab")  # noqa: SIM115 - the broker process writes to it for its life
            process = subprocess.Popen(
                self._java_command(java, "kafka.Kafka", str(self.node_dir(node_id) / "server.properties")),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            (self.node_dir(node_id) / "pid").write_text(f"{process.pid} {_start_time(process.pid)}")
            logger.info("Started Kafka node %d (pid %d), log: %s", node_id, process.pid, self.log_file(node_id))
        self.wait_until_serving(spec, wanted, timeout)
        return spec

    def wait_until_serving(self, spec: ClusterSpec, node_ids: list[int], timeout: float) -> None:
        # The PLAINTEXT port opens only once the broker is unfenced and serving.
        deadline = time.monotonic() + timeout
        pending = list(node_ids)
        while pending:
            pending = [n for n in pending if not port_accepts(spec.broker_port(n))]
            dead = [n for n in pending if not self.pid(n)]
            if dead or (pending and time.monotonic() > deadline):
                node_id = (dead or pending)[0]
                why = "exited" if dead else f"did not serve within {timeout:.0f} s"
                raise KafkaLauncherError(
                    f"Kafka node {node_id} {why}. Last lines of {self.log_file(node_id)}:\n{self.tail(node_id)}"
                )
            if pending:
                time.sleep(0.25)

    def stop(self, only: list[int] | None = None, kill: bool = False, timeout: float = 60.0) -> list[int]:
        """SIGTERM (controlled shutdown) or SIGKILL the running nodes; returns the ids stopped."""
        spec = self.spec()
        if spec is None:
            return []
        targets = [n for n in (only or spec.node_ids) if self.pid(n)]
        pids = {n: self.pid(n) for n in targets}
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node_id, pid in pids.items():
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                logger.warning("Node %d ignored SIGTERM for %.0f s; killing it", node_id, timeout)
                os.kill(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.1)
            (self.node_dir(node_id) / "pid").unlink(missing_ok=True)
        return targets

    def reset(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def tail(self, node_id: int, lines: int = 40) -> str:
        log = self.log_file(node_id)
        if not log.exists():
            return "(no log yet)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Our child may linger as a zombie until reaped; that counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True
