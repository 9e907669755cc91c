//! CloudTrail to ECS: reading raw CloudTrail files and normalising records as Elastic's aws integration does.

pub mod categories;
pub mod doc;
pub mod entity;
pub mod geoip;
pub mod javamap;
pub mod json;
pub mod normalize;
pub mod reader;
pub mod split;

pub use doc::EcsDoc;
pub use normalize::{normalize, normalize_owned, normalize_str, NormalizeError, NormalizeOptions};
pub use reader::{read_file, read_paths, Document, ReadError, ReadSummary};

/// The default normalisation (the integration's defaults, data stream constants) with the
/// given MaxMind databases opened (none: no `source.geo` / `source.as`).
pub fn options_with_geoip(
    databases: &[std::path::PathBuf],
) -> Result<NormalizeOptions, geoip::GeoIpError> {
    let mut opts = NormalizeOptions::default();
    if !databases.is_empty() {
        let g = geoip::GeoIp::open(databases)?;
        tracing::info!(databases = ?g, "GeoIP databases opened");
        opts.geoip = Some(std::sync::Arc::new(g));
    }
    Ok(opts)
}
