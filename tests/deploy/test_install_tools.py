"""scripts/install-test-tools.sh (``make test`` runs it first): it installs what is missing, and when it cannot,
it says so; under CI it fails the run instead of letting the tests that need the tools skip.

Run as root with ``apt-get`` replaced by a stand-in that fails or installs, on a PATH that holds nothing else.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from common.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "install-test-tools.sh"
TOOLS = ("chromium", "docker-compose")


def executable(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH of its own: ``id`` says root; ``apt-get`` is added by each test."""
    directory = tmp_path / "bin"
    directory.mkdir()
    executable(directory / "id", "echo 0")
    return directory


def run_script(bin_dir: Path, ci: bool) -> subprocess.CompletedProcess:
    env = {"PATH": str(bin_dir), **({"CI": "true"} if ci else {})}
    return subprocess.run(["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("ci", [True, False], ids=["CI", "local"])
def test_tools_that_cannot_be_installed_fail_under_ci_and_are_named_locally(bin_dir: Path, ci: bool) -> None:
    executable(bin_dir / "apt-get", "exit 100")
    result = run_script(bin_dir, ci)
    assert "missing and not installed here; install with: apt-get install -y chromium docker-compose" in result.stderr
    if ci:
        assert result.returncode == 1 and "CI=true" in result.stderr
    else:
        assert result.returncode == 0 and "the tests that need chromium docker-compose will be skipped" in result.stderr


def test_missing_tools_are_installed_and_then_all_is_well(bin_dir: Path) -> None:
    # The stand-in installs what it is asked for into the PATH.
    executable(
        bin_dir / "apt-get",
        f'[ "$1" = install ] && for p in "$@"; do case $p in -*|install) ;; '
        f'*) printf "#!/bin/sh\\n" > {bin_dir}/$p; chmod +x {bin_dir}/$p;; esac; done; exit 0',
    )
    result = run_script(bin_dir, ci=True)
    assert result.returncode == 0, result.stderr
    assert all((bin_dir / tool).exists() for tool in TOOLS) and "error" not in result.stderr


def test_nothing_is_installed_when_nothing_is_missing(bin_dir: Path) -> None:
    for tool in TOOLS:
        executable(bin_dir / tool, "exit 0")
    executable(bin_dir / "apt-get", f"touch {bin_dir}/apt-get-ran; exit 100")
    result = run_script(bin_dir, ci=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not (bin_dir / "apt-get-ran").exists()
