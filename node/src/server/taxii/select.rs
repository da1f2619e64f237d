//! Choosing the object versions of one TAXII page.
//!
//! Candidates come from an index that is already in `date_added` order (every version,
//! a type's versions, an origin's versions, or the versions of the requested ids), from
//! the position after the cursor: no request scans the whole store. Each page examines
//! at most `SCAN_BUDGET × limit` candidates; a page cut short by the budget says
//! `more` with a `next` that resumes where the scan stopped. A full page says `more`
//! only when a further version the caller may see exists.

use super::collections::{Collection, Scope};
use super::query::{Filters, VersionSpec};
use crate::stix::tlp::TlpLevel;
use crate::store::view::{RETRACTED, SPEC21, View};
use std::collections::HashMap;

pub(super) const SCAN_BUDGET: usize = 50;

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

/// The first and last version of each object within a collection, as one reader
/// sees it, found once per object and page: a page of an object with many versions
/// costs one walk over them, not one per candidate (security finding 4).
#[derive(Default)]
struct Ends {
    known: HashMap<(u32, u128), (Option<u32>, Option<u32>)>,
}

impl Ends {
    /// `(first, last)` version handles of `h`'s object in `coll` at `max_tlp`.
    fn of(
        &mut self,
        view: &View,
        coll: &Collection,
        max_tlp: TlpLevel,
        h: u32,
    ) -> (Option<u32>, Option<u32>) {
        let Some(v) = view.version(h) else {
            return (None, None);
        };
        let key = (v.type_ix, v.uuid());
        if let Some(e) = self.known.get(&key) {
            return *e;
        }
        // Oldest `modified` first, ties in arrival order.
        let visible: Vec<u32> = view
            .versions_of(view.type_name(v.type_ix), v.uuid())
            .into_iter()
            .filter(|&s| {
                view.version(s).is_some_and(|x| x.tlp <= max_tlp) && coll.contains(view, s, max_tlp)
            })
            .collect();
        let first = visible.first().copied();
        let last = match coll.scope {
            Scope::Consolidated => view.latest_visible(h, max_tlp),
            Scope::Origin(_) => {
                // The latest of the object when the member delivered it, else the
                // member's own newest.
                let latest = view.latest_visible(h, max_tlp);
                match latest {
                    Some(l) if visible.contains(&l) => Some(l),
                    _ => visible.last().copied(),
                }
            }
        };
        self.known.insert(key, (first, last));
        (first, last)
    }
}

fn matches(
    view: &View,
    coll: &Collection,
    f: &Filters,
    max_tlp: TlpLevel,
    ends: &mut Ends,
    h: u32,
) -> bool {
    let Some(v) = view.version(h) else {
        return false;
    };
    if v.tlp > max_tlp || !coll.contains(view, h, max_tlp) {
        return false;
    }
    // A tombstone is only ever served as the latest version (one that stood for a
    // version since superseded, or a level that sees a delivery standing, is not).
    if v.has(RETRACTED) && view.latest_visible(h, max_tlp) != Some(h) {
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
        VersionSpec::Last => ends.of(view, coll, max_tlp, h).1 == Some(h),
        VersionSpec::First => ends.of(view, coll, max_tlp, h).0 == Some(h),
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
            .filter(|&h| after.is_none_or(|t| da(h) > t) && coll.contains(view, h, max_tlp))
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
    let mut ends = Ends::default();
    let budget = f.limit.saturating_mul(SCAN_BUDGET);
    let mut last_examined = None;
    for (examined, h) in candidates.enumerate() {
        if examined >= budget {
            // Candidates we did not get to: resume after the last one examined.
            page.more = true;
            page.resume_after = last_examined;
            break;
        }
        if matches(view, coll, f, max_tlp, &mut ends, h) {
            if page.handles.len() == f.limit {
                // A visible match beyond the page: `more` says only that (an object
                // the caller may not see never makes `more` true), and the next page
                // starts after the last one served.
                page.more = true;
                page.resume_after = page.handles.last().map(|&l| da(l));
                break;
            }
            page.handles.push(h);
        }
        last_examined = Some(da(h));
    }
    page
}
