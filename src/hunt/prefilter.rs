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
//!
//! A rule may also have a time range (`with_times`): the times its windows (and, for new_terms,
//! their histories) cover. A record whose `eventTime` (its `@timestamp` after normalisation) is
//! read unambiguously from the text and lies outside the range of every rule admitting it is
//! skipped too: its hits could never reach a window.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::kql::Ast;
use crate::matcher::Matcher;

/// The literal values a query requires of one field; `None` = no requirement found.
type Allowed = Option<HashSet<String>>;

/// The searches done on every raw record, built once.
static TIMESTAMP: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("\"@timestamp\""));
/// The start every `"eventName"`, `"eventSource"` and `"eventTime"` shares: one search finds
/// the three.
static EVENT_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("\"event"));
/// `digestEndTime` and `ingested` both have `gest` at their third byte: one search finds both
/// (`gest` cannot overlap itself, so the search sees every occurrence).
static GEST: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("gest"));
/// `errorCode` and `errorMessage` both start with `error` (which cannot overlap itself either).
static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("error"));

/// True when a key has a dot (keys are short: a plain loop beats a search's set-up).
fn dotted(key: &str) -> bool {
    key.bytes().any(|c| c == b'.')
}

/// True when `b` contains one of `words`, each of which has `finder`'s needle at `offset`.
fn mentions_any(b: &[u8], finder: &Finder<'_>, offset: usize, words: &[&[u8]]) -> bool {
    finder.find_iter(b).any(|at| {
        at.checked_sub(offset)
            .and_then(|start| b.get(start..))
            .is_some_and(|rest| words.iter().any(|w| rest.starts_with(w)))
    })
}

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
    /// `finders` are the searches of `texts`, built once; `raw` gives the text when it can be
    /// searched (asked only when there is a text requirement).
    fn admits<'r>(
        &self,
        action: Option<&str>,
        provider: Option<&str>,
        raw: &dyn Fn() -> Option<&'r str>,
        finders: &[Vec<Finder<'static>>],
    ) -> bool {
        if self.never {
            return false;
        }
        let ok = |allowed: &Allowed, v: Option<&str>| match (allowed, v) {
            (None, _) | (_, None) => true,
            (Some(set), Some(v)) => set.contains(v),
        };
        if !(ok(&self.actions, action) && ok(&self.providers, provider)) {
            return false;
        }
        match (&self.texts, raw()) {
            (None, _) | (_, None) => true,
            (Some(_), Some(raw)) => finders
                .iter()
                .any(|parts| parts.iter().all(|p| p.find(raw.as_bytes()).is_some())),
        }
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
    /// Of `any_action`, the rules without an `event.provider` requirement.
    open_provider: Vec<usize>,
    /// Of `any_action`, the rules by an `event.provider` value they admit.
    by_provider: HashMap<String, Vec<usize>>,
    /// Per rule, the searches of its `texts` (alternatives of parts).
    finders: Vec<Vec<Vec<Finder<'static>>>>,
    /// Each rule's query, evaluated three-valued on what the raw record reveals exactly.
    queries: Vec<Ast>,
    /// Per rule, the inclusive range of `@timestamp` millis its hits are used in (`None`: any
    /// time); empty when no ranges are known.
    times: Vec<Option<(i64, i64)>>,
    /// The normaliser adds the data stream's constant fields.
    data_stream: bool,
    /// Per rule, its matcher when its query reads only [`KNOWABLE`] fields (and it has no
    /// filters): evaluated on what the raw record reveals, it decides the rule exactly.
    exact: Vec<Option<Matcher>>,
    /// Per rule, whether its hits can be taken from the raw record ([`Decision::Hits`]).
    takes_raw: Vec<bool>,
    /// Per rule, whether it has no filters (then a query true on the raw record matches).
    unfiltered: Vec<bool>,
    /// The normaliser keeps `aws.cloudtrail.flattened` (the integration's default `retain`).
    flattened: bool,
    /// [`Prefilter::admitted`] per action and provider seen (a month of CloudTrail has a few
    /// hundred pairs), up to [`MEMO_PAIRS`] pairs.
    memo: RefCell<(Memo, usize)>,
}

/// Rules admitting an action, by provider.
type Memo = HashMap<String, HashMap<String, Arc<[usize]>, Fast>, Fast>;

/// A fast hash for maps looked up with record values (the keys themselves come from rules or
/// are bounded, see [`MEMO_PAIRS`]).
type Fast = foldhash::fast::RandomState;

