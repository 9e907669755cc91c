//! Recognising, from the raw record text, a CloudTrail record that no rule can match, so it is
//! skipped before it is parsed and normalised.
//!
//! Each rule's KQL gives a necessary condition on `event.action` (CloudTrail `eventName`) and
//! `event.provider` (`eventSource`): the literal values an `and` requires, or that every branch
//! of an `or` requires. A record is skipped only when its `eventName`/`eventSource` are read
//! unambiguously from the text and no rule's condition admits them; anything unusual (a key that
//! occurs twice, an escaped value, an already-ECS document) keeps the record, so no alert is
//! ever missed.
//!
//! Rules without such a condition may still require literal text in a keyword field the
//! normaliser copies verbatim from the record (`user_agent.original: *S3 Browser*` needs
//! `S3 Browser` in `userAgent`, so in the record's text); those conditions are checked as
//! substrings of the raw text, and only on records without any backslash (an escape could hide
//! the literal). A leaf of `aws.cloudtrail.flattened.*` is a raw key (its last path segment is
//! in the text) holding the raw value (a literal with a character no number rendering has is in
//! the text too). A rule that requires a field the normaliser never produces (`source.geo.*` /
//! `source.as.*` without a GeoIP database of that kind) admits no raw record at all.

use std::collections::{HashMap, HashSet};

use crate::kql::Ast;

/// The literal values a query requires of one field; `None` = no requirement found.
type Allowed = Option<HashSet<String>>;

/// Keyword fields the normaliser copies verbatim from a raw record's value.
const VERBATIM: &[&str] = &[
    "user_agent.original",
    "user.name",
    "source.address",
    "aws.cloudtrail.user_identity.type",
    "aws.cloudtrail.user_identity.arn",
    "aws.cloudtrail.user_identity.access_key_id",
    "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
];

/// Prefix of the flattened copies of the record's objects.
const FLATTENED: &str = "aws.cloudtrail.flattened.";

/// Alternatives, each a list of substrings that must all occur; `None` = no requirement.
type Texts = Option<Vec<Vec<String>>>;

/// What one rule requires of `event.action` and `event.provider`, and of the record's text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    pub actions: Allowed,
    pub providers: Allowed,
    pub texts: Texts,
    /// The query needs a field the normaliser never produces: no raw record matches.
    pub never: bool,
}

impl Requirement {
    /// The requirement a KQL query implies (the rule's filters can only narrow it further).
    pub fn of(query: &Ast) -> Requirement {
        Requirement::with_unavailable(query, &[])
    }

    /// The requirement, knowing that fields under the `unavailable` prefixes never exist in a
    /// normalised record (e.g. `source.as.` without an ASN database).
    pub fn with_unavailable(query: &Ast, unavailable: &[&str]) -> Requirement {
        Requirement {
            actions: allowed(query, "event.action"),
            providers: allowed(query, "event.provider"),
            texts: texts(query),
            never: needs_unavailable(query, unavailable),
        }
    }

    /// True when nothing is required.
    fn is_open(&self) -> bool {
        !self.never && self.actions.is_none() && self.providers.is_none() && self.texts.is_none()
    }

    /// True when a record with these raw values and text may match (`None` = unknown value;
    /// `raw` is `None` when the text cannot be searched).
    fn admits(&self, action: Option<&str>, provider: Option<&str>, raw: Option<&str>) -> bool {
        if self.never {
            return false;
        }
        let ok = |allowed: &Allowed, v: Option<&str>| match (allowed, v) {
            (None, _) | (_, None) => true,
            (Some(set), Some(v)) => set.contains(v),
        };
        let text_ok = match (&self.texts, raw) {
            (None, _) | (_, None) => true,
            (Some(alternatives), Some(raw)) => alternatives
                .iter()
                .any(|parts| parts.iter().all(|p| raw.contains(p.as_str()))),
        };
        ok(&self.actions, action) && ok(&self.providers, provider) && text_ok
    }
}

/// True when every document matching `ast` has a field under one of the `prefixes`.
fn needs_unavailable(ast: &Ast, prefixes: &[&str]) -> bool {
    let under =
        |f: &crate::kql::Field| !f.wildcard && prefixes.iter().any(|p| f.name.starts_with(p));
    match ast {
        Ast::Is { field: Some(f), .. } | Ast::Exists { field: f } | Ast::Range { field: f, .. } => {
            under(f)
        }
        Ast::And(items) => items.iter().any(|a| needs_unavailable(a, prefixes)),
        Ast::Or(items) => items.iter().all(|a| needs_unavailable(a, prefixes)),
        _ => false,
    }
}

