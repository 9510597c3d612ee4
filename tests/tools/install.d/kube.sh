#!/usr/bin/env bash
# Kubernetes' own control plane and Helm as peers of tests/kube, built from their published Go modules
# (no container engine runs here, so kind cannot): from tests/peers/kube/go.mod (k8s.io/kubernetes at
# a pinned release, its staging modules replaced by the matching v0.X.Y tags) kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl into
#     ${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/kube-<version>/bin/
# and from tests/peers/helm/go.mod Helm v4's command line into .../helm-<version>/bin/helm.
# go.sum pins every module; Go's module and build caches live in the peer cache too (go-mod/,
# go-build/). A marker holding the digest of go.mod and go.sum makes a warm run a no-op (well under
# a second); changing either rebuilds. A cold build compiles Kubernetes: many minutes on two cores
# (it runs under nice). When a peer cannot be had this prints one line, leaves the reason in
# .../kube-<version>.unavailable (or helm-<version>.unavailable) for tests/peers/kube.py to skip
# with, and exits 0.
#
#     bash tests/tools/install.d/kube.sh      # build (or nothing, when warm)
set -euo pipefail
peers="$(cd "$(dirname "$0")/../.." && pwd)/peers"
cache="${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}"

# The version go.mod requires of a module (a one-line require or a line of a require block).
required() { sed -n -E "s:^(require )?[[:space:]]*$1 (v[^ ]+)( //.*)?\$:\2:p" "$2" | head -n 1; }

kube_version="$(required k8s.io/kubernetes "$peers/kube/go.mod")"
helm_version="$(required helm.sh/helm/v4 "$peers/helm/go.mod")"
if [ -z "$kube_version" ] || [ -z "$helm_version" ]; then
    echo "kube peer: unavailable: tests/peers/{kube,helm}/go.mod name no k8s.io/kubernetes or helm.sh/helm/v4 version"
    exit 0
fi

# What .installed holds (tests/peers/kube.py compares it too): sha256 of go.mod followed by go.sum.
stamp() { cat "$1/go.mod" "$1/go.sum" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# The build in progress (a directory beside its final place), gone if this script is interrupted.
staging=""
trap 'if [ -n "$staging" ]; then rm -rf "$staging"; fi' EXIT

# build NAME VERSION MODULE_DIR LDFLAGS PACKAGE...: one peer into $cache/NAME-VERSION/bin.
build() {
    local name="$1" version="$2" module="$3" ldflags="$4"
    shift 4
    local home="$cache/$name-$version"
    local marker="$home/.installed" unavailable="$cache/$name-$version.unavailable"
    if [ -f "$marker" ] && [ "$(cat "$marker")" = "$(stamp "$module")" ]; then
        return 0
    fi
    give_up() {
        echo "$name peer: $name $version unavailable: $1"
        mkdir -p "$cache"
        printf '%s\n' "$1" >"$unavailable"
    }
    if ! command -v go >/dev/null 2>&1; then
        give_up "no go on PATH (it is built from Go modules; needs $(sed -n 's/^go //p' "$module/go.mod")+)"
        return 0
    fi
    mkdir -p "$cache"
    staging="$(mktemp -d "$cache/.$name-$version.XXXXXX")"
    local started=$SECONDS
    # GOTOOLCHAIN=local: an older go reports it is too old instead of fetching a toolchain.
    # -mod=readonly: go.sum is the lockfile; nothing is resolved anew.
    if ! (cd "$module" && env GOMODCACHE="$cache/go-mod" GOCACHE="$cache/go-build" \
            GOFLAGS="-mod=readonly -modcacherw -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0 \
            nice -n 19 go build -trimpath -ldflags="-s -w $ldflags" -o "$staging/bin/" "$@") \
            >"$staging/build.log" 2>&1; then
        mv "$staging/build.log" "$cache/$name-$version.build.log"
        give_up "go build failed ($cache/$name-$version.build.log): $(grep -m 1 -vE '^(go: downloading|#) ' "$cache/$name-$version.build.log" || true)"
        rm -rf "$staging"
        staging=""
        return 0
    fi
    local took=$((SECONDS - started))
    local old
    old="$(mktemp -d "$cache/.$name-$version.old.XXXXXX")"
    [ -e "$home" ] && mv "$home" "$old/"
    mkdir -p "$home"
    mv "$staging/bin" "$home/bin"
    echo "$took" >"$home/.build-seconds"
    stamp "$module" >"$marker"
    rm -rf "$old" "$staging" "$unavailable" "$cache/$name-$version.build.log"
    staging=""
    echo "$name peer: $name $version in $home/bin ($(ls "$home/bin" | tr '\n' ' ')built in ${took}s)"
}

# The version stamps `make` would set (hack/lib/version.sh; helm's Makefile): the apiserver derives
# its binary and emulation version from them, kubectl and helm print them.
kube_ldflags=""
kube_minor="$(echo "$kube_version" | cut -d. -f2)"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
    kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
build kube "$kube_version" "$peers/kube" "$kube_ldflags" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
build helm "$helm_version" "$peers/helm" \
    "-X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    helm.sh/helm/v4/cmd/helm
