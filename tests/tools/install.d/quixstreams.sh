#!/usr/bin/env bash
# Quix Streams, the stream processor of tests/streams, at a pinned version. Its metadata pins
# confluent-kafka < 2.13, which would downgrade the client every other test runs against, so it
# is installed without its own requirement list and its other requirements are named here
# (none of them pins confluent-kafka). Skipped when that version is already installed.
set -euo pipefail
version=3.28.1
if python -c "import importlib.metadata as m, sys; sys.exit(m.version('quixstreams') != '$version')" 2>/dev/null; then
    exit 0
fi
python -m pip install -q "httpx>=0.28.1" "jsonlines>=4,<5" "jsonpath-ng>=1.7,<2" "jsonschema>=4.3" \
    "orjson>=3.9,<4" "pydantic>=2.7,<2.14" "pydantic-settings>=2.3,<2.16" "rich>=13,<16" \
    "rocksdict>=0.3,<0.4" "typing-extensions>=4.8"
python -m pip install -q --no-deps "quixstreams==$version"
