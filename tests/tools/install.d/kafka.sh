#!/usr/bin/env bash
# Apache Kafka's own Java artefacts (the KRaft broker kafka_2.13, kafka-tools, kafka-clients,
# kafka-server-common and their runtime dependencies) as peers of the compatibility tests
# (tests/compat) and the benchmarks: resolved by Maven from tests/peers/maven/pom.xml at its pinned
# kafka.version with strict checksums (-C), every jar then checked against
# tests/peers/maven/kafka.sha256, into
#     ${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/kafka-<version>/lib/*.jar
# (Maven's local repository: .../maven-repository). Nothing of Kafka's lands in the tree.
# A marker holding the digest of the pom and the lockfile makes a warm run a no-op; changing either
# refetches. When the peer cannot be had this prints one line, leaves the reason in
# .../kafka-<version>.unavailable for tests/peers/kafka.py to skip with, and exits 0.
#
#     bash tests/tools/install.d/kafka.sh          # install (or nothing, when warm)
#     bash tests/tools/install.d/kafka.sh --lock   # after changing the pom: rewrite kafka.sha256
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)/peers/maven"
pom="$root/pom.xml"
lock="$root/kafka.sha256"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
cache="${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}"
home="$cache/kafka-$version"
marker="$home/.installed"
unavailable="$cache/kafka-$version.unavailable"
relock=0
[ "${1:-}" = --lock ] && relock=1

stamp() { cat "$pom" "$lock" 2>/dev/null | sha256sum | cut -d' ' -f1; }

if [ "$relock" = 0 ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$(stamp)" ]; then
    exit 0
fi

give_up() {
    echo "kafka peer: Apache Kafka $version unavailable: $1"
    mkdir -p "$cache"
    printf '%s\n' "$1" >"$unavailable"
    exit 0
}

java="java"
[ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ] && java="$JAVA_HOME/bin/java"
command -v "$java" >/dev/null 2>&1 || give_up "no java on PATH (Apache Kafka $version needs Java 17+)"
java_major="$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
[ "${java_major:-0}" -ge 17 ] 2>/dev/null || give_up "java is version ${java_major:-unknown}, Apache Kafka $version needs 17+"
command -v mvn >/dev/null 2>&1 || give_up "no mvn on PATH (Maven resolves Apache Kafka's jars)"
[ "$relock" = 1 ] || [ -f "$lock" ] || give_up "no lockfile $lock (run this script with --lock)"

mkdir -p "$cache"
staging="$(mktemp -d "$cache/.kafka-$version.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
if ! nice -n 19 mvn -B -q -C -Dstyle.color=never -f "$pom" \
        -Dmaven.repo.local="$cache/maven-repository" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$staging/lib" \
        >"$staging/mvn.log" 2>&1; then
    why="$(sed 's/\x1b\[[0-9;]*m//g' "$staging/mvn.log" | grep -m 1 -E '^\[(FATAL|ERROR)\] .*[a-z]' || tail -n 1 "$staging/mvn.log")"
    give_up "Maven could not resolve it: $why"
fi
(cd "$staging/lib" && sha256sum -- *.jar) >"$staging/got.sha256"
if [ "$relock" = 1 ]; then
    cp "$staging/got.sha256" "$lock"
    echo "kafka peer: wrote $lock ($(wc -l <"$lock") jars)"
elif ! cmp -s <(sort -k 2 "$lock") <(sort -k 2 "$staging/got.sha256"); then
    give_up "the resolved jars differ from $lock: $(diff <(sort -k 2 "$lock") <(sort -k 2 "$staging/got.sha256") | grep -m 1 '^[<>]')"
fi

# Swap the new tree in whole; a stale one (an older pom) goes.
old="$(mktemp -d "$cache/.kafka-$version.old.XXXXXX")"
[ -e "$home" ] && mv "$home" "$old/"
mkdir -p "$home"
mv "$staging/lib" "$home/lib"
stamp >"$marker"
rm -rf "$old" "$unavailable"
echo "kafka peer: Apache Kafka $version in $home ($(find "$home/lib" -name '*.jar' | wc -l) jars)"
