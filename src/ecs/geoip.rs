//! `source.geo.*` and `source.as.*` from MaxMind-format databases, as the pipeline's two `geoip`
//! processors set them (Elasticsearch's `GeoIpProcessor` with its default City/Country
//! properties, and the ASN database with `asn` and `organization_name`, renamed to
//! `source.as.number` and `source.as.organization.name`).
//!
//! A database's kind is read from its metadata (`database_type`): City and Country databases
//! give `source.geo`, ASN databases `source.as`. An address that is not in a database, or an
//! IPv6 address looked up in an IPv4-only database, adds nothing (the processors'
//! `ignore_missing`/`ignore_failure`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{geoip2, Reader};
use serde_json::Number;

use super::doc::EcsDoc;
use super::json::{Json, Obj};

/// Why a database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("{path}: not a readable MaxMind database: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path}: database type {kind:?} is neither a City/Country nor an ASN database")]
    UnknownType { path: PathBuf, kind: String },
}

/// What a database provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoIpKind {
    /// City or Country: `source.geo.*`.
    Geo,
    /// ASN: `source.as.*`.
    Asn,
}

struct Database {
    path: PathBuf,
    kind: GeoIpKind,
    reader: Reader<Vec<u8>>,
}

/// The configured databases (at most one used per kind: the first given).
#[derive(Default)]
pub struct GeoIp {
    databases: Vec<Database>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.databases.iter().map(|d| (&d.path, d.kind)))
            .finish()
    }
}

impl GeoIp {
    /// Opens each database, reading its kind from the metadata.
    pub fn open(paths: &[PathBuf]) -> Result<GeoIp, GeoIpError> {
        let mut databases = Vec::new();
        for p in paths {
            databases.push(open_one(p)?);
        }
        Ok(GeoIp { databases })
    }

    /// The kinds of data available.
    pub fn kinds(&self) -> Vec<GeoIpKind> {
        let mut k: Vec<GeoIpKind> = Vec::new();
        for d in &self.databases {
            if !k.contains(&d.kind) {
                k.push(d.kind);
            }
        }
        k
    }

    pub fn is_empty(&self) -> bool {
        self.databases.is_empty()
    }

    fn first(&self, kind: GeoIpKind) -> Option<&Reader<Vec<u8>>> {
        self.databases
            .iter()
            .find(|d| d.kind == kind)
            .map(|d| &d.reader)
    }

    /// `source.geo` for an address, as the `geoip` processor builds it; `None` when the
    /// address is not in the database (or the lookup fails).
    pub fn geo(&self, ip: IpAddr) -> Option<Obj> {
        let reader = self.first(GeoIpKind::Geo)?;
        let found = reader.lookup(ip).ok()?;
        let city: geoip2::City = found.decode().ok()??;
        let mut geo = Obj::new();
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                geo.insert(k.to_string(), Json::String(v.to_string()));
            }
        };
        put("continent_name", city.continent.names.english);
        put("country_name", city.country.names.english);
        put("country_iso_code", city.country.iso_code);
        // The most specific subdivision (the last one listed).
        let sub = city.subdivisions.last();
        if let (Some(c), Some(s)) = (city.country.iso_code, sub.and_then(|s| s.iso_code)) {
            put("region_iso_code", Some(&format!("{c}-{s}")));
        }
        put("region_name", sub.and_then(|s| s.names.english));
        put("city_name", city.city.names.english);
        if let (Some(lat), Some(lon)) = (city.location.latitude, city.location.longitude) {
            if let (Some(lat), Some(lon)) = (Number::from_f64(lat), Number::from_f64(lon)) {
                let mut loc = Obj::new();
                loc.insert("lat".into(), Json::Number(lat));
                loc.insert("lon".into(), Json::Number(lon));
                geo.insert("location".into(), Json::Object(loc));
            }
        }
        (!geo.is_empty()).then_some(geo)
    }

    /// `source.as` for an address (`number`, `organization.name`).
    pub fn asn(&self, ip: IpAddr) -> Option<Obj> {
        let reader = self.first(GeoIpKind::Asn)?;
        let found = reader.lookup(ip).ok()?;
        let asn: geoip2::Asn = found.decode().ok()??;
        let mut out = Obj::new();
        if let Some(n) = asn.autonomous_system_number {
            out.insert("number".into(), Json::Number(n.into()));
        }
        if let Some(o) = asn.autonomous_system_organization {
            let mut org = Obj::new();
            org.insert("name".into(), Json::String(o.to_string()));
            out.insert("organization".into(), Json::Object(org));
        }
        (!out.is_empty()).then_some(out)
    }

    /// Adds `source.geo` and `source.as` for `source.ip` (when it is an address).
    pub(crate) fn enrich(&self, doc: &mut EcsDoc) {
        let Some(ip) = doc
            .get("source.ip")
            .and_then(Json::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
        else {
            return;
        };
        if let Some(geo) = self.geo(ip) {
            doc.set("source.geo", Json::Object(geo));
        }
        if let Some(asn) = self.asn(ip) {
            doc.set("source.as", Json::Object(asn));
        }
    }
}

fn open_one(path: &Path) -> Result<Database, GeoIpError> {
    let reader = Reader::open_readfile(path).map_err(|e| GeoIpError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let t = reader.metadata().database_type.clone();
    let kind = if t.contains("ASN") {
        GeoIpKind::Asn
    } else if t.contains("City") || t.contains("Country") {
        GeoIpKind::Geo
    } else {
        return Err(GeoIpError::UnknownType {
            path: path.to_path_buf(),
            kind: t,
        });
    };
    Ok(Database {
        path: path.to_path_buf(),
        kind,
        reader,
    })
}