/// At most this many action and provider pairs are memoised; others are looked up each time.
const MEMO_PAIRS: usize = 4096;

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
        let mut open_provider = Vec::new();
        let mut by_provider: HashMap<String, Vec<usize>> = HashMap::new();
        for &i in &any_action {
            match rules.get(i).and_then(|r| r.providers.as_ref()) {
                Some(set) => {
                    for p in set {
                        by_provider.entry(p.clone()).or_default().push(i);
                    }
                }
                None => open_provider.push(i),
            }
        }
        let finders: Vec<Vec<Vec<Finder<'static>>>> = rules
            .iter()
            .map(|r| {
                r.texts
                    .iter()
                    .flatten()
                    .map(|parts| {
                        parts
                            .iter()
                            .map(|p| Finder::new(p.as_bytes()).into_owned())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Prefilter {
            rules,
            open,
            by_action,
            any_action,
            open_provider,
            by_provider,
            finders,
            queries: queries.iter().map(|q| (*q).clone()).collect(),
            times: Vec::new(),
            data_stream: false,
            exact: Vec::new(),
            takes_raw: Vec::new(),
            unfiltered: Vec::new(),
            flattened: false,
            memo: RefCell::default(),
        }
    }

    /// The prefilter that takes a rule whose query is true on what the raw record reveals as
    /// matched when it has no filters (`unfiltered[i]`); `flattened`: the normaliser keeps
    /// `aws.cloudtrail.flattened` (so its request parameters are known).
    pub fn with_decided(mut self, flattened: bool, unfiltered: Vec<bool>) -> Prefilter {
        self.flattened = flattened;
        self.unfiltered = unfiltered;
        self
    }

    /// The prefilter that decides rules exactly on the raw record where it can: `matchers[i]`
    /// is rule `i`'s compiled query (`None` when it has filters), `takes_raw[i]` whether the
    /// caller can take its hits from a raw record, `data_stream` whether the normaliser adds
    /// the data stream's constant fields.
    pub fn with_exact(
        mut self,
        data_stream: bool,
        matchers: Vec<Option<Matcher>>,
        takes_raw: Vec<bool>,
    ) -> Prefilter {
        self.data_stream = data_stream;
        self.exact = matchers
            .into_iter()
            .zip(&self.queries)
            .map(|(m, q)| m.filter(|_| knowable_only(q)))
            .collect();
        self.takes_raw = takes_raw;
        self
    }

    /// The number of rules decided exactly on raw records.
    pub fn exact_rules(&self) -> usize {
        self.exact.iter().flatten().count()
    }

    /// The prefilter that also skips raw records whose `eventTime` lies outside the ranges of
    /// all rules admitting them: `times[i]` is the inclusive range of `@timestamp` millis rule
    /// `i` uses hits in (`None`: any time, e.g. a rule timed on a field the record may have).
    pub fn with_times(mut self, times: Vec<Option<(i64, i64)>>) -> Prefilter {
        self.times = times;
        self
    }

    fn finders_of(&self, i: usize) -> &[Vec<Finder<'static>>] {
        self.finders.get(i).map_or(&[], Vec::as_slice)
    }

    /// True when rule `i` may use a hit of a record of time `t` (`None`: unknown).
    fn in_time(&self, i: usize, t: Option<(i64, i64)>) -> bool {
        match (self.times.get(i), t) {
            (Some(Some((lo, hi))), Some((a, b))) => b >= *lo && a <= *hi,
            _ => true,
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
        matches!(self.decide(raw, &mut Vec::new()), Decision::Skip)
    }

    /// What to do with a raw record: skip it (no rule can match it), parse it, or take the
    /// hits of the rules in `hits` (ascending) from it without parsing: every rule admitting it
    /// was decided exactly, some match, and all of those take raw hits.
    pub fn decide<'a>(&self, raw: &'a str, hits: &mut Vec<usize>) -> Decision<'a> {
        hits.clear();
        if self.open || TIMESTAMP.find(raw.as_bytes()).is_some() {
            // `@timestamp`: possibly an already-ECS document, passed through unnormalised.
            return Decision::Parse;
        }
        let keys = EventKeys::of(raw);
        let (Some(action), Some(provider)) = (keys.value(raw, 0), keys.value(raw, 1)) else {
            return Decision::Parse;
        };
        // A text with a backslash may hide a literal in an escape: not searched, not scanned.
        let text: Option<&'a str> = memchr::memchr(b'\\', raw.as_bytes())
            .is_none()
            .then_some(raw);
        let mut time = None;
        let mut top: Option<Option<Option<Top<'a>>>> = None;
        let admitted: Arc<[usize]> = match (action, provider) {
            (Some(a), Some(p)) => self.memoised(a, p),
            _ => self.admitted(action, provider, &|| None).collect(),
        };
        // By action and provider; then by time, the most selective; then the rule's texts.
        for &i in admitted.iter() {
            if !self.times.is_empty()
                && !self.in_time(i, *time.get_or_insert_with(|| raw_time(raw, &keys)))
            {
                continue;
            }
            if let Some(t) = text {
                let finders = self.finders_of(i);
                if !finders.is_empty()
                    && !finders
                        .iter()
                        .any(|parts| parts.iter().all(|p| p.find(t.as_bytes()).is_some()))
                {
                    continue;
                }
            }
            // The whole query on the fields read exactly from the record's top level.
            let Some(Some(top)) = top.get_or_insert_with(|| {
                text.map(|r| Top::scan_with(r, self.data_stream, self.flattened))
            }) else {
                return Decision::Parse;
            };
            let Some(query) = self.queries.get(i) else {
                return Decision::Parse;
            };
            match eval(query, top) {
                Tri::False => continue,
                Tri::True if self.unfiltered.get(i).copied().unwrap_or(false) => {
                    hits.push(i);
                    continue;
                }
                Tri::True | Tri::Unknown => {}
            }
            let Some(Some(matcher)) = self.exact.get(i) else {
                return Decision::Parse;
            };
            let known = matcher.matches_known(|f| match top.field(f) {
                Known::Value(v) => Some(Some(v)),
                Known::Absent => Some(None),
                Known::Unknown => None,
            });
            let Some(matches) = known else {
                return Decision::Parse;
            };
            if matches {
                hits.push(i);
            }
        }
        if hits.is_empty() {
            return Decision::Skip;
        }
        hits.sort_unstable();
        if !hits
            .iter()
            .all(|&i| self.takes_raw.get(i).copied().unwrap_or(false))
        {
            return Decision::Parse;
        }
        let time = time.unwrap_or_else(|| raw_time(raw, &keys));
        let (Some(Some(Some(top))), Some((t, _))) = (top, time) else {
            return Decision::Parse;
        };
        // The exact `@timestamp`, as the normaliser writes it and the hunt reads it.
        let Some(ts) = top
            .event_time()
            .and_then(|s| crate::ecs::normalize::es_date(&crate::ecs::json::Json::String(s.into())))
            .map(|j| j.to_value())
            .as_ref()
            .and_then(crate::fields::date_millis)
        else {
            return Decision::Parse;
        };
        if ts < t || ts > t + 999 {
            return Decision::Parse;
        }
        Decision::Hits(RawHits { top, ts })
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

    /// [`Prefilter::admitted`] without texts, memoised.
    fn memoised(&self, action: &str, provider: &str) -> Arc<[usize]> {
        if let Some(known) = self
            .memo
            .borrow()
            .0
            .get(action)
            .and_then(|by| by.get(provider))
        {
            return known.clone();
        }
        let rules: Arc<[usize]> = self
            .admitted(Some(action), Some(provider), &|| None)
            .collect();
        let (memo, pairs) = &mut *self.memo.borrow_mut();
        if *pairs < MEMO_PAIRS {
            *pairs += 1;
            memo.entry(action.to_string())
                .or_default()
                .insert(provider.to_string(), rules.clone());
        }
        rules
    }

    fn admitted<'s>(
        &'s self,
        action: Option<&'s str>,
        provider: Option<&'s str>,
        raw: &'s dyn Fn() -> Option<&'s str>,
    ) -> Box<dyn Iterator<Item = usize> + 's> {
        match action {
            None => {
                Box::new((0..self.rules.len()).filter(move |&i| {
                    self.rules[i].admits(None, provider, raw, self.finders_of(i))
                }))
            }
            Some(a) => {
                // The rules without an action requirement: by the provider when it is known.
                let (all, open, by) = match provider {
                    Some(p) => (None, Some(&self.open_provider), self.by_provider.get(p)),
                    None => (Some(&self.any_action), None, None),
                };
                Box::new(
                    all.into_iter()
                        .flatten()
                        .chain(open.into_iter().flatten())
                        .chain(by.into_iter().flatten())
                        .chain(self.by_action.get(a).into_iter().flatten())
                        .copied()
                        .filter(move |&i| {
                            self.rules[i].admits(None, provider, raw, self.finders_of(i))
                        }),
                )
            }
        }
    }
}

/// What to do with a raw record (see [`Prefilter::decide`]).
#[derive(Debug)]
// Made once per record on the stack; boxing the large variant would allocate per record.
#[allow(clippy::large_enum_variant)]
pub enum Decision<'a> {
    Skip,
    Parse,
    Hits(RawHits<'a>),
}

impl<'a> Decision<'a> {
    /// The raw record's hits, when taken.
    pub fn hits(self) -> Option<RawHits<'a>> {
        match self {
            Decision::Hits(r) => Some(r),
            _ => None,
        }
    }
}

/// What a raw record taken without parsing reveals.
#[derive(Debug, Clone, Copy)]
pub struct RawHits<'a> {
    top: Top<'a>,
    /// Its `@timestamp` in milliseconds.
    pub ts: i64,
}

impl<'a> RawHits<'a> {
    /// What the record tells of an ECS field of its normalisation.
    pub fn field(&self, field: &str) -> Known<'a> {
        self.top.field(field)
    }
}

