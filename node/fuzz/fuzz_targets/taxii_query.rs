//! Arbitrary query strings through the checks every paged TAXII request runs: the
//! query-string decoding axum does, `Filters::parse`, and the `next` token decoder,
//! via `parse_page_request`, the very function the server calls.
//!
//! Checks that nothing panics and that every refusal is a 400 with a stable code; that
//! an accepted `next` is byte for byte the token this node would issue for that
//! collection and those filters (no malleable tokens), and that no other collection or
//! node key accepts it; and that a token minted for a request resumes that request,
//! while any edit of it (the structured mode: the input says how to edit the minted
//! token) is either refused or leaves it unchanged.
//!
//! Input: byte 0 = flags (collection, object URL, default versions, edit mode), bytes
//! 1..9 = the `date_added` to mint a token for, byte 9 = number of edits, then two
//! bytes per edit, then the query string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use synergia::server::taxii::collections::{Collection, Scope, collection_id};
use synergia::server::taxii::query::{PageRequest, PageScope, VersionSpec, parse_page_request};
use synergia::server::taxii::token;

const KEY: [u8; 32] = [0x5a; 32];
const OTHER_NODE_KEY: [u8; 32] = [0xa5; 32];
const ALIASES: [&str; 7] = [
    "consolidated",
    "local",
    "groupib",
    "trendmicro",
    "kaspersky",
    "teamcymru",
    "interpol",
];
const OBJECT: &str = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// The token scopes of a node's collections, as the server computes them.
fn scopes() -> &'static [String] {
    static SCOPES: OnceLock<Vec<String>> = OnceLock::new();
    SCOPES.get_or_init(|| {
        ALIASES
            .iter()
            .map(|a| {
                Collection {
                    id: collection_id(a),
                    alias: a.to_string(),
                    title: a.to_string(),
                    description: String::new(),
                    scope: Scope::Consolidated,
                    writable: false,
                }
                .token_scope()
            })
            .collect()
    })
}

fn parse(
    pairs: &[(String, String)],
    versions: VersionSpec,
    key: &[u8; 32],
    collection: &str,
    object_id: Option<&str>,
) -> Result<PageRequest, synergia::server::error::ApiError> {
    let scope = PageScope {
        token_key: key,
        collection,
        object_id,
    };
    parse_page_request(pairs, versions, DEFAULT_LIMIT, MAX_LIMIT, scope)
}

/// Applies the input's edits to a token: replace, insert or delete one character.
fn edit(token: &str, edits: &[u8]) -> String {
    let mut t: Vec<u8> = token.as_bytes().to_vec();
    for e in edits.chunks_exact(2) {
        let pos = usize::from(e[0]) % (t.len() + 1);
        let c = BASE64URL[usize::from(e[1] & 63)];
        match e[1] >> 6 {
            0 | 1 if pos < t.len() => t[pos] = c,
            2 => t.insert(pos, c),
            _ if pos < t.len() => {
                t.remove(pos);
            }
            _ => t.push(c),
        }
    }
    String::from_utf8(t).unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let flags = data[0];
    let scope_ix = usize::from(flags & 7) % ALIASES.len();
    let object_id = (flags & 8 != 0).then_some(OBJECT);
    let versions = if flags & 16 != 0 {
        VersionSpec::All
    } else {
        VersionSpec::Last
    };
    let mut after_bytes = [0u8; 8];
    after_bytes.copy_from_slice(&data[1..9]);
    let mint_after = i64::from_be_bytes(after_bytes);
    let n_edits = usize::from(data[9] % 4);
    let Some(edits) = data.get(10..10 + 2 * n_edits) else {
        return;
    };
    let Ok(query) = std::str::from_utf8(&data[10 + 2 * n_edits..]) else {
        return;
    };
    // What axum's `Query<Vec<(String, String)>>` does with the raw query string.
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
        return;
    };
    let scopes = scopes();
    let scope = scopes[scope_ix].as_str();

    // 1. The request as sent.
    match parse(&pairs, versions, &KEY, scope, object_id) {
        Err(e) => {
            assert_eq!(e.status.as_u16(), 400, "{query:?}: {e:?}");
            assert!(
                ["bad-query", "bad-next", "bad-id"].contains(&e.code),
                "{query:?}: {e:?}"
            );
        }
        Ok(r) => {
            let f = &r.filters;
            assert!((1..=MAX_LIMIT).contains(&f.limit), "{query:?}: {}", f.limit);
            assert!(!f.versions.is_empty());
            if let Some(t) = &f.next {
                // Accepted: it must be exactly what this node issues, for this scope only.
                let after = token::decode(&KEY, scope, &f.canonical, t)
                    .expect("an accepted next token decodes");
                assert_eq!(&token::encode(&KEY, scope, &f.canonical, after), t);
                assert_eq!(r.after, Some(f.added_after.map_or(after, |a| a.max(after))));
                for other in scopes.iter().filter(|s| *s != scope) {
                    assert_eq!(token::decode(&KEY, other, &f.canonical, t), None);
                }
                assert_eq!(token::decode(&OTHER_NODE_KEY, scope, &f.canonical, t), None);
            } else {
                assert_eq!(r.after, f.added_after);
            }
        }
    }

    // 2. The same request resumed with a token minted for it, edited or not.
    let mut resumed: Vec<(String, String)> =
        pairs.into_iter().filter(|(k, _)| k != "next").collect();
    let Ok(base) = parse(&resumed, versions, &KEY, scope, object_id) else {
        return;
    };
    let minted = token::encode(&KEY, scope, &base.filters.canonical, mint_after);
    let sent = edit(&minted, edits);
    resumed.push(("next".to_string(), sent.clone()));
    let expected_after = Some(
        base.filters
            .added_after
            .map_or(mint_after, |a| a.max(mint_after)),
    );
    match parse(&resumed, versions, &KEY, scope, object_id) {
        Ok(r) => {
            assert_eq!(sent, minted, "an edited token was accepted");
            assert_eq!(r.after, expected_after);
            assert_eq!(r.filters.canonical, base.filters.canonical);
        }
        Err(e) => {
            assert_ne!(sent, minted, "a minted token was refused: {e:?}");
            assert_eq!(e.code, "bad-next");
        }
    }
    for other in scopes.iter().filter(|s| s.as_str() != scope) {
        let e = parse(&resumed, versions, &KEY, other, object_id)
            .expect_err("a token resumed in another collection");
        assert_eq!(e.code, "bad-next");
    }
    let e = parse(&resumed, versions, &OTHER_NODE_KEY, scope, object_id)
        .expect_err("a token accepted by another node");
    assert_eq!(e.code, "bad-next");
});
