#!/usr/bin/env bash
# All of detectd's tests, the live ones included, on real search engines: for each engine in
# DETECTD_TEST_ENGINES (default "opensearch elasticsearch") it starts a single node on
# 127.0.0.1 from the jars on Maven Central (scripts/search-node.sh), runs the tests with
# DETECTD_ES_URL pointing at it and DETECTD_REQUIRE_LIVE=1 (a live test that cannot reach it
# fails instead of skipping), and stops the node however the tests end. The first engine runs
# the whole suite (`cargo test --locked`); the next ones run the live test binaries again.
# `elasticsearch-esql` is Elasticsearch 8.19.21 with the ES|QL modules (DETECTD_ES_ESQL=1):
# only the live ES|QL test runs there, and it may not skip (DETECTD_REQUIRE_ESQL=1).
#
#   DETECTD_TEST_ENGINES   engines to test against, in order (opensearch, elasticsearch,
#                          elasticsearch-esql)
#   DETECTD_ES_URL         set: test against that cluster only, start no node
set -euo pipefail
cd "$(dirname "$0")/.."

LIVE_TESTS=(--test es_live --test es_live_pipeline --test es_live_esql --test scenarios)
export DETECTD_REQUIRE_LIVE=1

if [[ -n ${DETECTD_ES_URL:-} ]]; then
    echo "live tests against $DETECTD_ES_URL: $(curl -s "$DETECTD_ES_URL/" | tr -d '\n' | cut -c1-300)" >&2
    exec cargo test --locked
fi

trap 'bash scripts/search-node.sh stop >&2 || true' EXIT
first=1
for engine in ${DETECTD_TEST_ENGINES:-opensearch elasticsearch elasticsearch-esql}; do
    if [[ $engine == elasticsearch-esql ]]; then
        DETECTD_ES_URL=$(DETECTD_SEARCH_ENGINE=elasticsearch DETECTD_ES_ESQL=1 bash scripts/search-node.sh start | tail -n1)
    else
        DETECTD_ES_URL=$(DETECTD_SEARCH_ENGINE=$engine bash scripts/search-node.sh start | tail -n1)
    fi
    export DETECTD_ES_URL
    echo "live tests against: $(bash scripts/search-node.sh status) ($engine)" >&2
    if [[ $engine == elasticsearch-esql ]]; then
        DETECTD_REQUIRE_ESQL=1 cargo test --locked --test es_live_esql
    elif [[ $first == 1 ]]; then
        cargo test --locked
        first=0
    else
        cargo test --locked "${LIVE_TESTS[@]}"
    fi
    bash scripts/search-node.sh stop >&2
done
