//! One raw CloudTrail record to one ECS document, processor by processor as the aws integration's
//! `cloudtrail` ingest pipeline (`default.yml`, generation 0b97ab02) does it.
//!
//! The record is parsed once; values are moved (not copied) from the record into the document.
//! The `Map.toString()` strings are rendered from the unpruned record (a Java `HashMap`'s capacity
//! depends on how many keys it was parsed with), everything else from the pruned record.

use std::net::IpAddr;
use std::sync::Arc;

use super::json::{segments, split_last, Json, Obj};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use super::categories;
use super::doc::{EcsDoc, Node};
use super::entity::{self, lookup};
use super::geoip::GeoIp;
use super::javamap::{is_removed, java_key_order, java_to_string, prune_map};

/// Why a record could not be normalised.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NormalizeError {
    #[error("invalid json: {0}")]
    Json(String),
    #[error("record is a json {0}, not an object")]
    NotAnObject(&'static str),
    #[error("not a cloudtrail record: no eventTime (nor digestEndTime)")]
    NotCloudTrail,
}

/// Per-data-stream settings the pipeline reads from the document (the integration's
/// configuration and Filebeat's fields).
#[derive(Debug, Clone)]
pub struct NormalizeOptions {
    /// `_conf.retain`: `None` (the integration's default) keeps the `*_parameters` strings and
    /// `aws.cloudtrail.flattened`; `all`, `keyword`, `flattened`, `minimal`, `none` as the pipeline.
    pub retain: Option<String>,
    /// `tags` of the incoming document; `actor_target_mapping` turns on the entity fields.
    pub tags: Vec<String>,
    /// `@timestamp` of the incoming document (Filebeat's read time), copied to `event.created`.
    pub event_created: Option<String>,
    /// Add `event.dataset`, `event.module`, `data_stream.*` (constant_keyword values of the
    /// data stream, not set by the pipeline).
    pub data_stream: bool,
    /// MaxMind databases for `source.geo` / `source.as` (absent without them).
    pub geoip: Option<Arc<GeoIp>>,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions {
            retain: None,
            tags: vec!["actor_target_mapping".to_string()],
            event_created: None,
            data_stream: true,
            geoip: None,
        }
    }
}

/// Normalises one raw record given as text (the text is kept as `event.original`).
pub fn normalize_str(raw: &str, opts: &NormalizeOptions) -> Result<EcsDoc, NormalizeError> {
    let v: Json = serde_json::from_str(raw).map_err(|e| NormalizeError::Json(e.to_string()))?;
    normalize_owned(v, raw.to_string(), opts)
}

/// Normalises one record's text as the reader does: an already-ECS object (`@timestamp`, no
/// `eventTime`) passes through unchanged, and pretty-printed text is kept compact in
/// `event.original`, as a shipper would.
pub fn normalize_record(raw: &str, opts: &NormalizeOptions) -> Result<EcsDoc, NormalizeError> {
    let v: Json = serde_json::from_str(raw).map_err(|e| NormalizeError::Json(e.to_string()))?;
    normalize_parsed(v, raw, opts)
}

/// [`normalize_record`] of the record already parsed from `raw`.
pub fn normalize_parsed(
    v: Json,
    raw: &str,
    opts: &NormalizeOptions,
) -> Result<EcsDoc, NormalizeError> {
    if let Json::Object(m) = &v {
        if !is_cloudtrail(m) && m.contains_key("@timestamp") {
            return Ok(EcsDoc::from_json(v));
        }
    }
    let original = if raw.contains('\n') {
        v.to_string()
    } else {
        raw.to_string()
    };
    normalize_owned(v, original, opts)
}

/// Normalises one raw record with the default options (`event.original` is its JSON text).
pub fn normalize(record: &serde_json::Value) -> Result<serde_json::Value, NormalizeError> {
    normalize_owned(
        Json::from(record.clone()),
        record.to_string(),
        &NormalizeOptions::default(),
    )
    .map(EcsDoc::into_value)
}