/// True when a raw record may reveal `field` exactly.
pub fn knowable(field: &str) -> bool {
    KNOWABLE.contains(&field)
}

/// True when every field `ast` reads is one a raw record may reveal exactly (not free text,
/// a wildcard name or a nested query).
fn knowable_only(ast: &Ast) -> bool {
    match ast {
        Ast::And(items) | Ast::Or(items) => items.iter().all(knowable_only),
        Ast::Not(a) => knowable_only(a),
        Ast::Is { field: Some(f), .. } | Ast::Exists { field: f } | Ast::Range { field: f, .. } => {
            !f.wildcard && KNOWABLE.contains(&f.name.as_str())
        }
        Ast::MatchAll => true,
        Ast::Is { field: None, .. } | Ast::Nested { .. } => false,
    }
}

/// A three-valued truth: what a query is on a record, as far as its raw text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    False,
    True,
    Unknown,
}

/// What a raw record without any backslash reveals exactly: the strings the normaliser copies
/// (or derives a field from) unchanged, from the top level, its `userIdentity` and that
/// object's `sessionContext.sessionIssuer`; and whether the text mentions an error at all.
#[derive(Debug, Clone, Copy)]
pub struct Top<'a> {
    raw: &'a str,
    /// Per [`KEYS`]: `None` absent, `Some(None)` ambiguous or not a string, `Some(Some(v))`
    /// the string.
    found: [Option<Option<&'a str>>; KEYS.len()],
    /// Per [`OBJECTS`]: (times its key occurs, times its value is an object, or the array
    /// for `resources`).
    objects: [(u8, u8); OBJECTS.len()],
    /// In the top-level `resources` array: (objects, commas, other elements).
    resources: (u8, u8, u8),
    /// The keys of the top-level `requestParameters` object with their values (at most
    /// [`PARAMS`]).
    params: [Param; PARAMS],
    /// Keys of `requestParameters` seen (counting those not kept).
    param_keys: usize,
    /// A dotted key in `requestParameters`: its keys are not known.
    params_dotted: bool,
    /// The normaliser keeps `aws.cloudtrail.flattened` (the integration's default `retain`).
    flattened: bool,
    /// Neither `errorCode` nor `errorMessage` occurs anywhere in the text.
    no_error_text: bool,
    /// The normaliser adds the data stream's constant fields.
    data_stream: bool,
}

/// Where [`Top::scan`] is: the top-level object, or one of [`OBJECTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Identity,
    Session,
    Issuer,
    /// The top-level `resources` array, and an object in it.
    Resources,
    Resource,
    /// The top-level `requestParameters` object.
    Params,
    /// Any other object or array.
    Other,
}

/// The objects (and the array) [`Top::scan`] descends into: (level it is a key at, key, level
/// inside it, its opening byte).
const OBJECTS: [(Level, &str, Level, u8); 5] = [
    (Level::Root, "userIdentity", Level::Identity, b'{'),
    (Level::Identity, "sessionContext", Level::Session, b'{'),
    (Level::Session, "sessionIssuer", Level::Issuer, b'{'),
    (Level::Root, "resources", Level::Resources, b'['),
    (Level::Root, "requestParameters", Level::Params, b'{'),
];
const O_PARAMS: usize = 4;

/// Keys of `requestParameters` kept by the scan.
const PARAMS: usize = 8;

