//! The recorded Elasticsearch 7.10 exchanges of `../shared/data/es-fixtures/` (`NNN-name.json`:
//! `{"request": ..., "status": ..., "response": ...}`), for mock-HTTP tests.

use std::time::Duration;

use detectd::backend::elasticsearch::{ElasticsearchBackend, RetryPolicy};
use detectd::config::{AlertsConfig, ElasticsearchConfig};
use serde_json::Value;
use wiremock::ResponseTemplate;

/// A recorded exchange by its number (`"027"`), `None` when the reference data is absent.
pub fn fixture(num: &str) -> Option<Value> {
    let dir = super::shared_data("es-fixtures")?;
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{num}-"))
        })
        .unwrap_or_else(|| panic!("fixture {num} missing"));
    Some(serde_json::from_str(&std::fs::read_to_string(entry).unwrap()).unwrap())
}

/// All fixtures a test needs, or `None` (skip) when the data is absent.
pub fn fixtures(nums: &[&str]) -> Option<Vec<Value>> {
    nums.iter().map(|n| fixture(n)).collect()
}

/// The recorded answer of an exchange.
pub fn reply(fx: &Value) -> ResponseTemplate {
    ResponseTemplate::new(fx["status"].as_u64().unwrap() as u16)
        .set_body_json(fx["response"].clone())
}

/// The Elasticsearch backend of a mock server at `uri`: `timeout_secs` per request, `retries`
/// after a first attempt with a 1 ms first backoff.
pub fn mock_backend(uri: &str, timeout_secs: u64, retries: u32) -> ElasticsearchBackend {
    let es = ElasticsearchConfig {
        urls: vec![uri.to_string()],
        timeout_secs,
        ..ElasticsearchConfig::default()
    };
    ElasticsearchBackend::new(&es, &AlertsConfig::default())
        .unwrap()
        .with_retry(RetryPolicy {
            retries,
            base_delay: Duration::from_millis(1),
        })
}