/// Whether a parsed JSON object looks like a raw CloudTrail record (or digest).
pub fn is_cloudtrail(m: &Obj) -> bool {
    m.contains_key("eventTime") || m.contains_key("digestEndTime")
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// The pipeline's `rename` and `append` processors on the document under construction.
trait Processors {
    /// `rename` with ignore_missing/ignore_failure: no-op when the target already exists.
    fn rename(&mut self, v: Option<Json>, path: &'static str);
    fn rename_node(&mut self, v: Option<Node>, path: &'static str);
    /// `append` with `allow_duplicates: false`.
    fn append_unique(&mut self, path: &'static str, s: String);
}

impl Processors for EcsDoc {
    fn rename(&mut self, v: Option<Json>, path: &'static str) {
        self.rename_node(v.map(Node::Leaf), path);
    }

    fn rename_node(&mut self, v: Option<Node>, path: &'static str) {
        if let Some(v) = v {
            self.set_if_absent(path, v);
        }
    }

    fn append_unique(&mut self, path: &'static str, s: String) {
        match self.value_mut(path) {
            Some(Json::Array(a)) => {
                if !a.iter().any(|x| x.as_str() == Some(s.as_str())) {
                    a.push(Json::String(s));
                }
            }
            Some(other) => {
                let old = std::mem::take(other);
                if old.as_str() == Some(s.as_str()) {
                    *other = old;
                } else {
                    *other = Json::Array(vec![old, Json::String(s)]);
                }
            }
            None => {
                self.set(path, Json::Array(vec![Json::String(s)]));
            }
        }
    }
}

/// Removes a value at a dotted path of the record.
fn take(rec: &mut Obj, path: &str) -> Option<Json> {
    let v = match split_last(path) {
        None => rec.remove(path),
        Some((parents, last)) => {
            let mut parts = segments(parents);
            let mut cur = rec.get_mut(parts.next()?)?;
            for p in parts {
                cur = cur.get_mut(p)?;
            }
            cur.as_object_mut()?.remove(last)
        }
    };
    v.filter(|v| !v.is_null())
}

/// Mustache `{{{field}}}` rendering of a value.
fn template(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => java_to_string(other),
    }
}

/// The date processor (`ISO8601`, UTC, output `yyyy-MM-dd'T'HH:mm:ss.SSSXXX`).
pub fn es_date(v: &Json) -> Option<Json> {
    let s = v.as_str()?;
    let dt: DateTime<Utc> = if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        d.with_timezone(&Utc)
    } else if let Ok(n) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        n.and_utc()
    } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)?.and_utc()
    } else {
        return None;
    };
    Some(Json::String(
        dt.to_rfc3339_opts(SecondsFormat::Millis, true),
    ))
}

