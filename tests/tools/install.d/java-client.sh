#!/usr/bin/env bash
# The Java client's scenario program (tests/peers/java: kafka-clients producer, consumer and
# admin) as a peer of tests/compat/test_java_client.py: Maven compiles it, with strict checksums
# (-C) and the peers' local repository ${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/
# maven-repository (so offline after the first fetch; kafka.version is the one the Kafka tools'
# peer pins), into
#     ${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/java-client-<hash>/{classes,classpath.txt}
# where <hash> digests pom.xml and every .java file (tests/peers/java_client.py computes the same
# digest to find it). Nothing is built in the tree. A finished build holds a .installed marker, so
# a warm run is a no-op. When it cannot be built this prints one line, leaves the reason in
# .../java-client-<hash>.unavailable for the tests to skip with, and exits 0.
#
#     bash tests/tools/install.d/java-client.sh     # build (or nothing, when warm)
set -euo pipefail
project="$(cd "$(dirname "$0")/../.." && pwd)/peers/java"
cache="${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}"

# Keep in step with tests/peers/java_client.py:sources_hash.
sources_hash() {
    (cd "$project" && find . -type f \( -name '*.java' -o -name pom.xml \) -print \
        | LC_ALL=C sort | xargs -d '\n' sha256sum) | sha256sum | cut -c 1-16
}

hash="$(sources_hash)"
home="$cache/java-client-$hash"
marker="$home/.installed"
unavailable="$cache/java-client-$hash.unavailable"
[ -f "$marker" ] && exit 0

give_up() {
    echo "java client peer: not built: $1"
    mkdir -p "$cache"
    printf '%s\n' "$1" >"$unavailable"
    exit 0
}

command -v java >/dev/null 2>&1 || give_up "no java on PATH (the Java client needs Java 17+)"
command -v mvn >/dev/null 2>&1 || give_up "no mvn on PATH (Maven builds tests/peers/java)"
mkdir -p "$cache"
staging="$(mktemp -d "$cache/.java-client-$hash.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
if ! nice -n 19 mvn -B -q -C -Dstyle.color=never -f "$project/pom.xml" \
        -Dmaven.repo.local="$cache/maven-repository" -Dpeer.build.directory="$staging/build" \
        compile dependency:build-classpath -Dmdep.includeScope=runtime \
        -Dmdep.outputFile="$staging/build/classpath.txt" >"$staging/mvn.log" 2>&1; then
    why="$(sed 's/\x1b\[[0-9;]*m//g' "$staging/mvn.log" | grep -m 1 -E '^\[(FATAL|ERROR)\] .*[a-z]' || tail -n 1 "$staging/mvn.log")"
    give_up "Maven failed: $why"
fi
rm -rf "$home"
mkdir -p "$home"
mv "$staging/build/classes" "$home/classes"
mv "$staging/build/classpath.txt" "$home/classpath.txt"
touch "$marker"
rm -f "$unavailable"
echo "java client peer: built in $home"
