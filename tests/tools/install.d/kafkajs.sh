#!/usr/bin/env bash
# KafkaJS as a peer of tests/transactions/test_kafkajs.py: `npm ci` of tests/peers/kafkajs (its
# package-lock.json pins the version) into
#     ${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/kafkajs-<hash>/node_modules
# where <hash> is the first 16 hex digits of the lock file's sha256 (the test computes the same).
# A finished install holds a .installed marker, so a warm run is a no-op. Without node/npm this
# prints one line and exits 0 (the test then skips).
set -euo pipefail
peer="$(cd "$(dirname "$0")/../.." && pwd)/peers/kafkajs"
cache="${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}"
hash="$(sha256sum "$peer/package-lock.json" | cut -c 1-16)"
home="$cache/kafkajs-$hash"
[ -f "$home/.installed" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
    echo "kafkajs peer: no npm on PATH; tests/transactions/test_kafkajs.py will skip"
    exit 0
fi
mkdir -p "$cache"
staging="$(mktemp -d "$cache/.kafkajs-$hash.XXXXXX")"
cp "$peer/package.json" "$peer/package-lock.json" "$staging/"
(cd "$staging" && npm ci --no-audit --no-fund --silent)
touch "$staging/.installed"
rm -rf "$home"
mv "$staging" "$home"