/// Does what the pipeline does to one parsed record; `original` becomes `event.original`.
#[allow(clippy::too_many_lines)]
pub fn normalize_owned(
    record: Json,
    original: String,
    opts: &NormalizeOptions,
) -> Result<EcsDoc, NormalizeError> {
    let mut rec = match record {
        Json::Object(m) => m,
        other => return Err(NormalizeError::NotAnObject(kind(&other))),
    };
    if !is_cloudtrail(&rec) {
        return Err(NormalizeError::NotCloudTrail);
    }
    let present = |rec: &Obj, p: &str| {
        let mut parts = segments(p);
        let mut cur = parts.next().and_then(|k| rec.get(k));
        for k in parts {
            cur = cur.and_then(|c| c.as_object()).and_then(|m| m.get(k));
        }
        cur.is_some_and(|v| !is_removed(v))
    };
    // rename_additionalEventData_UserName_to_username moves this key before toString().
    let user_type_raw = rec
        .get("userIdentity")
        .and_then(|u| u.get("type"))
        .and_then(Json::as_str)
        .filter(|_| present(&rec, "userIdentity.type"));
    let assumed = matches!(user_type_raw, Some("AssumedRole") | Some("FederatedUser"));
    let user_name_set = present(&rec, "userIdentity.userName")
        || (assumed && present(&rec, "userIdentity.sessionContext.sessionIssuer.userName"));
    let moves_aed_user = rec.get("eventName").and_then(Json::as_str) == Some("UserAuthentication")
        && !user_name_set
        && present(&rec, "additionalEventData.UserName");

    // Map.toString() of the four objects, from the unpruned record.
    let mut strings: [Option<String>; 4] = Default::default();
    for (i, key) in JSON_OBJECTS.iter().enumerate() {
        if let Some(v) = rec.get(key.0).filter(|v| !is_removed(v)) {
            strings[i] = Some(if i == 2 && moves_aed_user {
                aed_without_user_name(v)
            } else {
                java_to_string(v)
            });
        }
    }

    prune_map(&mut rec);

    let mut doc = EcsDoc::new();
    doc.set("event.original", Json::String(original));
    if let Some(c) = &opts.event_created {
        doc.set("event.created", Json::String(c.clone()));
    }
    let mut tags: Vec<Json> = opts.tags.iter().map(|t| Json::String(t.clone())).collect();
    doc.set("ecs.version", Json::String("8.11.0".to_string()));
    if let Some(ts) = rec.get("eventTime").and_then(es_date) {
        doc.set("@timestamp", ts);
    }

    // script_append_related_entity
    if rec.get("eventName").is_some() && opts.tags.iter().any(|t| t == "actor_target_mapping") {
        match entity::entity_fields(&rec) {
            Ok(fields) => {
                for (f, vals) in fields {
                    doc.set(f, Json::Array(vals.into_iter().map(Json::String).collect()));
                }
            }
            Err(e) => {
                if !tags.iter().any(|t| t == "preserve_original_event") {
                    tags.push(Json::String("preserve_original_event".to_string()));
                }
                doc.set(
                    "error.message",
                    Json::String(format!(
                        "Processor 'script'\nwith tag 'script_append_related_entity'\nfailed with message '{}'\n",
                        e.0
                    )),
                );
            }
        }
    }

    doc.rename(
        take(&mut rec, "eventVersion"),
        "aws.cloudtrail.event_version",
    );
    doc.rename(
        take(&mut rec, "userIdentity.type"),
        "aws.cloudtrail.user_identity.type",
    );
    doc.rename(take(&mut rec, "userIdentity.userName"), "user.name");
    doc.rename(take(&mut rec, "userIdentity.principalId"), "user.id");
    doc.rename(
        take(&mut rec, "userIdentity.arn"),
        "aws.cloudtrail.user_identity.arn",
    );
    doc.rename(take(&mut rec, "userIdentity.accountId"), "cloud.account.id");
    doc.rename(
        take(&mut rec, "userIdentity.accessKeyId"),
        "aws.cloudtrail.user_identity.access_key_id",
    );
    doc.rename(
        take(
            &mut rec,
            "userIdentity.sessionContext.attributes.mfaAuthenticated",
        ),
        "aws.cloudtrail.user_identity.session_context.mfa_authenticated",
    );
    if let Some(d) =
        lookup(&rec, "userIdentity.sessionContext.attributes.creationDate").and_then(es_date)
    {
        doc.set(
            "aws.cloudtrail.user_identity.session_context.creation_date",
            d,
        );
    }
    doc.rename(
        take(&mut rec, "userIdentity.sessionContext.sessionIssuer.type"),
        "aws.cloudtrail.user_identity.session_context.session_issuer.type",
    );
    let utype = doc
        .get("aws.cloudtrail.user_identity.type")
        .and_then(Json::as_str)
        .map(str::to_string);
    let assumed = matches!(
        utype.as_deref(),
        Some("AssumedRole") | Some("FederatedUser")
    );
    if assumed {
        if let Some(v) = take(
            &mut rec,
            "userIdentity.sessionContext.sessionIssuer.userName",
        ) {
            doc.set("user.name", v);
        }
    }
    doc.rename(
        take(
            &mut rec,
            "userIdentity.sessionContext.sessionIssuer.principalId",
        ),
        "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id",
    );
    if assumed {
        let name = doc
            .get("aws.cloudtrail.user_identity.arn")
            .and_then(Json::as_str)
            .and_then(session_name_from_arn)
            .map(str::to_string);
        if let Some(n) = name {
            doc.set("user.changes.name", Json::String(n));
        }
    }
    if utype.as_deref() == Some("IdentityCenterUser") && !doc.has("user.id") {
        doc.rename(take(&mut rec, "userIdentity.onBehalfOf.userId"), "user.id");
    }
    doc.rename(
        take(&mut rec, "userIdentity.sessionContext.sessionIssuer.arn"),
        "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
    );
    doc.rename(
        take(
            &mut rec,
            "userIdentity.sessionContext.sessionIssuer.accountId",
        ),
        "aws.cloudtrail.user_identity.session_context.session_issuer.account_id",
    );
    doc.rename(
        take(&mut rec, "sessionCredentialFromConsole"),
        "aws.cloudtrail.session_credential_from_console",
    );
    doc.rename(
        take(&mut rec, "userIdentity.invokedBy"),
        "aws.cloudtrail.user_identity.invoked_by",
    );
    doc.rename(take(&mut rec, "eventSource"), "event.provider");
    if let Some(a) = rec.get("eventName").map(template).filter(|s| !s.is_empty()) {
        doc.set("event.action", Json::String(a));
    }
    doc.rename(
        take(&mut rec, "eventCategory"),
        "aws.cloudtrail.event_category",
    );
    if doc.get("event.action").and_then(Json::as_str) == Some("UserAuthentication")
        && !doc.has("user.name")
    {
        doc.rename(take(&mut rec, "additionalEventData.UserName"), "user.name");
    }
    if let Some(r) = rec.get("awsRegion").filter(|v| v.as_str() != Some("")) {
        doc.set("cloud.region", r.clone());
    }
    doc.rename(take(&mut rec, "sourceIPAddress"), "source.address");
    if let Some(ip) = doc
        .get("source.address")
        .and_then(Json::as_str)
        .filter(|s| s.parse::<IpAddr>().is_ok())
        .map(str::to_string)
    {
        doc.set("source.ip", Json::String(ip));
    }
    if let Some(g) = &opts.geoip {
        g.enrich(&mut doc);
    }
    doc.rename(take(&mut rec, "userAgent"), "user_agent.original");
    doc.rename(take(&mut rec, "errorCode"), "aws.cloudtrail.error_code");
    doc.rename(
        take(&mut rec, "errorMessage"),
        "aws.cloudtrail.error_message",
    );

    // script_cache_flattened_duplicates_configuration / script_duplicate_rules_fields
    let retain = opts.retain.as_deref();
    let keep_flattened = retain
        .is_none_or(|r| r.contains("all") || r.contains("flattened") || r.contains("minimal"));
    // The flattened objects are moved from the record once the pipeline has finished reading
    // them (below); their places are held here so the document's key order is the pipeline's.
    let mut flattened = [false; 4];
    if doc.is_object("aws") || keep_flattened {
        if keep_flattened && !doc.has("aws.cloudtrail.flattened") {
            doc.set_node("aws.cloudtrail.flattened", Node::Object(Vec::new()));
        }
        for (i, (json_key, field, flat)) in JSON_OBJECTS.iter().enumerate() {
            let Some(s) = strings[i].take() else {
                continue;
            };
            let short = s.encode_utf16().count() < 32766;
            doc.set(field, Json::String(s));
            if keep_flattened && short && rec.contains_key(json_key) {
                doc.set(flat, Json::Null);
                flattened[i] = true;
            }
        }
    }
    doc.rename(take(&mut rec, "requestID"), "aws.cloudtrail.request_id");
    doc.rename(take(&mut rec, "eventID"), "event.id");
    doc.rename(take(&mut rec, "eventType"), "aws.cloudtrail.event_type");
    doc.rename(take(&mut rec, "apiVersion"), "aws.cloudtrail.api_version");
    doc.rename(
        take(&mut rec, "managementEvent"),
        "aws.cloudtrail.management_event",
    );
    doc.rename(take(&mut rec, "readOnly"), "aws.cloudtrail.read_only");
    let resources = match take(&mut rec, "resources") {
        Some(Json::Array(list)) => Some(Json::Array(dedup_resources(list))),
        other => other,
    };
    doc.rename(resources, "aws.cloudtrail.resources");
    doc.rename(
        take(&mut rec, "recipientAccountId"),
        "aws.cloudtrail.recipient_account_id",
    );
    if !doc.has("cloud.account.id") {
        if let Some(v) = doc
            .get("aws.cloudtrail.recipient_account_id")
            .filter(|v| v.as_str() != Some(""))
            .cloned()
        {
            doc.set("cloud.account.id", v);
        }
    }
    doc.rename(
        take(&mut rec, "sharedEventId"),
        "aws.cloudtrail.shared_event_id",
    );
    doc.rename(
        take(&mut rec, "vpcEndpointId"),
        "aws.cloudtrail.vpc_endpoint_id",
    );
    for p in [
        "requestParameters.userName",
        "requestParameters.newUserName",
        "responseElements.user.userId",
    ] {
        if let Some(v) = lookup(&rec, p) {
            doc.append_unique("related.user", template(v));
        }
    }
    let event_name = rec.get("eventName").and_then(Json::as_str);
    if event_name == Some("ConsoleLogin") && doc.is_object("aws.cloudtrail") {
        let mut aed = Obj::new();
        if let Some(v) = lookup(&rec, "additionalEventData.MobileVersion") {
            aed.insert(
                "mobile_version".into(),
                Json::Bool(v.as_str() != Some("No")),
            );
        }
        if let Some(v) = lookup(&rec, "additionalEventData.LoginTo") {
            aed.insert("login_to".into(), v.clone());
        }
        if let Some(v) = lookup(&rec, "additionalEventData.MFAUsed") {
            aed.insert("mfa_used".into(), Json::Bool(v.as_str() != Some("No")));
        }
        if !aed.is_empty() {
            doc.set(
                "aws.cloudtrail.console_login.additional_eventdata",
                Json::Object(aed),
            );
        }
    }

    // Add ECS categorization
    doc.set("event.kind", Json::String("event".into()));
    doc.set("event.type", Json::Array(vec![Json::String("info".into())]));
    let failed = doc.has("aws.cloudtrail.error_code") || doc.has("aws.cloudtrail.error_message");
    doc.set(
        "event.outcome",
        Json::String(if failed { "failure" } else { "success" }.into()),
    );
    if let Some(action) = doc
        .get("event.action")
        .and_then(Json::as_str)
        .map(str::to_string)
    {
        if action == "ConsoleLogin" {
            if let Some(o) = lookup(&rec, "responseElements.ConsoleLogin").and_then(Json::as_str) {
                doc.set("event.outcome", Json::String(o.to_lowercase()));
            }
        }
        if let Some((cat, typ)) = categories::lookup(&action) {
            let list =
                |l: &[&str]| Json::Array(l.iter().map(|s| Json::String((*s).into())).collect());
            if let Some(c) = cat {
                doc.set("event.category", list(c));
            }
            if let Some(t) = typ {
                doc.set("event.type", list(t));
            }
        }
    }

    // Digest files.
    doc.rename(take(&mut rec, "awsAccountId"), "cloud.account.id");
    doc.rename(take(&mut rec, "digestS3Object"), "file.path");
    if rec
        .get("previousDigestHashAlgorithm")
        .and_then(Json::as_str)
        == Some("SHA-256")
    {
        doc.rename(
            take(&mut rec, "previousDigestSignature"),
            "file.hash.sha256",
        );
    }
    if let Some(h) = doc.get("file.hash.sha256").map(template) {
        doc.append_unique("related.hash", h);
    }
    doc.rename(
        take(&mut rec, "logFiles"),
        "aws.cloudtrail.digest.log_files",
    );
    if let Some(d) = rec.get("digestStartTime").and_then(es_date) {
        doc.set("aws.cloudtrail.digest.start_time", d);
    }
    if let Some(d) = rec.get("digestEndTime").and_then(es_date) {
        doc.set("@timestamp", d.clone());
        doc.set("aws.cloudtrail.digest.end_time", d);
    }
    doc.rename(
        take(&mut rec, "digestS3Bucket"),
        "aws.cloudtrail.digest.s3_bucket",
    );
    for (k, f) in [
        ("newestEventTime", "aws.cloudtrail.digest.newest_event_time"),
        ("oldestEventTime", "aws.cloudtrail.digest.oldest_event_time"),
    ] {
        if let Some(d) = rec.get(k).and_then(es_date) {
            doc.set(f, d);
        }
    }
    for (k, f) in [
        (
            "previousDigestS3Bucket",
            "aws.cloudtrail.digest.previous_s3_bucket",
        ),
        (
            "previousDigestHashAlgorithm",
            "aws.cloudtrail.digest.previous_hash_algorithm",
        ),
        (
            "publicKeyFingerprint",
            "aws.cloudtrail.digest.public_key_fingerprint",
        ),
        (
            "digestSignatureAlgorithm",
            "aws.cloudtrail.digest.signature_algorithm",
        ),
    ] {
        doc.rename(take(&mut rec, k), f);
    }

    for (p, f) in [
        ("responseElements.group.groupId", "group.id"),
        ("responseElements.user.userId", "user.target.id"),
        ("requestParameters.newUserName", "user.changes.name"),
        ("requestParameters.groupName", "group.name"),
        ("requestParameters.userName", "user.target.name"),
    ] {
        if let Some(v) = lookup(&rec, p).filter(|v| v.as_str() != Some("")) {
            doc.set(f, v.clone());
        }
    }
    // Nothing reads the record's four objects from here on: move them into their places.
    for (i, (json_key, _, flat)) in JSON_OBJECTS.iter().enumerate() {
        if flattened[i] {
            if let Some(v) = rec.remove(json_key) {
                doc.set(flat, v);
            } else {
                doc.remove(flat);
            }
        }
    }
    let digest = doc.remove("aws.cloudtrail.digest");
    let insight = take(&mut rec, "insightDetails");
    if keep_flattened {
        doc.rename_node(digest, "aws.cloudtrail.flattened.digest");
        doc.rename(insight, "aws.cloudtrail.flattened.insight_details");
    }

    // TLS
    if lookup(&rec, "tlsDetails.tlsVersion").and_then(Json::as_str) == Some("tlsVersion") {
        rec.remove("tlsDetails");
    }
    if let Some(v) = take(&mut rec, "tlsDetails.tlsVersion") {
        match v.as_str().and_then(|s| s.split_once('v')) {
            Some((proto, ver)) => {
                doc.set("tls.version_protocol", Json::String(proto.to_lowercase()));
                doc.set("tls.version", Json::String(ver.to_string()));
            }
            None => {
                doc.set("tls.version", v);
            }
        }
    }
    doc.rename(take(&mut rec, "tlsDetails.cipherSuite"), "tls.cipher");
    doc.rename(
        take(&mut rec, "tlsDetails.clientProvidedHostHeader"),
        "tls.client.server_name",
    );

    if !doc.has("user.email") {
        if let Some(n) = doc
            .get("user.name")
            .and_then(Json::as_str)
            .filter(|n| n.find('@').is_some_and(|i| i > 0))
            .map(str::to_string)
        {
            doc.set("user.email", Json::String(n));
        }
    }
    for f in ["user.id", "user.name", "user.changes.name"] {
        if let Some(v) = doc.get(f).map(template) {
            doc.append_unique("related.user", v);
        }
    }

    if retain == Some("minimal") {
        retain_minimal(&mut doc);
    }
    if retain.is_some_and(|r| !matches!(r, "" | "all" | "keyword" | "minimal")) {
        for f in [
            "aws.cloudtrail.response_elements",
            "aws.cloudtrail.request_parameters",
            "aws.cloudtrail.additional_eventdata",
        ] {
            doc.remove(f);
        }
    }
    if !tags.is_empty() {
        doc.set("tags", Json::Array(tags));
    }
    doc.retain_values(&mut |v| !remove_empty(v));
    if opts.data_stream {
        doc.set("event.dataset", Json::String("aws.cloudtrail".into()));
        doc.set("event.module", Json::String("aws".into()));
        doc.set("data_stream.type", Json::String("logs".into()));
        doc.set("data_stream.dataset", Json::String("aws.cloudtrail".into()));
        doc.set("data_stream.namespace", Json::String("default".into()));
    }
    Ok(doc)
}

