//! Choosing the object versions of one TAXII page.
//!
//! Candidates come from an index that is already in `date_added` order (every version,
//! a type's versions, an origin's versions, or the versions of the requested ids), from
//! the position after the cursor: no request scans the whole store. Each page examines
//! at most `SCAN_BUDGET × limit` candidates; a page cut short by the budget says
//! `more` with a `next` that resumes where the scan stopped.

use super::collections::{Collection, Scope};
use super::query::{Filters, VersionSpec};
use crate::stix::tlp::TlpLevel;
use crate::store::view::{SPEC21, View};

const SCAN_BUDGET: usize = 50;

/// A page.
#[derive(Debug, Default)]
pub struct Page {
    /// Version handles, in `date_added` order.
    pub handles: Vec<u32>,
    /// Whether more may follow.
    pub more: bool,
    /// `date_added` to resume after.
    pub resume_after: Option<i64>,
}

fn matches(view: &View, coll: &Collection, f: &Filters, max_tlp: TlpLevel, h: u32) -> bool {
    let Some(v) = view.version(h) else {
        return false;
    };
    if v.tlp > max_tlp {
        return false;
    }
    if !f.spec_versions.is_empty() {
        let is21 = v.has(SPEC21);
        if !f.spec_versions.iter().any(|s| (s == "2.1") == is21) {
            return false;
        }
    }
    if !f.types.is_empty() && !f.types.iter().any(|t| t == view.type_name(v.type_ix)) {
        return false;
    }
    f.versions.iter().any(|spec| match spec {
        VersionSpec::All => true,
        VersionSpec::Last => coll.is_last(view, h),
        VersionSpec::First => coll.is_first(view, h),
        VersionSpec::At(t) => v.modified == *t || (v.modified == i64::MIN && v.date_added == *t),
    })
}

/// Selects a page. `after` is the `date_added` to start after (from `next` or
/// `added_after`, whichever is later).
pub fn select(
    view: &View,
    coll: &Collection,
    f: &Filters,
    max_tlp: TlpLevel,
    after: Option<i64>,
) -> Page {
    let start = after.map_or(0, |t| view.first_after(t));
    let versions = view.versions();
    let da = |h: u32| versions[h as usize].date_added;
    let from = |list: &[u32]| -> Vec<u32> {
        let at = list.partition_point(|&h| after.is_some_and(|t| da(h) <= t));
        list[at..].to_vec()
    };
    // Candidate handles in date_added order.
    let candidates: Box<dyn Iterator<Item = u32>> = if !f.ids.is_empty() {
        let mut hs: Vec<u32> = f
            .ids
            .iter()
            .flat_map(|(t, u)| view.versions_of(t, *u))
            .filter(|&h| after.is_none_or(|t| da(h) > t) && coll.contains(view, h))
            .collect();
        hs.sort_unstable();
        hs.dedup();
        Box::new(hs.into_iter())
    } else {
        match &coll.scope {
            Scope::Consolidated if !f.types.is_empty() => {
                let mut hs: Vec<u32> = Vec::new();
                for t in &f.types {
                    if let Some(ix) = view.type_index(t) {
                        let list = view.by_type(ix);
                        let at = list.partition_point(|&h| (h as usize) < start);
                        // Enough candidates for this page from each type.
                        hs.extend(list[at..].iter().take(f.limit * SCAN_BUDGET + 1));
                    }
                }
                hs.sort_unstable();
                Box::new(hs.into_iter())
            }
            Scope::Consolidated => Box::new(start as u32..versions.len() as u32),
            Scope::Origin(o) => match view.origin_index(o) {
                Some(ix) => Box::new(from(view.by_origin(ix)).into_iter()),
                None => Box::new(std::iter::empty()),
            },
        }
    };
    let mut page = Page::default();
    let budget = f.limit.saturating_mul(SCAN_BUDGET);
    let mut last_seen = None;
    for (examined, h) in candidates.enumerate() {
        if page.handles.len() == f.limit || examined >= budget {
            // Something is left: either a match we have no room for, or candidates
            // we did not get to.
            page.more = true;
            break;
        }
        last_seen = Some(da(h));
        if matches(view, coll, f, max_tlp, h) {
            page.handles.push(h);
        }
    }
    if page.more {
        page.resume_after = last_seen;
    }
    page
}
