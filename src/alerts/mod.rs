//! Alert documents: Kibana alerts-as-data fields and deterministic ids.