/// `(json key, toString() field, flattened field)` of the objects rendered with `toString()`.
const JSON_OBJECTS: [(&str, &str, &str); 4] = [
    (
        "requestParameters",
        "aws.cloudtrail.request_parameters",
        "aws.cloudtrail.flattened.request_parameters",
    ),
    (
        "responseElements",
        "aws.cloudtrail.response_elements",
        "aws.cloudtrail.flattened.response_elements",
    ),
    (
        "additionalEventData",
        "aws.cloudtrail.additional_eventdata",
        "aws.cloudtrail.flattened.additional_eventdata",
    ),
    (
        "serviceEventDetails",
        "aws.cloudtrail.service_event_details",
        "aws.cloudtrail.flattened.service_event_details",
    ),
];

/// Fields kept under `aws.cloudtrail.flattened` with `retain: minimal`.
const REQUIRED_FLATTENED_FIELDS: &[&str] = &[
    "additional_eventdata.SSEApplied",
    "request_parameters.cidrIp",
    "request_parameters.dryRun",
    "request_parameters.fromPort",
    "request_parameters.includeDeprecated",
    "request_parameters.policyArn",
    "request_parameters.serialNumber",
    "request_parameters.withDecryption",
    "request_parameters.x-amz-server-side-encryption-customer-algorithm",
];

