#!/usr/bin/env bash
# All of detectd's tests, the live ones included: starts a real single-node search engine on
# 127.0.0.1 from Maven Central (scripts/search-node.sh), runs `cargo test --locked` with
# DETECTD_ES_URL pointing at it and DETECTD_REQUIRE_LIVE=1 (a live test that cannot reach it
# fails instead of skipping), and stops the node however the tests end.
#
#   DETECTD_SEARCH_ENGINE   opensearch (default) | elasticsearch: the engine to start. The
#                           Elasticsearch node built from the published jars has no painless
#                           and no bucket_selector (their modules are not published), which
#                           new_terms needs; OpenSearch has every module detectd uses.
#   DETECTD_ES_URL          set: use that cluster instead of starting a node.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${DETECTD_ES_URL:-} ]]; then
    export DETECTD_SEARCH_ENGINE=${DETECTD_SEARCH_ENGINE:-opensearch}
    trap 'bash scripts/search-node.sh stop >&2 || true' EXIT
    DETECTD_ES_URL=$(bash scripts/search-node.sh start | tail -n1)
    export DETECTD_ES_URL
fi
echo "live tests against: $(bash scripts/search-node.sh status 2>/dev/null || echo "$DETECTD_ES_URL")" >&2
curl -s "$DETECTD_ES_URL/" >&2 || true
export DETECTD_REQUIRE_LIVE=1
cargo test --locked