/// A `requestParameters` key and its value: byte ranges in the record, and the value's kind.
#[derive(Debug, Clone, Copy, Default)]
struct Param {
    key: (u32, u32),
    value: (u32, u32),
    kind: ParamKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ParamKind {
    /// A string (the range is its content).
    String,
    /// `true`, `false`, `null` or a number (the range is its text).
    Literal,
    /// An object or array.
    #[default]
    Container,
}

/// Prefix of the flattened copy of `requestParameters`.
const PARAMS_FIELD: &str = "aws.cloudtrail.flattened.request_parameters.";

/// Records shorter than this are known to keep their `requestParameters` flattened: the
/// normaliser drops the flattened copy of an object whose Java rendering reaches 32,766 UTF-16
/// units, and that rendering is at most 2.5 times the JSON (`[0,0]` renders `[0.0, 0.0]`).
const FLATTENED_RECORD_BYTES: usize = 12_000;

/// The string keys [`Top::scan`] reads: (level, key).
const KEYS: [(Level, &str); 19] = [
    (Level::Root, "eventName"),
    (Level::Root, "eventSource"),
    (Level::Root, "eventID"),
    (Level::Root, "sourceIPAddress"),
    (Level::Root, "errorCode"),
    (Level::Root, "eventTime"),
    (Level::Root, "userAgent"),
    (Level::Root, "sessionCredentialFromConsole"),
    (Level::Identity, "type"),
    (Level::Identity, "accessKeyId"),
    (Level::Identity, "accountId"),
    (Level::Identity, "userName"),
    (Level::Identity, "principalId"),
    (Level::Identity, "arn"),
    (Level::Identity, "invokedBy"),
    (Level::Issuer, "arn"),
    (Level::Issuer, "userName"),
    (Level::Resource, "ARN"),
    (Level::Resource, "arn"),
];
const K_EVENT_NAME: usize = 0;
const K_EVENT_SOURCE: usize = 1;
const K_EVENT_ID: usize = 2;
const K_SOURCE_IP: usize = 3;
const K_ERROR_CODE: usize = 4;
const K_EVENT_TIME: usize = 5;
const K_USER_AGENT: usize = 6;
const K_CONSOLE_CREDENTIAL: usize = 7;
const K_USER_TYPE: usize = 8;
const K_ACCESS: usize = 9;
const K_ACCOUNT_ID: usize = 10;
const K_USER_NAME: usize = 11;
const K_PRINCIPAL_ID: usize = 12;
const K_USER_ARN: usize = 13;
const K_INVOKED_BY: usize = 14;
const K_ISSUER_ARN: usize = 15;
const K_ISSUER_USER_NAME: usize = 16;
const K_RESOURCE_ARN: usize = 17;
const K_RESOURCE_LOWER_ARN: usize = 18;

/// What a raw record tells of one ECS field of its normalised document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known<'a> {
    /// The field is exactly this one string.
    Value(&'a str),
    /// The field is absent.
    Absent,
    Unknown,
}

/// The ECS fields [`Top::field`] can know exactly: a rule whose query reads only these can be
/// decided on the raw record.
pub const KNOWABLE: &[&str] = &[
    "event.action",
    "event.provider",
    "event.id",
    "event.outcome",
    "source.address",
    "source.ip",
    "user_agent.original",
    "user.name",
    "user.id",
    "cloud.account.id",
    "aws.cloudtrail.session_credential_from_console",
    "aws.cloudtrail.user_identity.type",
    "aws.cloudtrail.user_identity.access_key_id",
    "aws.cloudtrail.user_identity.arn",
    "aws.cloudtrail.user_identity.invoked_by",
    "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
    "aws.cloudtrail.resources.arn",
    "event.dataset",
    "event.module",
    "data_stream.type",
    "data_stream.dataset",
    "data_stream.namespace",
];

/// Known fields whose values do not compare as text (an IP: `::1` is `0::1`).
const NOT_TEXT: &[&str] = &[
    "source.ip",
    "aws.cloudtrail.session_credential_from_console",
];

/// The constant fields the normaliser adds with `data_stream` set.
const DATA_STREAM: [(&str, &str); 5] = [
    ("event.dataset", "aws.cloudtrail"),
    ("event.module", "aws"),
    ("data_stream.type", "logs"),
    ("data_stream.dataset", "aws.cloudtrail"),
    ("data_stream.namespace", "default"),
];

/// Nesting the scan tracks levels to (deeper is [`Level::Other`]).
const TRACKED: usize = 5;

impl<'a> Top<'a> {
    /// Reads `raw` (which has no backslash, so every string ends at the next quote); `None`
    /// when the text is not one well-nested object or a key of a tracked object is dotted.
    /// `data_stream`: the normaliser adds the data stream's constant fields.
    pub fn scan(raw: &'a str, data_stream: bool) -> Option<Top<'a>> {
        Top::scan_with(raw, data_stream, true)
    }

    /// [`Top::scan`]; `flattened`: the normaliser keeps `aws.cloudtrail.flattened`.
    fn scan_with(raw: &'a str, data_stream: bool, flattened: bool) -> Option<Top<'a>> {
        let b = raw.as_bytes();
        let (mut depth, mut i) = (0usize, 0usize);
        let mut last: Option<(usize, usize)> = None;
        let mut found: [Option<Option<&str>>; KEYS.len()] = [None; KEYS.len()];
        let mut objects = [(0u8, 0u8); 5];
        let mut params = [Param::default(); PARAMS];
        let (mut param_keys, mut params_dotted) = (0usize, false);
        let mut resources = (0u8, 0u8, 0u8);
        // The level of each open object (index = depth).
        let mut levels = [Level::Other; TRACKED];
        // The object (index into OBJECTS) whose value comes next, right after its key.
        let mut next_object: Option<usize> = None;
        let mut first = true;
        while i < b.len() {
            match b[i] {
                b'"' => {
                    let end = i + 1 + memchr::memchr(b'"', b.get(i + 1..)?)?;
                    last = Some((i + 1, end));
                    if levels.get(depth) == Some(&Level::Resources) {
                        resources.2 = resources.2.saturating_add(1);
                    }
                    i = end + 1;
                    continue;
                }
                b':' => {
                    let (s, e) = last.take()?;
                    let level = levels.get(depth).copied().unwrap_or(Level::Other);
                    if level == Level::Params {
                        let key = raw.get(s..e)?;
                        params_dotted |= dotted(key);
                        if let (Some(p), Some(value)) =
                            (params.get_mut(param_keys), value_at(b, i + 1))
                        {
                            *p = Param {
                                key: (u32::try_from(s).ok()?, u32::try_from(e).ok()?),
                                value: value.0,
                                kind: value.1,
                            };
                        }
                        param_keys += 1;
                    } else if level != Level::Other {
                        let key = raw.get(s..e)?;
                        if dotted(key) {
                            return None;
                        }
                        if let Some(n) = OBJECTS.iter().position(|o| o.0 == level && o.1 == key) {
                            objects[n].0 = objects[n].0.saturating_add(1);
                            next_object = Some(n);
                        }
                        if let Some(n) = KEYS.iter().position(|k| k.0 == level && k.1 == key) {
                            let value = string_at(raw, i + 1);
                            found[n] = Some(match found[n] {
                                None => value,
                                Some(_) => None,
                            });
                        }
                    }
                }
                c @ (b'{' | b'[') => {
                    if first && (depth != 0 || c != b'{') {
                        return None;
                    }
                    first = false;
                    depth += 1;
                    let within = levels.get(depth - 1).copied();
                    let level = match next_object.take() {
                        Some(n) if c == OBJECTS[n].3 => {
                            objects[n].1 = objects[n].1.saturating_add(1);
                            OBJECTS[n].2
                        }
                        _ if depth == 1 => Level::Root,
                        _ if within == Some(Level::Resources) => {
                            if c == b'{' {
                                resources.0 = resources.0.saturating_add(1);
                                Level::Resource
                            } else {
                                resources.2 = resources.2.saturating_add(1);
                                Level::Other
                            }
                        }
                        _ => Level::Other,
                    };
                    if let Some(l) = levels.get_mut(depth) {
                        *l = level;
                    }
                }
                b'}' | b']' => {
                    next_object = None;
                    depth = depth.checked_sub(1)?;
                    if depth == 0 && b.get(i + 1..)?.iter().any(|c| !c.is_ascii_whitespace()) {
                        return None;
                    }
                }
                b',' => {
                    next_object = None;
                    if levels.get(depth) == Some(&Level::Resources) {
                        resources.1 = resources.1.saturating_add(1);
                    }
                }
                c => {
                    // A number, true, false or null in the resources array.
                    if !c.is_ascii_whitespace() && levels.get(depth) == Some(&Level::Resources) {
                        resources.2 = resources.2.saturating_add(1);
                    }
                }
            }
            i += 1;
        }
        if depth != 0 || first {
            return None;
        }
        Some(Top {
            raw,
            found,
            objects,
            resources,
            params,
            param_keys,
            params_dotted,
            flattened,
            no_error_text: !mentions_any(b, &ERROR, 0, &[b"errorCode", b"errorMessage"]),
            data_stream,
        })
    }

    /// A key read by the scan: its non-empty string value, absent (it, or an object on its
    /// way, does not occur), or unknown (ambiguous, not a string, or empty, which the
    /// normaliser drops).
    fn key(&self, at: usize) -> Known<'a> {
        let Some((level, _)) = KEYS.get(at) else {
            return Known::Unknown;
        };
        let ancestors: &[usize] = match level {
            Level::Root | Level::Other | Level::Resources | Level::Resource | Level::Params => &[],
            Level::Identity => &[0],
            Level::Session => &[0, 1],
            Level::Issuer => &[0, 1, 2],
        };
        for &o in ancestors {
            match self.objects[o] {
                (0, _) => return Known::Absent,
                (1, 1) => {}
                _ => return Known::Unknown,
            }
        }
        match self.found.get(at).copied().flatten() {
            None => Known::Absent,
            Some(Some(v)) if !v.is_empty() => Known::Value(v),
            Some(_) => Known::Unknown,
        }
    }

    /// What the record tells of the ECS field `field` of its normalisation.
    pub fn field(&self, field: &str) -> Known<'a> {
        let value_or_unknown = |k: Known<'a>| match k {
            Known::Value(v) => Known::Value(v),
            _ => Known::Unknown,
        };
        match field {
            "event.action" => self.key(K_EVENT_NAME),
            "event.provider" => self.key(K_EVENT_SOURCE),
            "event.id" => self.key(K_EVENT_ID),
            "source.address" => self.key(K_SOURCE_IP),
            // Set (to the same text) when the address parses as an IP.
            "source.ip" => match self.key(K_SOURCE_IP) {
                Known::Value(v) if v.parse::<std::net::IpAddr>().is_ok() => Known::Value(v),
                Known::Value(_) | Known::Absent => Known::Absent,
                Known::Unknown => Known::Unknown,
            },
            "user_agent.original" => self.key(K_USER_AGENT),
            // Whatever its value's type, only its absence is used.
            "aws.cloudtrail.session_credential_from_console" => {
                match self.key(K_CONSOLE_CREDENTIAL) {
                    Known::Absent => Known::Absent,
                    _ => Known::Unknown,
                }
            }
            "aws.cloudtrail.user_identity.type" => self.key(K_USER_TYPE),
            "aws.cloudtrail.user_identity.access_key_id" => self.key(K_ACCESS),
            "aws.cloudtrail.user_identity.arn" => self.key(K_USER_ARN),
            "aws.cloudtrail.user_identity.invoked_by" => self.key(K_INVOKED_BY),
            "aws.cloudtrail.user_identity.session_context.session_issuer.arn" => {
                self.key(K_ISSUER_ARN)
            }
            // The one resource's `ARN` (renamed `arn`); with several, the values are a list.
            "aws.cloudtrail.resources.arn" => match (self.objects[3], self.resources) {
                ((0, _), _) => Known::Absent,
                ((1, 1), (0, 0, 0)) => Known::Absent,
                ((1, 1), (1, 0, 0)) => match self.found[K_RESOURCE_LOWER_ARN] {
                    None => match self.found[K_RESOURCE_ARN] {
                        None => Known::Absent,
                        Some(Some(v)) if !v.is_empty() => Known::Value(v),
                        Some(_) => Known::Unknown,
                    },
                    Some(_) => Known::Unknown,
                },
                _ => Known::Unknown,
            },
            // Else the recipient account, or a digest's account.
            "cloud.account.id" => value_or_unknown(self.key(K_ACCOUNT_ID)),
            // Else an Identity Center user's `onBehalfOf.userId`.
            "user.id" => value_or_unknown(self.key(K_PRINCIPAL_ID)),
            // The session issuer's name for an assumed role or federated user, else the
            // identity's `userName` (else, for a UserAuthentication, additionalEventData's).
            "user.name" => {
                let issuer = match self.key(K_USER_TYPE) {
                    Known::Value("AssumedRole" | "FederatedUser") => self.key(K_ISSUER_USER_NAME),
                    Known::Value(_) | Known::Absent => Known::Absent,
                    Known::Unknown => Known::Unknown,
                };
                match (issuer, self.key(K_USER_NAME)) {
                    (Known::Value(v), _) => Known::Value(v),
                    (Known::Unknown, _) => Known::Unknown,
                    (Known::Absent, Known::Value(v)) => Known::Value(v),
                    (Known::Absent, Known::Absent)
                        if !matches!(
                            self.key(K_EVENT_NAME),
                            Known::Value("UserAuthentication") | Known::Unknown
                        ) =>
                    {
                        Known::Absent
                    }
                    _ => Known::Unknown,
                }
            }
            // `success` unless the record has an error (a ConsoleLogin's comes from its
            // response instead).
            "event.outcome" => match self.key(K_EVENT_NAME) {
                Known::Unknown | Known::Value("ConsoleLogin") => Known::Unknown,
                _ if self.no_error_text => Known::Value("success"),
                _ if matches!(self.key(K_ERROR_CODE), Known::Value(_)) => Known::Value("failure"),
                _ => Known::Unknown,
            },
            f if f.starts_with(PARAMS_FIELD) => self.param(&f[PARAMS_FIELD.len()..]),
            f => match DATA_STREAM.iter().find(|(k, _)| *k == f) {
                Some((_, v)) if self.data_stream => Known::Value(v),
                _ => Known::Unknown,
            },
        }
    }

