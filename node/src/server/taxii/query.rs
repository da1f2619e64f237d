//! TAXII 2.1 query parameters: `added_after`, `limit`, `next`, `match[id]`,
//! `match[type]`, `match[version]`, `match[spec_version]`.

use super::token;
use crate::server::error::ApiError;
use crate::stix::timestamp::Timestamp;
use crate::store::prepare::split_id;

/// One `match[version]` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// The latest version.
    Last,
    /// The earliest version.
    First,
    /// Every version.
    All,
    /// The version with this `modified` (µs).
    At(i64),
}

/// Parsed filters of a request.
#[derive(Debug, Clone)]
pub struct Filters {
    /// `added_after` (µs).
    pub added_after: Option<i64>,
    /// `match[id]`: (type, uuid).
    pub ids: Vec<(String, u128)>,
    /// `match[type]`.
    pub types: Vec<String>,
    /// `match[version]` (default `last`).
    pub versions: Vec<VersionSpec>,
    /// `match[spec_version]`.
    pub spec_versions: Vec<String>,
    /// `limit`.
    pub limit: usize,
    /// `next`.
    pub next: Option<String>,
    /// The filters in a canonical text form, for binding `next` tokens.
    pub canonical: String,
}

fn bad(param: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("bad-query", format!("{param}: {msg}")).taxii()
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl Filters {
    /// Parses query pairs. `default_limit`/`max_limit` come from the config.
    pub fn parse(
        pairs: &[(String, String)],
        default_versions: VersionSpec,
        default_limit: usize,
        max_limit: usize,
    ) -> Result<Filters, ApiError> {
        let mut f = Filters {
            added_after: None,
            ids: Vec::new(),
            types: Vec::new(),
            versions: Vec::new(),
            spec_versions: Vec::new(),
            limit: default_limit,
            next: None,
            canonical: String::new(),
        };
        let mut canon: Vec<String> = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "added_after" => {
                    let t = Timestamp::parse(v).map_err(|e| bad(k, e))?;
                    f.added_after = Some(t.as_micros());
                    canon.push(format!("added_after={}", t.as_micros()));
                }
                "limit" => {
                    let n: usize = v
                        .parse()
                        .map_err(|_| bad(k, "must be a positive integer"))?;
                    if n == 0 {
                        return Err(bad(k, "must be a positive integer"));
                    }
                    f.limit = n.min(max_limit);
                }
                "next" => f.next = Some(v.clone()),
                "match[id]" => {
                    for id in list(v) {
                        let (t, u) = split_id(id)
                            .ok_or_else(|| bad(k, format!("{id:?} is not a STIX id")))?;
                        f.ids.push((t.to_string(), u));
                    }
                    canon.push(format!("id={v}"));
                }
                "match[type]" => {
                    for t in list(v) {
                        if t.len() > 250
                            || !t
                                .bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        {
                            return Err(bad(k, format!("{t:?} is not a STIX type")));
                        }
                        f.types.push(t.to_string());
                    }
                    canon.push(format!("type={v}"));
                }
                "match[version]" => {
                    for s in list(v) {
                        f.versions.push(match s {
                            "last" => VersionSpec::Last,
                            "first" => VersionSpec::First,
                            "all" => VersionSpec::All,
                            t => VersionSpec::At(
                                Timestamp::parse(t)
                                    .map_err(|_| {
                                        bad(
                                            k,
                                            format!("{t:?} is not last, first, all or a timestamp"),
                                        )
                                    })?
                                    .as_micros(),
                            ),
                        });
                    }
                    canon.push(format!("version={v}"));
                }
                "match[spec_version]" => {
                    for s in list(v) {
                        if s != "2.0" && s != "2.1" {
                            return Err(bad(k, format!("{s:?} is not 2.0 or 2.1")));
                        }
                        f.spec_versions.push(s.to_string());
                    }
                    canon.push(format!("spec_version={v}"));
                }
                other if other.starts_with("match[") => {
                    return Err(bad(
                        other,
                        "unsupported filter (supported: id, type, version, spec_version)",
                    ));
                }
                _ => {}
            }
        }
        if f.versions.is_empty() {
            f.versions.push(default_versions);
        }
        canon.sort();
        f.canonical = canon.join("&");
        Ok(f)
    }
}

/// What a paged TAXII request asks for once its query is checked: the filters, and the
/// `date_added` (µs) to resume after, from `added_after` and the `next` token.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// The parsed filters (with the object id of the URL, if any).
    pub filters: Filters,
    /// Select only versions added after this instant.
    pub after: Option<i64>,
}

