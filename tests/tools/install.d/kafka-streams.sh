#!/usr/bin/env bash
# A Kafka Streams application (tests/peers/streams: a word count with exactly_once_v2) as a peer
# of the stream-processing tests (tests/streams): built by Maven from tests/peers/streams/pom.xml
# at its pinned kafka.version with strict checksums (-C), in a copy of that directory (no build
# output lands in the tree), every dependency jar then checked against
# tests/peers/streams/kafka-streams.sha256, into
#     ${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/kafka-streams-<version>/lib/*.jar
# (Maven's local repository: .../maven-repository, shared with kafka.sh).
# A marker holding the digest of the pom, the lockfile and the sources makes a warm run a no-op.
# When the peer cannot be had this prints one line, leaves the reason in
# .../kafka-streams-<version>.unavailable for tests/peers/kafka_streams.py to skip with, and
# exits 0.
#
#     bash tests/tools/install.d/kafka-streams.sh          # build (or nothing, when warm)
#     bash tests/tools/install.d/kafka-streams.sh --lock   # after changing the pom: rewrite the lockfile
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)/peers/streams"
pom="$root/pom.xml"
lock="$root/kafka-streams.sha256"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
cache="${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}"
home="$cache/kafka-streams-$version"
marker="$home/.installed"
unavailable="$cache/kafka-streams-$version.unavailable"
relock=0
[ "${1:-}" = --lock ] && relock=1

stamp() { (cd "$root" && cat pom.xml kafka-streams.sha256 $(find src -type f | sort)) 2>/dev/null | sha256sum | cut -d' ' -f1; }

if [ "$relock" = 0 ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$(stamp)" ]; then
    exit 0
fi

give_up() {
    echo "kafka-streams peer: Kafka Streams $version unavailable: $1"
    mkdir -p "$cache"
    printf '%s\n' "$1" >"$unavailable"
    exit 0
}

java="java"
[ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ] && java="$JAVA_HOME/bin/java"
command -v "$java" >/dev/null 2>&1 || give_up "no java on PATH (Kafka Streams $version needs Java 17+)"
java_major="$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
[ "${java_major:-0}" -ge 17 ] 2>/dev/null || give_up "java is version ${java_major:-unknown}, Kafka Streams $version needs 17+"
command -v mvn >/dev/null 2>&1 || give_up "no mvn on PATH (Maven builds the application)"
command -v javac >/dev/null 2>&1 || give_up "no javac on PATH (a JDK 17+ builds the application)"
[ "$relock" = 1 ] || [ -f "$lock" ] || give_up "no lockfile $lock (run this script with --lock)"

mkdir -p "$cache"
staging="$(mktemp -d "$cache/.kafka-streams-$version.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
cp -r "$root/pom.xml" "$root/src" "$staging/"
if ! nice -n 19 mvn -B -q -C -Dstyle.color=never -f "$staging/pom.xml" \
        -Dmaven.repo.local="$cache/maven-repository" \
        package dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$staging/lib" \
        >"$staging/mvn.log" 2>&1; then
    why="$(sed 's/\x1b\[[0-9;]*m//g' "$staging/mvn.log" | grep -m 1 -E '^\[(FATAL|ERROR)\] .*[a-z]' || tail -n 1 "$staging/mvn.log")"
    give_up "Maven could not build it: $why"
fi
(cd "$staging/lib" && sha256sum -- *.jar) >"$staging/got.sha256"
if [ "$relock" = 1 ]; then
    cp "$staging/got.sha256" "$lock"
    echo "kafka-streams peer: wrote $lock ($(wc -l <"$lock") jars)"
elif ! cmp -s <(sort -k 2 "$lock") <(sort -k 2 "$staging/got.sha256"); then
    give_up "the resolved jars differ from $lock: $(diff <(sort -k 2 "$lock") <(sort -k 2 "$staging/got.sha256") | grep -m 1 '^[<>]')"
fi
# The application's own jar, built from the sources here (not locked: it is ours).
cp "$staging/target/headrace-wordcount-1.jar" "$staging/lib/"

old="$(mktemp -d "$cache/.kafka-streams-$version.old.XXXXXX")"
[ -e "$home" ] && mv "$home" "$old/"
mkdir -p "$home"
mv "$staging/lib" "$home/lib"
stamp >"$marker"
rm -rf "$old" "$unavailable"
echo "kafka-streams peer: Kafka Streams $version application in $home ($(find "$home/lib" -name '*.jar' | wc -l) jars)"
