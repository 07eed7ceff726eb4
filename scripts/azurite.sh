#!/usr/bin/env bash
# Installs Azurite (the Azure Storage emulator, npm package azurite) under .tools/azurite in the
# repository, once, and prints the path of azurite-blob. The blobio tests find it there (or
# through ENCFS_AZURITE_BIN); .ci/run calls this before running the tests.
#
#   scripts/azurite.sh           install if missing, print the binary path
#   scripts/azurite.sh --start   also start it on 127.0.0.1:${AZURITE_PORT:-10000} in the foreground
set -euo pipefail

AZURITE_VERSION="3.35.0"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$REPO/.tools/azurite"
BIN="$PREFIX/node_modules/.bin/azurite-blob"

if [[ ! -x "$BIN" ]]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "azurite.sh: npm is missing; install Node.js and npm (Debian: apt-get install -y nodejs npm)" >&2
		exit 1
	fi
	echo "azurite.sh: installing azurite@$AZURITE_VERSION into $PREFIX" >&2
	mkdir -p "$PREFIX"
	# keep the installed tools out of git without touching the repository's .gitignore
	printf '*\n' >"$REPO/.tools/.gitignore"
	npm install --no-audit --no-fund --silent --prefix "$PREFIX" "azurite@$AZURITE_VERSION" >&2
fi
if [[ ! -x "$BIN" ]]; then
	echo "azurite.sh: $BIN is missing after npm install" >&2
	exit 1
fi

if [[ "${1:-}" == "--start" ]]; then
	# In-memory persistence excludes --location; run in a scratch directory for anything else.
	DATA="$(mktemp -d)"
	cd "$DATA"
	"$BIN" --blobHost 127.0.0.1 --blobPort "${AZURITE_PORT:-10000}" \
		--silent --disableTelemetry --skipApiVersionCheck --inMemoryPersistence &
	pid=$!
	trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$DATA"' EXIT
	trap 'exit 0' INT TERM
	wait "$pid"
	exit
fi
echo "$BIN"