    /// What the record tells of `aws.cloudtrail.flattened.request_parameters.<key>`: a string or
    /// boolean value's text, absent, or unknown (a number, null, an empty string or an object;
    /// a dotted or repeated key; too many keys; a very long record; another `retain`).
    fn param(&self, key: &str) -> Known<'a> {
        if !self.flattened || self.raw.len() >= FLATTENED_RECORD_BYTES || dotted(key) {
            return Known::Unknown;
        }
        match self.objects[O_PARAMS] {
            (0, _) => return Known::Absent,
            (1, 1) => {}
            _ => return Known::Unknown,
        }
        if self.params_dotted || self.param_keys > PARAMS {
            return Known::Unknown;
        }
        let text = |r: (u32, u32)| self.raw.get(r.0 as usize..r.1 as usize);
        let mut found = None;
        for p in self.params.iter().take(self.param_keys) {
            if text(p.key) == Some(key) {
                if found.is_some() {
                    return Known::Unknown;
                }
                found = Some(p);
            }
        }
        let Some(p) = found else {
            return Known::Absent;
        };
        match (p.kind, text(p.value)) {
            (ParamKind::String, Some(v)) if !v.is_empty() => Known::Value(v),
            (ParamKind::Literal, Some(v @ ("true" | "false"))) => Known::Value(v),
            _ => Known::Unknown,
        }
    }

    /// The record's `eventTime` string, when read exactly.
    fn event_time(&self) -> Option<&'a str> {
        match self.key(K_EVENT_TIME) {
            Known::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// The value starting (after whitespace) at `at`: its byte range (a string's content) and
/// kind; `None` at the end of the text.
fn value_at(b: &[u8], at: usize) -> Option<((u32, u32), ParamKind)> {
    let start = at + b.get(at..)?.iter().position(|c| !c.is_ascii_whitespace())?;
    let (range, kind) = match b.get(start)? {
        b'"' => {
            let end = start + 1 + memchr::memchr(b'"', b.get(start + 1..)?)?;
            ((start + 1, end), ParamKind::String)
        }
        b'{' | b'[' => ((start, start), ParamKind::Container),
        _ => {
            let len = b
                .get(start..)?
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace())?;
            ((start, start + len), ParamKind::Literal)
        }
    };
    Some((
        (u32::try_from(range.0).ok()?, u32::try_from(range.1).ok()?),
        kind,
    ))
}

/// The string value starting (after whitespace) at `at`; `None` when it is not a string.
fn string_at(raw: &str, at: usize) -> Option<&str> {
    let rest = raw.get(at..)?.trim_start().strip_prefix('"')?;
    rest.get(..memchr::memchr(b'"', rest.as_bytes())?)
}

/// True when the record tells the flattened request parameter `field` exactly (a value or
/// absent); with a value, only a literal without wildcards is compared (by `eval`).
fn param_known(top: &Top<'_>, field: &str) -> bool {
    field
        .get(PARAMS_FIELD.len()..)
        .is_some_and(|key| top.param(key) != Known::Unknown)
}