/// Literal text parts of a value.
fn literal_parts(value: &crate::kql::Value) -> Vec<String> {
    value
        .parts
        .iter()
        .filter_map(|p| match p {
            crate::kql::Part::Text(t) if !t.is_empty() => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// True when no rendering of a JSON number contains `s`.
fn not_numeric(s: &str) -> bool {
    s.chars()
        .any(|c| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))
}

/// Literal text that every document matching `ast` has in a verbatim-copied field.
fn texts(ast: &Ast) -> Texts {
    match ast {
        Ast::Is {
            field: Some(f),
            value,
        } if !f.wildcard && VERBATIM.contains(&f.name.as_str()) => {
            let parts = literal_parts(value);
            (!parts.is_empty()).then(|| vec![parts])
        }
        Ast::Is {
            field: Some(f),
            value,
        } if !f.wildcard && f.name.starts_with(FLATTENED) => {
            let key = f.name.rsplit('.').next().unwrap_or_default().to_string();
            let mut parts: Vec<String> = literal_parts(value)
                .into_iter()
                .filter(|p| not_numeric(p))
                .collect();
            parts.push(key);
            Some(vec![parts])
        }
        Ast::Exists { field: f } if !f.wildcard && f.name.starts_with(FLATTENED) => {
            let key = f.name.rsplit('.').next().unwrap_or_default().to_string();
            Some(vec![vec![key]])
        }
        // Any conjunct's requirement is necessary; keep the most selective (longest shortest
        // literal).
        Ast::And(items) => items.iter().filter_map(texts).max_by_key(|alternatives| {
            alternatives
                .iter()
                .flat_map(|parts| parts.iter().map(String::len).max())
                .min()
                .unwrap_or(0)
        }),
        Ast::Or(items) => {
            let mut out = Vec::new();
            for a in items {
                out.extend(texts(a)?);
            }
            Some(out)
        }
        _ => None,
    }
}

/// The literal values of `field` that every document matching `ast` has.
fn allowed(ast: &Ast, field: &str) -> Allowed {
    match ast {
        Ast::Is {
            field: Some(f),
            value,
        } if !f.wildcard && f.name == field => value.as_literal().map(|v| HashSet::from([v])),
        Ast::And(items) => items
            .iter()
            .filter_map(|a| allowed(a, field))
            .reduce(|a, b| a.intersection(&b).cloned().collect()),
        Ast::Or(items) => {
            let mut out = HashSet::new();
            for a in items {
                out.extend(allowed(a, field)?);
            }
            Some(out)
        }
        _ => None,
    }
}

/// Decides for raw records whether any rule may match them, and for documents which rules.
#[derive(Debug, Clone, Default)]
pub struct Prefilter {
    rules: Vec<Requirement>,
    /// True when some rule has no requirement at all (then nothing is skipped).
    open: bool,
    /// Rules by an `event.action` value they admit.
    by_action: HashMap<String, Vec<usize>>,
    /// Rules without an `event.action` requirement.
    any_action: Vec<usize>,
}

impl Prefilter {
    /// A prefilter for these rules' queries (rule `i` is `queries[i]`).
    pub fn new(queries: &[&Ast]) -> Prefilter {
        Prefilter::with_unavailable(queries, &[])
    }

    /// A prefilter knowing that fields under the `unavailable` prefixes never exist in a
    /// normalised raw record.
    pub fn with_unavailable(queries: &[&Ast], unavailable: &[&str]) -> Prefilter {
        let rules: Vec<Requirement> = queries
            .iter()
            .map(|q| Requirement::with_unavailable(q, unavailable))
            .collect();
        let open = rules.iter().any(Requirement::is_open);
        let mut by_action: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any_action = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match &r.actions {
                Some(set) => {
                    for a in set {
                        by_action.entry(a.clone()).or_default().push(i);
                    }
                }
                None => any_action.push(i),
            }
        }
        Prefilter {
            rules,
            open,
            by_action,
            any_action,
        }
    }

    /// True when nothing can be skipped (a rule without any requirement).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The rules without any requirement (each keeps every record).
    pub fn open_rules(&self) -> Vec<usize> {
        (0..self.rules.len())
            .filter(|&i| self.rules[i].is_open())
            .collect()
    }

    /// True when the raw record can match no rule (skip it).
    pub fn skip(&self, raw: &str) -> bool {
        if self.open || raw.contains("\"@timestamp\"") {
            // `@timestamp`: possibly an already-ECS document, passed through unnormalised.
            return false;
        }
        let (Some(action), Some(provider)) = (
            unique_string(raw, "\"eventName\""),
            unique_string(raw, "\"eventSource\""),
        ) else {
            return false;
        };
        let searchable = (!raw.contains('\\')).then_some(raw);
        !self.admitted(action, provider, searchable).any(|_| true)
    }

    /// The rules a normalised document may match, ascending, into `out` (`action`/`provider`
    /// = its `event.action`/`event.provider`, `None` when not a single string).
    pub fn rules_for(&self, action: Option<&str>, provider: Option<&str>, out: &mut Vec<usize>) {
        out.clear();
        // Only the action and provider requirements: a document may be an already-ECS one,
        // which the text and GeoIP conditions (raw records only) do not describe.
        let provider_ok = |i: &usize| {
            self.rules[*i]
                .providers
                .as_ref()
                .is_none_or(|p| provider.is_none_or(|v| p.contains(v)))
        };
        match action {
            Some(a) => out.extend(
                self.any_action
                    .iter()
                    .chain(self.by_action.get(a).into_iter().flatten())
                    .copied()
                    .filter(provider_ok),
            ),
            None => out.extend((0..self.rules.len()).filter(provider_ok)),
        }
        out.sort_unstable();
        out.dedup();
    }

    fn admitted<'s>(
        &'s self,
        action: Option<&'s str>,
        provider: Option<&'s str>,
        raw: Option<&'s str>,
    ) -> Box<dyn Iterator<Item = usize> + 's> {
        match action {
            None => Box::new(
                (0..self.rules.len()).filter(move |&i| self.rules[i].admits(None, provider, raw)),
            ),
            Some(a) => Box::new(
                self.any_action
                    .iter()
                    .chain(self.by_action.get(a).into_iter().flatten())
                    .copied()
                    .filter(move |&i| self.rules[i].admits(None, provider, raw)),
            ),
        }
    }
}

