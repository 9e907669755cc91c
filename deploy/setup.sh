#!/usr/bin/env bash
# One-shot setup for docker-compose.yml: waits for Elasticsearch, sets the kibana_system
# password, creates detectd's least-privilege role and user, loads the sample CloudTrail into
# logs-aws.cloudtrail-default (as ECS, with the integration's mappings), and imports the
# Kibana saved objects once Kibana is up.
set -euo pipefail
: "${ES_URL:?}" "${KIBANA_URL:?}" "${ELASTIC_PASSWORD:?}" "${KIBANA_PASSWORD:?}" "${DETECTD_PASSWORD:?}"
auth=(-u "elastic:${ELASTIC_PASSWORD}")
es() { curl -fsS "${auth[@]}" -H 'Content-Type: application/json' "$@"; }

echo "waiting for Elasticsearch at ${ES_URL}"
until es "${ES_URL}/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null 2>&1; do sleep 3; done

echo "setting the kibana_system password"
es -X POST "${ES_URL}/_security/user/kibana_system/_password" -d "{\"password\":\"${KIBANA_PASSWORD}\"}" >/dev/null

echo "creating role and user detectd (read sources; write alerts, state, executions)"
es -X PUT "${ES_URL}/_security/role/detectd" -d '{
  "cluster": ["monitor", "manage_index_templates"],
  "indices": [
    {"names": ["filebeat-*", "logs-aws*"], "privileges": ["read", "view_index_metadata"]},
    {"names": ["detectd-alerts-*", "detectd-state*", "detectd-executions*"],
     "privileges": ["read", "write", "create_index", "view_index_metadata", "manage"]}
  ]
}' >/dev/null
es -X PUT "${ES_URL}/_security/user/detectd" -d "{\"password\":\"${DETECTD_PASSWORD}\",\"roles\":[\"detectd\"]}" >/dev/null

echo "loading the sample CloudTrail into logs-aws.cloudtrail-default"
DETECTD__ELASTICSEARCH__URLS="${ES_URL}" DETECTD__ELASTICSEARCH__USERNAME=elastic \
DETECTD__ELASTICSEARCH__PASSWORD="${ELASTIC_PASSWORD}" \
  detectd --config /etc/detectd/config.toml ingest /usr/share/detectd/sample --index logs-aws.cloudtrail-default

echo "waiting for Kibana at ${KIBANA_URL}"
until curl -fsS "${auth[@]}" "${KIBANA_URL}/api/status" >/dev/null 2>&1; do sleep 5; done
echo "importing Kibana saved objects"
curl -fsS "${auth[@]}" -X POST -H 'kbn-xsrf: true' \
  "${KIBANA_URL}/api/saved_objects/_import?overwrite=true" \
  --form file=@/usr/share/detectd/kibana/saved_objects.ndjson >/dev/null
echo "setup done"