/// `ast` on a raw record: `False` only when no normalisation of it can match; `True` only
/// when every normalisation matches.
fn eval(ast: &Ast, top: &Top<'_>) -> Tri {
    match ast {
        Ast::MatchAll => Tri::True,
        Ast::And(items) => {
            let mut out = Tri::True;
            for a in items {
                match eval(a, top) {
                    Tri::False => return Tri::False,
                    Tri::Unknown => out = Tri::Unknown,
                    Tri::True => {}
                }
            }
            out
        }
        Ast::Or(items) => {
            let mut out = Tri::False;
            for a in items {
                match eval(a, top) {
                    Tri::True => return Tri::True,
                    Tri::Unknown => out = Tri::Unknown,
                    Tri::False => {}
                }
            }
            out
        }
        Ast::Not(a) => match eval(a, top) {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        },
        Ast::Is {
            field: Some(f),
            value,
        } if !f.wildcard && f.name.starts_with(PARAMS_FIELD) && param_known(top, &f.name) => {
            // A flattened leaf is a keyword of the value's text (`true` for a boolean).
            match (top.param(&f.name[PARAMS_FIELD.len()..]), value.as_literal()) {
                (Known::Absent, _) => Tri::False,
                (Known::Value(v), Some(lit)) if v == lit => Tri::True,
                (Known::Value(_), Some(_)) => Tri::False,
                _ => Tri::Unknown,
            }
        }
        Ast::Exists { field: f }
            if !f.wildcard && f.name.starts_with(PARAMS_FIELD) && param_known(top, &f.name) =>
        {
            match top.param(&f.name[PARAMS_FIELD.len()..]) {
                Known::Value(_) => Tri::True,
                _ => Tri::False,
            }
        }
        Ast::Is {
            field: Some(f),
            value,
        } if !f.wildcard => {
            // Keyword values compare as text (an IP does not: `::1` is `0::1`).
            match (top.field(&f.name), value.as_literal()) {
                (Known::Absent, _) => return Tri::False,
                (Known::Value(v), Some(lit)) if !NOT_TEXT.contains(&f.name.as_str()) => {
                    return if v == lit { Tri::True } else { Tri::False };
                }
                _ => {}
            }
            // A literal text the field would copy from the record must be in it (as `texts`).
            let missing = |t: &str| !t.is_empty() && !top.raw.contains(t);
            fn text(p: &crate::kql::Part) -> Option<&str> {
                match p {
                    crate::kql::Part::Text(t) => Some(t.as_str()),
                    crate::kql::Part::Wildcard => None,
                }
            }
            let absent = if VERBATIM.contains(&f.name.as_str()) {
                value.parts.iter().filter_map(text).any(missing)
            } else if f.name.starts_with(FLATTENED) {
                missing(f.name.rsplit('.').next().unwrap_or_default())
                    || value
                        .parts
                        .iter()
                        .filter_map(text)
                        .any(|t| not_numeric(t) && missing(t))
            } else {
                false
            };
            if absent {
                Tri::False
            } else {
                Tri::Unknown
            }
        }
        Ast::Exists { field: f } if !f.wildcard && KNOWABLE.contains(&f.name.as_str()) => {
            match top.field(&f.name) {
                Known::Value(_) => Tri::True,
                Known::Absent => Tri::False,
                Known::Unknown => Tri::Unknown,
            }
        }
        Ast::Exists { field: f } if !f.wildcard && f.name.starts_with(FLATTENED) => {
            let key = f.name.rsplit('.').next().unwrap_or_default();
            if !key.is_empty() && !top.raw.contains(key) {
                Tri::False
            } else {
                Tri::Unknown
            }
        }
        _ => Tri::Unknown,
    }
}