fn retain_minimal(doc: &mut EcsDoc) {
    if !doc.has("aws.cloudtrail.flattened") {
        return;
    }
    let mut kept = EcsDoc::new();
    for f in REQUIRED_FLATTENED_FIELDS {
        if let Some(v) = doc.get(&format!("aws.cloudtrail.flattened.{f}")) {
            kept.set(f, v.clone());
        }
    }
    doc.set_node("aws.cloudtrail.flattened", kept.0);
}

/// `additionalEventData.toString()` after the `UserName` key was renamed away.
fn aed_without_user_name(v: &Json) -> String {
    let Json::Object(m) = v else {
        return java_to_string(v);
    };
    let mut out = String::from("{");
    let mut first = true;
    for (k, x) in java_key_order(m) {
        if k == "UserName" {
            continue;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str(k);
        out.push('=');
        out.push_str(&java_to_string(x));
    }
    out.push('}');
    out
}

/// Grok `arn:aws:sts:.*/%{GREEDYDATA:user.changes.name}$`: the text after the last `/` that
/// follows `arn:aws:sts:` (on the last line).
fn session_name_from_arn(arn: &str) -> Option<&str> {
    let start = arn.find("arn:aws:sts:")?;
    let rest = &arn[start + "arn:aws:sts:".len()..];
    let line = rest.split('\n').next()?;
    let slash = line.rfind('/')?;
    Some(&line[slash + 1..])
}

/// The resources script: `ARN` → `arn`, `accountId` → `account_id`, duplicates (same arn,
/// account and type) dropped, order of a Java `HashMap` keyed `arn_account_type`.
fn dedup_resources(list: Vec<Json>) -> Vec<Json> {
    let mut keyed: Obj = Obj::new();
    for r in list {
        let Json::Object(mut m) = r else {
            continue;
        };
        if let Some(a) = m.remove("ARN") {
            m.insert("arn".into(), a);
        }
        if let Some(a) = m.remove("accountId") {
            m.insert("account_id".into(), a);
        }
        let part = |k: &str| m.get(k).map(template).unwrap_or_default();
        let key = format!("{}_{}_{}", part("arn"), part("account_id"), part("type"));
        keyed.insert(key, Json::Object(m));
    }
    java_key_order(&keyed)
        .into_iter()
        .map(|(_, v)| v.clone())
        .collect()
}

/// The final `remove_nulls` script: null, `""`, empty maps and lists.
fn remove_empty(v: &mut Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => s.is_empty(),
        Json::Object(m) => {
            remove_empty_map(m);
            m.is_empty()
        }
        Json::Array(a) => {
            a.retain_mut(|x| !remove_empty(x));
            a.is_empty()
        }
        _ => false,
    }
}

