//! Choosing the object versions of one TAXII page from PostgreSQL, by the rules of
//! [`super::select`]: the same candidates in `date_added` order from the position
//! after the cursor, the same scan budget, the same `more` and `next`, and the same
//! choice of first and last version per object. The candidates come from the
//! database a chunk at a time; what the rules need of an object's other versions
//! comes in one statement per chunk.

use super::collections::{Collection, Scope};
use super::query::{Filters, VersionSpec};
use super::select::SCAN_BUDGET;
use crate::stix::tlp::TlpLevel;
use crate::store::StoreError;
use crate::store::postgres::PgStore;
use crate::store::postgres::read::{Candidates, VersionRow, served_body};
use crate::store::view::{RETRACTED, SPEC21};
use std::collections::HashMap;

/// A page.
#[derive(Debug, Default)]
pub struct Page {
    /// The versions, in `date_added` order.
    pub rows: Vec<VersionRow>,
    /// Their bodies as served, in the same order, when asked for.
    pub bodies: Vec<Vec<u8>>,
    /// Whether more may follow.
    pub more: bool,
    /// `date_added` to resume after.
    pub resume_after: Option<i64>,
}

/// Candidates read by the first statement of a page: the page and the one that says
/// whether more follow, which is all a page takes when every candidate matches (the
/// usual case: a collection's latest versions in order).
fn first_chunk(limit: usize) -> usize {
    limit.saturating_add(1).clamp(64, 10_000)
}

/// Candidates read per further statement, when candidates were skipped: twice the
/// page, so that a page where most are skipped takes few statements.
fn chunk(limit: usize) -> usize {
    limit.saturating_mul(2).saturating_add(1).clamp(64, 10_000)
}

type Key = (String, u128);
type VersionKey = (i64, [u8; 16], i64);

fn version_key(r: &VersionRow) -> VersionKey {
    (r.modified, r.hash, r.date_added)
}

/// Per object, its first and last version as the reader sees it in the collection
/// (see `select::Ends`).
async fn ends(
    pg: &PgStore,
    rows: &[VersionRow],
    coll: &Collection,
    max_tlp: TlpLevel,
) -> Result<HashMap<Key, (Option<VersionKey>, Option<VersionKey>)>, StoreError> {
    let mut objects: Vec<Key> = rows.iter().map(|r| (r.type_name.clone(), r.uuid)).collect();
    objects.sort_unstable();
    objects.dedup();
    let origin = match &coll.scope {
        Scope::Consolidated => None,
        Scope::Origin(o) => Some(o.as_str()),
    };
    let all = pg.versions_of(&objects, max_tlp, origin).await?;
    let mut out: HashMap<Key, (Option<VersionKey>, Option<VersionKey>)> = HashMap::new();
    let mut at = 0;
    while at < all.len() {
        let key = (all[at].0.type_name.clone(), all[at].0.uuid);
        let end = at
            + all[at..]
                .iter()
                .take_while(|(r, _)| r.type_name == key.0 && r.uuid == key.1)
                .count();
        let versions = &all[at..end];
        // Oldest `modified` first, ties in arrival order (the statement's order).
        let visible: Vec<&VersionRow> = versions
            .iter()
            .filter(|(_, delivered)| *delivered)
            .map(|(r, _)| r)
            .collect();
        let latest = versions
            .iter()
            .map(|(r, _)| r)
            .find(|r| r.latest_at(max_tlp));
        let first = visible.first().map(|r| version_key(r));
        let last = match coll.scope {
            Scope::Consolidated => latest.map(version_key),
            // The latest of the object when the member delivered it, else the
            // member's own newest.
            Scope::Origin(_) => match latest {
                Some(l) if visible.contains(&l) => Some(version_key(l)),
                _ => visible.last().map(|r| version_key(r)),
            },
        };
        out.insert(key, (first, last));
        at = end;
    }
    Ok(out)
}