/// The millisecond range `@timestamp` falls in once the raw record is normalised: its
/// `eventTime` read unambiguously as `YYYY-MM-DDTHH:MM:SS[.f]Z`; `None` when unknown (no or an
/// unusual `eventTime`, or a digest record, whose `@timestamp` is `digestEndTime`). A record
/// mentioning `ingested` anywhere is unknown too, so a rule timed on `event.ingested` (which the
/// normaliser does not produce) is timed by `@timestamp` here.
fn raw_time(raw: &str, keys: &EventKeys) -> Option<(i64, i64)> {
    if mentions_any(raw.as_bytes(), &GEST, 2, &[b"digestEndTime", b"ingested"]) {
        return None;
    }
    let s = keys.value(raw, 2)??;
    let b = s.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let frac = &b[19..b.len() - 1];
    let frac_ok = frac.is_empty()
        || (frac.len() >= 2 && frac[0] == b'.' && frac[1..].iter().all(u8::is_ascii_digit));
    if !frac_ok {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(d.iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0')))
    };
    if (b[4], b[7], b[10], b[13], b[16]) != (b'-', b'-', b'T', b':', b':') {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(digits(0..4)?).ok()?,
        digits(5..7)?,
        digits(8..10)?,
    )?;
    let (h, m, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if sec > 59 {
        return None;
    }
    let t = date.and_hms_opt(h, m, sec)?.and_utc().timestamp_millis();
    Some((t, t + 999))
}

/// Where `"eventName"`, `"eventSource"` and `"eventTime"` (in this order) occur in a raw
/// record's text: how often (up to 2) and where the first occurrence ends.
struct EventKeys {
    count: [u8; 3],
    end: [usize; 3],
}

impl EventKeys {
    const KEYS: [&'static [u8]; 3] = [b"eventName\"", b"eventSource\"", b"eventTime\""];

    fn of(raw: &str) -> EventKeys {
        let mut k = EventKeys {
            count: [0; 3],
            end: [0; 3],
        };
        let b = raw.as_bytes();
        // `"event` has no quote after its first byte, so no occurrence of a key starts inside
        // another's match: the non-overlapping search sees every occurrence.
        for at in EVENT_KEY.find_iter(b) {
            let rest = b.get(at + 1..).unwrap_or_default();
            if let Some(n) = EventKeys::KEYS.iter().position(|key| rest.starts_with(key)) {
                if k.count[n] == 0 {
                    k.end[n] = at + 1 + EventKeys::KEYS[n].len();
                }
                k.count[n] = k.count[n].saturating_add(1).min(2);
            }
        }
        k
    }

    /// The value of key `n`: `Some(Some(v))` when the key occurs exactly once in the text and
    /// its value is a string without escapes; `Some(None)` when the key does not occur
    /// (treated as unknown, never as absent); `None` when ambiguous.
    fn value<'a>(&self, raw: &'a str, n: usize) -> Option<Option<&'a str>> {
        match self.count.get(n)? {
            0 => return Some(None),
            1 => {}
            _ => return None,
        }
        let b = raw.as_bytes();
        let mut at = *self.end.get(n)?;
        let skip_space = |at: &mut usize| {
            while b.get(*at).is_some_and(u8::is_ascii_whitespace) {
                *at += 1;
            }
        };
        skip_space(&mut at);
        (b.get(at) == Some(&b':')).then_some(())?;
        at += 1;
        skip_space(&mut at);
        (b.get(at) == Some(&b'"')).then_some(())?;
        let start = at + 1;
        let end = start + memchr::memchr2(b'"', b'\\', b.get(start..)?)?;
        if b[end] != b'"' {
            return None;
        }
        Some(Some(raw.get(start..end)?))
    }
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
    fn one_search_finds_either_word_as_two_would() {
        let words: [(&Finder<'_>, usize, [&[u8]; 2]); 2] = [
            (&GEST, 2, [b"digestEndTime", b"ingested"]),
            (&ERROR, 0, [b"errorCode", b"errorMessage"]),
        ];
        let texts = [
            "",
            "gest",
            "digest",
            "digestEndTime",
            "x\"digestEndTime\":1",
            "ingested",
            "iningested",
            "suggest ingest ingested",
            "gestgestingested",
            "digestEnd digestEndTim ingeste",
            "error",
            "errorerrorCode",
            "errorMessag errorMessage",
            "xerrorCod",
            "terrorCode",
        ];
        for (finder, offset, [a, b]) in words {
            for t in texts {
                let want = memchr::memmem::find(t.as_bytes(), a).is_some()
                    || memchr::memmem::find(t.as_bytes(), b).is_some();
                assert_eq!(
                    mentions_any(t.as_bytes(), finder, offset, &[a, b]),
                    want,
                    "{t}"
                );
            }
        }
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
        assert!(
            p.skip(r#"{"eventTime":"2026-10-01T00:00:00Z"}"#),
            "no eventName at the top: no event.action, which both rules require"
        );
        assert!(
            p.skip(r#"{"eventTime":"2026-10-01T00:00:00Z","x":{"eventName":"StopLogging"}}"#),
            "a nested eventName is not the action"
        );
        // a rule without a requirement keeps everything
        assert!(
            !pf(&["event.action:A", "event.outcome:success"]).skip(&rec("s3.amazonaws.com", "B"))
        );
        assert!(pf(&["event.action:A", "user.name:root"]).skip(&rec("s3.amazonaws.com", "B")));
        // rules without an action requirement, found by provider
        let p = pf(&[
            "event.provider:s3.amazonaws.com and user.name:root",
            "event.action:A",
            "event.provider:(ec2.amazonaws.com or s3.amazonaws.com) and user.name:admin",
        ]);
        let named = |source: &str, user: &str| {
            rec(source, "B").replace(
                "\"requestParameters\"",
                &format!("\"userIdentity\":{{\"type\":\"IAMUser\",\"userName\":\"{user}\"}},\"requestParameters\""),
            )
        };
        assert!(p.skip(&named("iam.amazonaws.com", "root")));
        assert!(!p.skip(&named("s3.amazonaws.com", "root")));
        assert!(p.skip(&named("s3.amazonaws.com", "bob")));
        assert!(!p.skip(&named("ec2.amazonaws.com", "admin")));
        assert!(p.skip(&named("ec2.amazonaws.com", "root")));
        assert!(
            p.skip(&named("s3.amazonaws.com", "root").replace("\"eventSource\"", "\"source\"")),
            "no eventSource: no provider, which the rules without an action require"
        );
        assert!(
            !p.skip(&named("s3.amazonaws.com", "root").replace("\"x\":1", "\"eventSource\":1")),
            "two eventSource keys: every rule without an action requirement"
        );
        assert!(
            p.skip(&named("s3.amazonaws.com", "root").replace("userName", "user")),
            "the user name is the identity's"
        );
    }

    /// A prefilter deciding every rule exactly where it can; rules listed in `raw` take hits
    /// from raw records.
    fn exact(queries: &[&str], raw: &[usize]) -> Prefilter {
        let catalog = crate::fields::FieldCatalog::builtin();
        let asts: Vec<Ast> = queries
            .iter()
            .map(|q| crate::kql::parse(q).unwrap())
            .collect();
        let matchers = asts
            .iter()
            .map(|a| Some(Matcher::compile(a, &catalog).unwrap()))
            .collect();
        Prefilter::new(&asts.iter().collect::<Vec<_>>()).with_exact(
            true,
            matchers,
            (0..queries.len()).map(|i| raw.contains(&i)).collect(),
        )
    }

    #[test]
    fn rules_reading_only_known_fields_are_decided_on_the_raw_record() {
        let p = exact(
            &[
                "data_stream.dataset: \"aws.cloudtrail\" and event.outcome: \"success\" and source.ip:* and aws.cloudtrail.user_identity.access_key_id: AKIA*",
                "event.action: Invoke* and not aws.cloudtrail.user_identity.invoked_by: * and user.name: ops*",
                "event.action: StopLogging and user_agent.original: *Browser*",
            ],
            &[0, 1],
        );
        let record = |key: &str, ip: &str, extra: &str| {
            format!(
                r#"{{"eventTime":"2026-10-01T00:00:09Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"e-1","sourceIPAddress":"{ip}","userIdentity":{{"type":"IAMUser","accessKeyId":"{key}","userName":"bob"}}{extra}}}"#
            )
        };
        let mut hits = Vec::new();
        let decided = |raw: &str, hits: &mut Vec<usize>| match p.decide(raw, hits) {
            Decision::Skip => "skip".to_string(),
            Decision::Parse => "parse".to_string(),
            Decision::Hits(r) => {
                assert_eq!(r.ts, 1_790_812_809_000);
                assert_eq!(r.field("event.id"), Known::Value("e-1"));
                format!("hits {hits:?}")
            }
        };
        let akia = record("AKIAEXAMPLE", "192.0.2.1", "");
        assert_eq!(decided(&akia, &mut hits), "hits [0]");
        assert_eq!(
            p.decide(&akia, &mut hits)
                .hits()
                .map(|r| r.field("source.ip")),
            Some(Known::Value("192.0.2.1"))
        );
        assert_eq!(
            decided(&record("ASIAEXAMPLE", "192.0.2.1", ""), &mut hits),
            "skip"
        );
        assert_eq!(
            decided(&record("AKIAEXAMPLE", "AWS Internal", ""), &mut hits),
            "skip",
            "no source.ip"
        );
        assert_eq!(
            decided(
                &record("AKIAEXAMPLE", "192.0.2.1", r#","errorCode":"Denied""#),
                &mut hits
            ),
            "skip",
            "failure"
        );
        assert_eq!(
            decided(
                &record("AKIAEXAMPLE", "192.0.2.1", r#","x":{"errorCode":"Denied"}"#),
                &mut hits
            ),
            "parse",
            "an error text elsewhere: outcome unknown"
        );
        // rule 1: user.name from the identity, or the session issuer for an assumed role
        let invoke = |identity: &str| {
            format!(
                r#"{{"eventTime":"2026-10-01T00:00:09Z","eventSource":"lambda.amazonaws.com","eventName":"Invoke","eventID":"e-1","userIdentity":{identity}}}"#
            )
        };
        assert_eq!(
            decided(
                &invoke(r#"{"type":"IAMUser","userName":"ops-1"}"#),
                &mut hits
            ),
            "hits [1]"
        );
        assert_eq!(
            decided(&invoke(r#"{"type":"IAMUser","userName":"dev"}"#), &mut hits),
            "skip"
        );
        assert_eq!(
            decided(
                &invoke(
                    r#"{"type":"AssumedRole","userName":"dev","sessionContext":{"sessionIssuer":{"userName":"ops-role"}}}"#
                ),
                &mut hits
            ),
            "hits [1]"
        );
        assert_eq!(
            decided(
                &invoke(r#"{"type":"IAMUser","userName":"ops-1","invokedBy":"s3.amazonaws.com"}"#),
                &mut hits
            ),
            "skip"
        );
        assert_eq!(
            decided(
                &invoke(r#"{"type":"IAMUser","userName":"ops-1","userName":"x"}"#),
                &mut hits
            ),
            "parse",
            "a duplicated key is unknown"
        );
        assert_eq!(
            decided(
                &invoke(r#"{"type":"IAMUser","userName":"","x":"ops"}"#),
                &mut hits
            ),
            "parse",
            "an empty string is dropped by the normaliser: unknown"
        );
        assert_eq!(decided(&invoke(r#"null,"x":"ops""#), &mut hits), "parse");
        // rule 2 matches but does not take raw hits: parsed
        let stop = r#"{"eventTime":"2026-10-01T00:00:09Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","eventID":"e-1","userAgent":"S3 Browser 1"}"#;
        assert_eq!(decided(stop, &mut hits), "parse");
        assert_eq!(
            decided(&stop.replace("S3 Browser", "cli"), &mut hits),
            "skip"
        );
        // a time with a fraction is exact too; an unusual one is not decided
        let frac = akia.replace("00:00:09Z", "00:00:09.250Z");
        assert_eq!(
            p.decide(&frac, &mut hits).hits().map(|r| r.ts),
            Some(1_790_812_809_250)
        );
        assert_eq!(
            decided(&akia.replace("00:00:09Z", "00:00:09+00:00"), &mut hits),
            "parse"
        );
    }

    /// The raw evaluation compares a known value with a literal as text: right for keyword
    /// fields only (a text field would match a phrase inside the value).
    #[test]
    fn known_fields_compared_as_text_are_keywords() {
        let catalog = crate::fields::FieldCatalog::builtin();
        for f in KNOWABLE.iter().filter(|f| !NOT_TEXT.contains(f)) {
            let spec = catalog
                .get(f)
                .unwrap_or_else(|| panic!("{f} not in the catalog"));
            assert!(
                matches!(
                    spec.kind(),
                    crate::fields::FieldKind::Keyword | crate::fields::FieldKind::ConstantKeyword
                ),
                "{f}: {:?}",
                spec.kind()
            );
        }
    }

    #[test]
    fn records_outside_every_admitting_rules_time_range_are_skipped() {
        let at = |s: &str| crate::time::parse_absolute(s).unwrap().timestamp_millis();
        let day = |d: &str| Some((at(&format!("{d}T00:00:00Z")), at(&format!("{d}T23:59:59Z"))));
        let p = pf(&["event.action:A", "event.action:(A or B)", "event.action:C"])
            .with_times(vec![day("2026-10-01"), day("2026-10-02"), None]);
        let at_time =
            |name: &str, t: &str| rec("s3.amazonaws.com", name).replace("2026-10-01T00:00:00Z", t);
        assert!(!p.skip(&at_time("A", "2026-10-01T12:00:00Z")));
        assert!(!p.skip(&at_time("A", "2026-10-02T12:00:00Z")));
        assert!(p.skip(&at_time("A", "2026-10-03T00:00:00Z")));
        assert!(p.skip(&at_time("B", "2026-10-01T12:00:00Z")));
        assert!(!p.skip(&at_time("B", "2026-10-02T23:59:59.999Z")));
        assert!(
            !p.skip(&at_time("A", "2026-10-01T23:59:59.5Z")),
            "within the last second of the range (it ends at 23:59:59.000)"
        );
        assert!(p.skip(&at_time("B", "2026-10-01T23:59:59.999Z")));
        assert!(!p.skip(&at_time("C", "2030-01-01T00:00:00Z")), "no range");
        // an unusual or ambiguous time keeps the record
        assert!(!p.skip(&at_time("B", "2026-10-01T12:00:00+00:00")));
        assert!(!p.skip(&at_time("B", "2026-10-01 12:00:00Z")));
        assert!(!p.skip(&at_time("B", "2026-10-01T12:00:60Z")));
        assert!(!p.skip(
            &at_time("B", "2026-10-01T12:00:00Z")
                .replace("\"x\":1", "\"eventTime\":\"2026-10-02T00:00:00Z\"")
        ));
        assert!(!p
            .skip(&at_time("B", "2026-10-01T12:00:00Z").replace("\"x\":1", "\"digestEndTime\":1")));
        assert!(!p.skip(&at_time("B", "2026-10-01T12:00:00Z").replace("\"x\":1", "\"ingested\":1")));
        assert!(!p.skip(
            &rec("s3.amazonaws.com", "B").replace("\"eventTime\":\"2026-10-01T00:00:00Z\",", "")
        ));
        let empty = pf(&["event.action:A"]).with_times(vec![Some((i64::MAX, i64::MIN))]);
        assert!(
            empty.skip(&at_time("A", "2026-10-01T12:00:00Z")),
            "a rule that never runs"
        );
    }

    #[test]
    fn the_whole_query_is_evaluated_on_the_exactly_known_top_level_fields() {
        let p = pf(&[
            "event.action:GetCallerIdentity and event.outcome:success and not aws.cloudtrail.user_identity.type:AssumedRole",
            "event.action:(ConsoleLogin or StopLogging) and event.outcome:failure",
        ]);
        let with = |name: &str, extra: &str| {
            rec("sts.amazonaws.com", name).replace(
                "\"requestParameters\"",
                &format!("{extra}\"requestParameters\""),
            )
        };
        let identity = |t: &str| format!("\"userIdentity\":{{\"type\":\"{t}\",\"arn\":\"a\"}},");
        assert!(p.skip(&with("GetCallerIdentity", &identity("AssumedRole"))));
        assert!(!p.skip(&with("GetCallerIdentity", &identity("IAMUser"))));
        assert!(
            !p.skip(&with("GetCallerIdentity", "")),
            "no identity: no type, so not an AssumedRole"
        );
        assert!(
            p.skip(&with(
                "GetCallerIdentity",
                &format!("{}\"errorCode\":\"AccessDenied\",", identity("IAMUser"))
            )),
            "a top-level errorCode: the outcome is failure"
        );
        assert!(!p.skip(&with(
            "GetCallerIdentity",
            &format!(
                "{}\"x\":{{\"errorCode\":\"AccessDenied\"}},",
                identity("IAMUser")
            )
        )));
        // a nested, duplicated or escaped identity is not the top-level one
        assert!(!p.skip(&with(
            "GetCallerIdentity",
            "\"x\":{\"userIdentity\":{\"type\":\"AssumedRole\"}},"
        )));
        assert!(!p.skip(&with(
            "GetCallerIdentity",
            &format!(
                "{}\"userIdentity\":{{\"arn\":\"a\"}},",
                identity("AssumedRole")
            )
        )));
        assert!(!p.skip(&with(
            "GetCallerIdentity",
            "\"userIdentity\":{\"type\":\"AssumedRole\",\"type\":\"IAMUser\"},"
        )));
        assert!(!p.skip(&with(
            "GetCallerIdentity",
            "\"userIdentity\":{\"type\":\"Assumed\\u0052ole\"},"
        )));
        assert!(
            p.skip(&with(
                "GetCallerIdentity",
                "\"userIdentity\":{\"x\":{\"type\":\"IAMUser\"},\"type\":\"AssumedRole\"},"
            )),
            "a deeper type is not the identity's"
        );
        // outcome: success only without any error text; a console login's comes from its response
        assert!(p.skip(&with("StopLogging", "")));
        assert!(!p.skip(&with("StopLogging", "\"errorMessage\":\"denied\",")));
        assert!(!p.skip(&with("ConsoleLogin", "")));
        // not one well-nested object: unknown
        assert!(!p.skip(&format!("{}}}", with("StopLogging", ""))));
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
