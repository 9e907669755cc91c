//! detectd: runs Elastic detection rules (KQL `query` and `new_terms`) on a schedule against
//! Elasticsearch or against local CloudTrail files, and writes Kibana-compatible alerts.
//!
//! See ARCHITECTURE.md for the map of modules.

pub mod alerts;
pub mod backend;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dsl;
pub mod ecs;
pub mod engine;
pub mod explain;
pub mod fields;
pub mod generate;
pub mod http;
pub mod hunt;
pub mod kql;
pub mod logging;
pub mod matcher;
pub mod metrics;
pub mod rules;
pub mod scheduler;
pub mod service;
pub mod sync;
pub mod time;