/// Where a paged request is answered: what binds its `next` tokens.
#[derive(Debug, Clone, Copy)]
pub struct PageScope<'a> {
    /// The node's token key.
    pub token_key: &'a [u8; 32],
    /// The collection's [`token_scope`](super::collections::Collection::token_scope).
    pub collection: &'a str,
    /// The object id of `…/objects/{id}/` URLs.
    pub object_id: Option<&'a str>,
}

/// Checks the query of a paged TAXII request (objects, manifest, object, versions):
/// parses the filters and resolves `next` against the collection and filters it was
/// issued for. Public so that the fuzz target drives exactly what the server runs on
/// every query string a client sends.
pub fn parse_page_request(
    pairs: &[(String, String)],
    default_versions: VersionSpec,
    default_limit: usize,
    max_limit: usize,
    scope: PageScope<'_>,
) -> Result<PageRequest, ApiError> {
    let mut f = Filters::parse(pairs, default_versions, default_limit, max_limit)?;
    if let Some(id) = scope.object_id {
        let (t, u) = split_id(id).ok_or_else(|| {
            ApiError::bad_request("bad-id", format!("{id:?} is not a STIX id")).taxii()
        })?;
        f.ids = vec![(t.to_string(), u)];
        f.canonical = format!("{}&object={id}", f.canonical);
    }
    let from_token = match &f.next {
        Some(t) => Some(
            token::decode(scope.token_key, scope.collection, &f.canonical, t).ok_or_else(|| {
                ApiError::bad_request(
                    "bad-next",
                    "`next` is not a token this node issued for this collection and these filters",
                )
                .taxii()
            })?,
        ),
        None => None,
    };
    let after = match (f.added_after, from_token) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(PageRequest { filters: f, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Result<Filters, ApiError> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Filters::parse(&v, VersionSpec::Last, 100, 1000)
    }

    #[test]
    fn parses_every_filter() {
        let f = p(&[
            ("match[type]", "indicator,malware"),
            ("match[version]", "first,2026-01-01T00:00:00.000Z"),
            (
                "match[id]",
                "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            ),
            ("match[spec_version]", "2.1"),
            ("added_after", "2026-01-01T00:00:00Z"),
            ("limit", "5000"),
        ])
        .unwrap();
        assert_eq!(f.types, vec!["indicator", "malware"]);
        assert_eq!(f.versions.len(), 2);
        assert_eq!(f.ids.len(), 1);
        assert_eq!(f.limit, 1000, "capped at the server maximum");
        assert!(f.added_after.is_some());
        assert_eq!(p(&[]).unwrap().versions, vec![VersionSpec::Last]);
    }

    #[test]
    fn refuses_malformed_parameters() {
        for bad in [
            ("limit", "0"),
            ("limit", "-1"),
            ("limit", "ten"),
            ("added_after", "yesterday"),
            ("match[id]", "not-an-id"),
            ("match[type]", "Indicator"),
            ("match[version]", "latest"),
            ("match[spec_version]", "3.0"),
            ("match[color]", "red"),
        ] {
            let e = p(&[bad]).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn request(pairs: &[(&str, &str)], collection: &str) -> Result<PageRequest, ApiError> {
        let scope = PageScope {
            token_key: &[3u8; 32],
            collection,
            object_id: None,
        };
        parse_page_request(&owned(pairs), VersionSpec::Last, 100, 1000, scope)
    }

    #[test]
    fn page_request_resumes_only_in_the_scope_of_its_token() {
        let first = request(&[("match[type]", "indicator")], "c:consolidated").unwrap();
        assert_eq!(first.after, None);
        let next = token::encode(&[3u8; 32], "c:consolidated", &first.filters.canonical, 42);
        let q = [("match[type]", "indicator"), ("next", next.as_str())];
        assert_eq!(request(&q, "c:consolidated").unwrap().after, Some(42));
        let e = request(&q, "l:local").unwrap_err();
        assert_eq!(e.code, "bad-next", "another collection");
        let e = request(&[("next", next.as_str())], "c:consolidated").unwrap_err();
        assert_eq!(e.code, "bad-next", "other filters");
        let later = [
            ("match[type]", "indicator"),
            ("next", next.as_str()),
            ("added_after", "2026-01-01T00:00:00Z"),
        ];
        assert!(
            request(&later, "c:consolidated").unwrap_err().code == "bad-next",
            "added_after is part of what a token is bound to"
        );
    }
}