/// The value of `key`: `Some(Some(v))` when the key occurs exactly once in the text and its
/// value is a string without escapes; `Some(None)` when the key does not occur (treated as
/// unknown, never as absent); `None` when ambiguous.
fn unique_string<'a>(raw: &'a str, key: &str) -> Option<Option<&'a str>> {
    let mut hits = memchr::memmem::find_iter(raw.as_bytes(), key.as_bytes());
    let Some(first) = hits.next() else {
        return Some(None);
    };
    if hits.next().is_some() {
        return None;
    }
    let rest = raw[first + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    if rest.as_bytes()[end] != b'"' {
        return None;
    }
    Some(Some(&rest[..end]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn pf(queries: &[&str]) -> Prefilter {
        let asts: Vec<Ast> = queries
            .iter()
            .map(|q| crate::kql::parse(q).unwrap())
            .collect();
        Prefilter::new(&asts.iter().collect::<Vec<_>>())
    }

    fn rec(source: &str, name: &str) -> String {
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2026-10-01T00:00:00Z","eventSource":"{source}","eventName":"{name}","requestParameters":{{"x":1}}}}"#
        )
    }

    #[test]
    fn requirements_follow_and_or_and_stop_at_not_and_wildcards() {
        let r = |q: &str| Requirement::of(&crate::kql::parse(q).unwrap());
        let set = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<HashSet<_>>());
        assert_eq!(
            r("event.dataset:aws.cloudtrail and event.action:(A or B) and event.outcome:success")
                .actions,
            set(&["A", "B"])
        );
        assert_eq!(
            r("event.action:A and event.provider:iam.amazonaws.com or event.action:B").actions,
            set(&["A", "B"])
        );
        assert_eq!(
            r("event.action:A and event.provider:iam.amazonaws.com or event.action:B").providers,
            None,
            "the second branch has no provider requirement"
        );
        assert_eq!(r("not event.action:A").actions, None);
        assert_eq!(r("event.action:Put*").actions, None);
        assert_eq!(r("event.action:\"A\" and event.action:B").actions, set(&[]));
    }

    #[test]
    fn skips_only_records_no_rule_admits() {
        let p = pf(&[
            "event.provider:s3.amazonaws.com and event.action:(PutBucketPolicy or DeleteBucket)",
            "event.action:StopLogging",
        ]);
        assert!(!p.skip(&rec("s3.amazonaws.com", "PutBucketPolicy")));
        assert!(!p.skip(&rec("cloudtrail.amazonaws.com", "StopLogging")));
        assert!(p.skip(&rec("s3.amazonaws.com", "GetObject")));
        assert!(p.skip(&rec("ec2.amazonaws.com", "PutBucketPolicy")));
        // ambiguous or unusual text keeps the record
        let twice = rec("s3.amazonaws.com", "GetObject")
            .replace("\"x\":1", "\"eventName\":\"StopLogging\"");
        assert!(!p.skip(&twice));
        assert!(!p.skip(&rec("s3.amazonaws.com", "Get\\u004fbject")));
        let mut rules = Vec::new();
        p.rules_for(Some("StopLogging"), Some("s3.amazonaws.com"), &mut rules);
        assert_eq!(rules, vec![1]);
        p.rules_for(Some("DeleteBucket"), Some("s3.amazonaws.com"), &mut rules);
        assert_eq!(rules, vec![0]);
        p.rules_for(Some("DeleteBucket"), Some("ec2.amazonaws.com"), &mut rules);
        assert!(rules.is_empty());
        p.rules_for(None, Some("ec2.amazonaws.com"), &mut rules);
        assert_eq!(
            rules,
            vec![1],
            "an unknown action admits every rule that admits the provider"
        );
        let ecs = r#"{"@timestamp":"2026-10-01T00:00:00Z","eventName":"GetObject"}"#;
        assert!(!p.skip(ecs));
        assert!(!p.skip(r#"{"eventTime":"2026-10-01T00:00:00Z"}"#));
        // a rule without a requirement keeps everything
        assert!(
            !pf(&["event.action:A", "event.outcome:success"]).skip(&rec("s3.amazonaws.com", "B"))
        );
        assert!(pf(&["event.action:A", "user.name:root"]).skip(&rec("s3.amazonaws.com", "B")));
    }

    #[test]
    fn verbatim_fields_require_their_literal_text() {
        let p = pf(&[
            "event.action:StopLogging",
            "event.outcome:success and user_agent.original:(*S3 Browser* or *Cyber*duck*)",
        ]);
        let with_agent = |agent: &str| {
            rec("s3.amazonaws.com", "GetObject").replace(
                "\"requestParameters\"",
                &format!("\"userAgent\":\"{agent}\",\"requestParameters\""),
            )
        };
        assert!(p.skip(&with_agent("aws-cli/2.0")));
        assert!(!p.skip(&with_agent("S3 Browser 10.1")));
        assert!(!p.skip(&with_agent("Cyber-duck/8")));
        assert!(p.skip(&with_agent("Cyber/8")));
        // an escape anywhere may hide the literal
        assert!(!p.skip(&with_agent("S3\\u0020Browser")));
        assert_eq!(
            Requirement::of(&crate::kql::parse("event.outcome:success").unwrap()),
            Requirement::default()
        );
        let flat = pf(&[
            "event.action:GetObject and aws.cloudtrail.flattened.request_parameters.key:(*/.aws/credentials or *.pem)",
            "event.action:AssumeRole and aws.cloudtrail.flattened.request_parameters.serialNumber:*",
            "event.action:GetParameter and aws.cloudtrail.flattened.request_parameters.limit:100",
        ]);
        let with_params =
            |name: &str, params: &str| rec("x.amazonaws.com", name).replace("{\"x\":1}", params);
        assert!(flat.skip(&with_params("GetObject", r#"{"key":"data/report.csv"}"#)));
        assert!(!flat.skip(&with_params(
            "GetObject",
            r#"{"key":"home/.aws/credentials"}"#
        )));
        assert!(!flat.skip(&with_params("GetObject", r#"{"key":"a.pem"}"#)));
        assert!(flat.skip(&with_params("AssumeRole", r#"{"roleArn":"r"}"#)));
        assert!(!flat.skip(&with_params("AssumeRole", r#"{"serialNumber":"mfa"}"#)));
        // a number's text may differ from the literal: only the key is required
        assert!(!flat.skip(&with_params("GetParameter", r#"{"limit":1e2}"#)));
        // a field the normaliser never produces without a GeoIP database
        let q = crate::kql::parse(
            "event.action:(A or B) and source.as.organization.name:(* and not Amazon*)",
        )
        .unwrap();
        let geo = Prefilter::with_unavailable(&[&q], &["source.as."]);
        assert!(geo.skip(&rec("s3.amazonaws.com", "A")));
        let mut rules = Vec::new();
        geo.rules_for(Some("A"), None, &mut rules);
        assert_eq!(
            rules,
            vec![0],
            "documents (maybe already ECS) are still evaluated"
        );
        assert!(!Prefilter::new(&[&q]).skip(&rec("s3.amazonaws.com", "A")));
        let t = Requirement::of(
            &crate::kql::parse(
                "aws.cloudtrail.user_identity.type:IAMUser and user.name:BedrockAPIKey-*",
            )
            .unwrap(),
        );
        assert_eq!(t.texts, Some(vec![vec!["BedrockAPIKey-".to_string()]]));
    }
}
