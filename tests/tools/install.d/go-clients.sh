#!/usr/bin/env bash
# The Go Kafka clients franz-go and IBM/sarama as peers of tests/compat/test_go_clients.py: the
# module tests/peers/go (go.sum pins every dependency) builds its two scenario programs once into
#     ${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/go-clients-<hash>/{franz,sarama}
# where <hash> digests go.mod, go.sum and every .go file of the module (tests/peers/go_clients.py
# computes the same digest to find them). Go's module and build caches live in the peer cache too
# (go-mod/, go-build/). A finished build holds a .installed marker, so a warm run is a no-op;
# changing a source or go.sum builds anew next to the old one (older go-clients-* directories are
# left for checkouts still using them; delete them freely). When the programs cannot be built this
# prints one line, leaves the reason in .../go-clients-<hash>.unavailable for the tests to skip
# with, and exits 0.
#
#     bash tests/tools/install.d/go-clients.sh      # build (or nothing, when warm)
set -euo pipefail
module="$(cd "$(dirname "$0")/../.." && pwd)/peers/go"
cache="${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}"

# Keep in step with tests/peers/go_clients.py:sources_hash.
sources_hash() {
    (cd "$module" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print \
        | LC_ALL=C sort | xargs -d '\n' sha256sum) | sha256sum | cut -c 1-16
}

hash="$(sources_hash)"
home="$cache/go-clients-$hash"
marker="$home/.installed"
unavailable="$cache/go-clients-$hash.unavailable"
[ -f "$marker" ] && exit 0

give_up() {
    echo "go-clients peer: franz-go and sarama programs unavailable: $1"
    mkdir -p "$cache"
    printf '%s\n' "$1" >"$unavailable"
    exit 0
}

command -v go >/dev/null 2>&1 ||
    give_up "no go on PATH (tests/peers/go needs go $(sed -n 's/^go //p' "$module/go.mod")+)"
mkdir -p "$cache"
staging="$(mktemp -d "$cache/.go-clients-$hash.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
started=$SECONDS
# GOTOOLCHAIN=local: an older go says it is too old instead of fetching a toolchain.
# -mod=readonly: go.sum is the lockfile; nothing is resolved anew.
if ! (cd "$module" && env GOMODCACHE="$cache/go-mod" GOCACHE="$cache/go-build" \
        GOFLAGS="-mod=readonly -modcacherw -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0 \
        nice -n 19 go build -trimpath -ldflags="-s -w" -o "$staging/" ./cmd/franz ./cmd/sarama) \
        >"$staging/build.log" 2>&1; then
    give_up "go build failed: $(grep -m 1 -vE '^(go: downloading|#) ' "$staging/build.log" || true)"
fi
took=$((SECONDS - started))
rm -f "$staging/build.log"
echo "$took" >"$staging/.build-seconds"
go env GOVERSION >"$staging/.installed"
chmod 755 "$staging"
# Publish the whole directory at once; a concurrent run that finished first wins.
if ! mv -T "$staging" "$home" 2>/dev/null; then
    [ -f "$marker" ] || give_up "could not move the build into $home"
fi
rm -f "$unavailable"
echo "go-clients peer: franz and sarama in $home (built in ${took}s)"
