#!/usr/bin/env bash
# System tools the test suite drives: Chromium (the browser test) and docker-compose (validating
# docker-compose.yml; this machine kind has no Docker engine). Installed from Debian when missing.
# What cannot be installed is named with the command that installs it. Under CI (CI=true) that fails the
# run: the tests needing it must not go missing from a green run. Elsewhere they skip, saying so.
set -uo pipefail
TOOLS=(chromium docker-compose)

missing_tools() {
    local tool
    for tool in "${TOOLS[@]}"; do
        command -v "$tool" >/dev/null || echo "$tool"
    done
}

mapfile -t missing < <(missing_tools)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    sudo=(none)
fi
if [ "${sudo[*]}" != none ]; then
    echo "Installing ${missing[*]} from Debian (once)..."
    "${sudo[@]}" apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    mapfile -t missing < <(missing_tools)
    [ ${#missing[@]} -eq 0 ] && exit 0
fi
echo "error: ${missing[*]} missing and not installed here; install with: apt-get install -y ${missing[*]}" >&2
if [ "${CI:-}" = true ]; then
    echo "CI=true: the browser test and the compose check must run, so this run stops here" >&2
    exit 1
fi
echo "note: the tests that need ${missing[*]} will be skipped" >&2
exit 0
