#!/usr/bin/env bash
# System tools the test suite drives: Chromium (the browser test) and docker-compose (validating
# docker-compose.yml; this machine kind has no Docker engine). Installed from Debian when missing.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "note: ${missing[*]} missing and no root to install them; the tests that need them will be skipped" >&2
    exit 0
fi
echo "Installing ${missing[*]} from Debian (once)..."
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