fn remove_empty_map(m: &mut Obj) {
    m.retain(|_, x| !remove_empty(x));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_are_utc_millis() {
        assert_eq!(
            es_date(&Json::from("2020-01-09T16:46:16Z")),
            Some(Json::from("2020-01-09T16:46:16.000Z"))
        );
        assert_eq!(
            es_date(&Json::from("2020-01-09T18:46:16.1234+02:00")),
            Some(Json::from("2020-01-09T16:46:16.123Z"))
        );
        assert_eq!(es_date(&Json::from("yesterday")), None);
    }

    #[test]
    fn assumed_role_session_name_is_after_last_slash() {
        assert_eq!(
            session_name_from_arn("arn:aws:sts::1:assumed-role/R/sess"),
            Some("sess")
        );
        assert_eq!(session_name_from_arn("arn:aws:iam::1:user/x"), None);
    }

    #[test]
    fn non_cloudtrail_objects_are_rejected() {
        assert_eq!(
            normalize(&json!({"a": 1})),
            Err(NormalizeError::NotCloudTrail)
        );
        assert_eq!(
            normalize(&json!([1])),
            Err(NormalizeError::NotAnObject("array"))
        );
    }

    #[test]
    fn assumed_role_user_name_is_the_session_issuer() {
        let doc = normalize(&json!({
            "eventTime": "2024-01-01T00:00:00Z", "eventName": "ListBuckets",
            "eventSource": "s3.amazonaws.com", "sourceIPAddress": "AWS Internal",
            "userIdentity": {"type": "AssumedRole", "principalId": "P:sess",
              "arn": "arn:aws:sts::1:assumed-role/Admin/sess",
              "sessionContext": {"sessionIssuer": {"userName": "Admin", "arn": "arn:aws:iam::1:role/Admin"}}},
            "errorCode": "AccessDenied"
        }))
        .unwrap();
        assert_eq!(doc["user"]["name"], "Admin");
        assert_eq!(doc["user"]["changes"]["name"], "sess");
        assert_eq!(doc["event"]["outcome"], "failure");
        assert_eq!(doc["source"]["address"], "AWS Internal");
        assert!(doc["source"].get("ip").is_none());
        assert_eq!(doc["event"]["dataset"], "aws.cloudtrail");
        assert_eq!(doc["related"]["user"], json!(["P:sess", "Admin", "sess"]));
    }
}