fn matches(
    row: &VersionRow,
    f: &Filters,
    max_tlp: TlpLevel,
    ends: &HashMap<Key, (Option<VersionKey>, Option<VersionKey>)>,
    consolidated: bool,
) -> bool {
    // A tombstone is only ever served as the latest version.
    if row.has(RETRACTED) && !row.latest_at(max_tlp) {
        return false;
    }
    if !f.spec_versions.is_empty() {
        let is21 = row.has(SPEC21);
        if !f.spec_versions.iter().any(|s| (s == "2.1") == is21) {
            return false;
        }
    }
    let end = |first: bool| {
        ends.get(&(row.type_name.clone(), row.uuid))
            .and_then(|(a, b)| if first { *a } else { *b })
            == Some(version_key(row))
    };
    f.versions.iter().any(|spec| match spec {
        VersionSpec::All => true,
        VersionSpec::Last if consolidated => row.latest_at(max_tlp),
        VersionSpec::Last => end(false),
        VersionSpec::First => end(true),
        VersionSpec::At(t) => {
            row.modified == *t || (row.modified == i64::MIN && row.date_added == *t)
        }
    })
}

/// Selects a page. `after` is the `date_added` to start after; `with_bodies` reads
/// the chosen versions' bodies (as served) with them.
pub async fn select(
    pg: &PgStore,
    coll: &Collection,
    f: &Filters,
    max_tlp: TlpLevel,
    after: Option<i64>,
    with_bodies: bool,
) -> Result<Page, StoreError> {
    let consolidated = coll.scope == Scope::Consolidated;
    let needs_ends = f
        .versions
        .iter()
        .any(|v| *v == VersionSpec::First || (*v == VersionSpec::Last && !consolidated));
    let mut c = Candidates {
        after,
        max_tlp,
        origin: match &coll.scope {
            Scope::Consolidated => None,
            Scope::Origin(o) => Some(o.as_str()),
        },
        types: &f.types,
        ids: &f.ids,
        with_bodies,
    };
    let budget = f.limit.saturating_mul(SCAN_BUDGET);
    let mut page = Page::default();
    let mut examined = 0usize;
    let mut last_examined = None;
    let mut statements = 0;
    loop {
        // One more than the budget allows: the one that shows it was cut short.
        let size = if statements == 0 {
            first_chunk(f.limit)
        } else {
            chunk(f.limit)
        };
        statements += 1;
        let want = size.min(budget - examined + 1);
        let (cands, exhausted) = pg.candidates(&c, want).await?;
        let Some(last) = cands.last() else {
            return Ok(page);
        };
        let read_to = last.row.date_added;
        let ends = if needs_ends {
            let rows: Vec<VersionRow> = cands.iter().map(|c| c.row.clone()).collect();
            ends(pg, &rows, coll, max_tlp).await?
        } else {
            HashMap::new()
        };
        for cand in cands {
            let row = cand.row;
            // The requested objects' versions are candidates only where the
            // collection holds them (as `select::select` takes them).
            if !f.ids.is_empty() && !cand.in_collection {
                continue;
            }
            if examined >= budget {
                page.more = true;
                page.resume_after = last_examined;
                return Ok(page);
            }
            if row.tlp <= max_tlp
                && cand.in_collection
                && matches(&row, f, max_tlp, &ends, consolidated)
            {
                if page.rows.len() == f.limit {
                    page.more = true;
                    page.resume_after = page.rows.last().map(|r| r.date_added);
                    return Ok(page);
                }
                last_examined = Some(row.date_added);
                if with_bodies {
                    // Chosen versions are within the reader's level: read with a body.
                    let body = cand.body.ok_or_else(|| {
                        StoreError::Corrupt(format!("no body for a version of {}", row.object_id()))
                    })?;
                    page.bodies.push(served_body(&row, body)?);
                }
                page.rows.push(row);
            } else {
                last_examined = Some(row.date_added);
            }
            examined += 1;
        }
        c.after = Some(read_to);
        if exhausted {
            return Ok(page);
        }
    }
}
