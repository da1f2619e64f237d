//! The consolidated feed for analysts: latest versions, filtered, as a STIX bundle or
//! a CSV of observables with corroboration. Written incrementally to any `Write`, so
//! exports of millions of objects run in constant memory (STIX) and the HTTP endpoint
//! can stream.

use super::Node;
use crate::stix::observable::keys_from_object;
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpLevel;
use crate::store::StoreError;
use crate::store::view::{BodyLocation, View};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A STIX 2.1 bundle of the objects.
    Stix,
    /// One CSV row per observable.
    Csv,
}

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Only these STIX types (all when empty).
    pub types: Vec<String>,
    /// Only objects added to this node after this instant (µs).
    pub since: Option<i64>,
    /// Only objects whose observables at least this many members reported.
    pub min_corroboration: usize,
    /// Only objects delivered by these origins (all when empty).
    pub origins: Vec<String>,
    /// Most restrictive TLP level included.
    pub max_tlp: Option<TlpLevel>,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

/// Distinct origins, over the latest versions a reader at `max` sees, reporting any
/// of `keys` in deliveries the reader may know of.
fn corroboration(view: &View, keys: &[String], max: TlpLevel) -> BTreeSet<String> {
    let mut origins = BTreeSet::new();
    for k in keys {
        for h in view.by_observable(k) {
            if view.version(h).is_some_and(|v| v.tlp <= max)
                && view.latest_visible(h, max) == Some(h)
            {
                origins.extend(view.origins_at(h, max).into_iter().map(str::to_string));
            }
        }
    }
    origins
}

/// A CSV cell: quoted when it holds a separator, a quote or a line break, and made
/// inert for spreadsheets when it starts like a formula (`=`, `+`, `-`, `@`, tab or
/// carriage return; OWASP's CSV-injection advice): a leading `'` makes the program
/// show the text instead of evaluating it (security finding 10).
fn csv_field(s: &str) -> String {
    let inert = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if inert.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", inert.replace('"', "\"\""))
    } else {
        inert
    }
}

/// How many versions an export examines while it holds the view's read lock. The
/// lock is released before any body is read or any byte is written, so a reader that
/// stops reading stalls only its own export, never a publish (security finding 1).
const CHUNK: usize = 1024;

/// A version chosen for the export in one hold of the lock.
struct Pick {
    h: u32,
    at: BodyLocation,
    tlp: TlpLevel,
}

#[derive(Default)]
struct ObservableRow {
    origins: BTreeSet<String>,
    /// Compared as instants (texts of different precision do not sort as their
    /// instants do) and written with milliseconds, STIX's precision for object
    /// timestamps, both alike.
    first_seen: Option<Timestamp>,
    last_seen: Option<Timestamp>,
    confidence: Option<i64>,
    tlp: Option<TlpLevel>,
    objects: usize,
}

impl Node {
    /// Writes the export; returns the number of objects (STIX) or rows (CSV) written.
    ///
    /// The view is read a chunk at a time ([`CHUNK`] versions), so an export of
    /// millions of objects never holds the lock for long and sees versions added while
    /// it runs only in chunks it has not reached yet.
    pub fn export(
        &self,
        f: &ExportFilter,
        format: ExportFormat,
        out: &mut dyn Write,
    ) -> Result<u64, ExportError> {
        let needs_keys = f.min_corroboration > 1 || format == ExportFormat::Csv;
        let mut next: Chunks<'_> = match self.backend() {
            crate::node::backend::Backend::Embedded(store) => {
                Box::new(embedded_chunks(store, f, needs_keys))
            }
            crate::node::backend::Backend::Postgres(pg) => postgres_chunks(pg, f, needs_keys)?,
        };
        let mut n = 0u64;
        let mut rows: BTreeMap<String, ObservableRow> = BTreeMap::new();
        if format == ExportFormat::Stix {
            write!(
                out,
                "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[",
                uuid::Uuid::new_v4()
            )?;
        }
        loop {
            let (items, done) = next()?;
            // Without any lock: the output, which may block on a slow reader.
            for item in items {
                if item.corroborated < f.min_corroboration {
                    continue;
                }
                match format {
                    ExportFormat::Stix => {
                        if n > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(&item.body)?;
                        n += 1;
                    }
                    ExportFormat::Csv => {
                        let Some(o) = &item.obj else { continue };
                        add_rows(&mut rows, o, item.keys, &item.own, item.tlp);
                    }
                }
            }
            if done {
                break;
            }
        }
        match format {
            ExportFormat::Stix => out.write_all(b"]}\n")?,
            ExportFormat::Csv => {
                writeln!(
                    out,
                    "observable,kind,value,corroboration,origins,objects,first_seen,last_seen,max_confidence,tlp"
                )?;
                for (k, r) in rows {
                    if r.origins.len() < f.min_corroboration {
                        continue;
                    }
                    let (kind, value) = k.split_once(':').unwrap_or(("", k.as_str()));
                    writeln!(
                        out,
                        "{},{},{},{},{},{},{},{},{},{}",
                        csv_field(&k),
                        csv_field(kind),
                        csv_field(value),
                        r.origins.len(),
                        csv_field(&r.origins.iter().cloned().collect::<Vec<_>>().join(" ")),
                        r.objects,
                        csv_field(
                            &r.first_seen
                                .map(|t| t.to_millis_string())
                                .unwrap_or_default()
                        ),
                        csv_field(
                            &r.last_seen
                                .map(|t| t.to_millis_string())
                                .unwrap_or_default()
                        ),
                        r.confidence.map(|c| c.to_string()).unwrap_or_default(),
                        r.tlp.map(|t| t.as_str()).unwrap_or_default()
                    )?;
                    n += 1;
                }
            }
        }
        out.flush()?;
        Ok(n)
    }
}

/// The next chunk of an export's objects, and whether it is the last.
type Chunks<'a> = Box<dyn FnMut() -> Result<(Vec<Item>, bool), ExportError> + 'a>;

/// One object chosen for an export, with what its output needs.
struct Item {
    /// Its canonical body.
    body: Vec<u8>,
    /// Parsed, when observables are needed.
    obj: Option<Value>,
    /// Its observable keys, when needed.
    keys: Vec<String>,
    /// The origins that reported it, as the reader may know.
    own: Vec<String>,
    /// Distinct origins reporting any of its observables (`usize::MAX` when not
    /// asked for).
    corroborated: usize,
    /// Its level.
    tlp: TlpLevel,
}

/// The body parsed and its observable keys, when they are needed.
fn parsed(body: &[u8], needs_keys: bool) -> (Option<Value>, Vec<String>) {
    let obj: Option<Value> = if needs_keys {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    let keys = obj
        .as_ref()
        .map(|o| keys_from_object(o).iter().map(|k| k.to_string()).collect())
        .unwrap_or_default();
    (obj, keys)
}

/// The chunks of an export from the embedded view: [`CHUNK`] versions examined per
/// hold of the view's read lock, bodies read without it.
fn embedded_chunks<'a>(
    store: &'a crate::store::Store,
    f: &'a ExportFilter,
    needs_keys: bool,
) -> impl FnMut() -> Result<(Vec<Item>, bool), ExportError> + 'a {
    let max = f.max_tlp.unwrap_or(TlpLevel::Red);
    let (origin_ix, type_ix, mut pos, end) = {
        let view = store.read();
        let origin_ix: Vec<u16> = f
            .origins
            .iter()
            .filter_map(|o| view.origin_index(o))
            .collect();
        let type_ix: Vec<u32> = f.types.iter().filter_map(|t| view.type_index(t)).collect();
        (
            origin_ix,
            type_ix,
            f.since.map_or(0, |t| view.first_after(t)),
            // Versions added once the export started are left to the next one:
            // a busy node does not keep an export chasing the end of its view.
            view.versions().len(),
        )
    };
    move || {
        // 1. Under the lock: the next chunk's candidates.
        let (picks, done) = {
            let view = store.read();
            let versions = view.versions();
            let chunk_end = (pos + CHUNK).min(end);
            let mut picks = Vec::new();
            for (i, v) in versions[pos..chunk_end].iter().enumerate() {
                let h = (pos + i) as u32;
                // A tombstone (retracted) leaves exports as it leaves lookups.
                if v.tlp > max
                    || v.has(crate::store::view::RETRACTED)
                    || view.latest_visible(h, max) != Some(h)
                {
                    continue;
                }
                if !f.types.is_empty() && !type_ix.contains(&v.type_ix) {
                    continue;
                }
                if !f.origins.is_empty() && !origin_ix.iter().any(|&o| view.delivered_at(h, o, max))
                {
                    continue;
                }
                if let Some(at) = view.body_location(h) {
                    picks.push(Pick { h, at, tlp: v.tlp });
                }
            }
            pos = chunk_end;
            (picks, chunk_end >= end)
        };
        // 2. Without it: the bodies, and the observables when they are needed.
        let mut bodies = Vec::with_capacity(picks.len());
        for p in &picks {
            let body = store.object_body(p.at)?;
            let (obj, keys) = parsed(&body, needs_keys);
            bodies.push((body, obj, keys));
        }
        // 3. Under the lock again, briefly: who reported each, as the reader may know.
        let view = store.read();
        let items = picks
            .iter()
            .zip(bodies)
            .map(|(p, (body, obj, keys))| {
                let (own, corroborated) = if needs_keys {
                    let own = view
                        .origins_at(p.h, max)
                        .into_iter()
                        .map(str::to_string)
                        .collect();
                    let corroborated = if f.min_corroboration > 1 {
                        corroboration(&view, &keys, max).len()
                    } else {
                        usize::MAX
                    };
                    (own, corroborated)
                } else {
                    (Vec::new(), usize::MAX)
                };
                Item {
                    body,
                    obj,
                    keys,
                    own,
                    corroborated,
                    tlp: p.tlp,
                }
            })
            .collect();
        Ok((items, done))
    }
}

/// The chunks of an export from PostgreSQL: [`CHUNK`] latest versions per statement
/// in `date_added` order, up to the last added when the export started, with who
/// reported each and, when asked for, the corroboration of their observables.
fn postgres_chunks<'a>(
    pg: &'a crate::node::backend::Postgres,
    f: &'a ExportFilter,
    needs_keys: bool,
) -> Result<Chunks<'a>, ExportError> {
    let max = f.max_tlp.unwrap_or(TlpLevel::Red);
    let end = pg.block(pg.store.last_date_added())?;
    let mut after = f.since.unwrap_or(i64::MIN);
    Ok(Box::new(move || {
        let chunk = pg.block(pg.store.export_chunk(
            &crate::store::postgres::read::ExportChunk {
                after,
                end,
                max_tlp: max,
                types: &f.types,
                origins: &f.origins,
            },
            CHUNK,
        ))?;
        let done = chunk.len() < CHUNK;
        if let Some((last, _)) = chunk.last() {
            after = last.date_added;
        }
        let mut items = Vec::with_capacity(chunk.len());
        let mut keys_of = Vec::with_capacity(chunk.len());
        for (_, body) in &chunk {
            keys_of.push(parsed(body, needs_keys));
        }
        let (own, corroborated) = if needs_keys {
            let rows: Vec<_> = chunk.iter().map(|(r, _)| r.clone()).collect();
            let all_keys: Vec<String> = keys_of
                .iter()
                .flat_map(|(_, k)| k.iter().cloned())
                .collect();
            pg.block(async {
                let own = pg.store.origins_of(&rows, max).await?;
                let by_key = if f.min_corroboration > 1 {
                    pg.store.origins_naming(&all_keys, max).await?
                } else {
                    Default::default()
                };
                Ok::<_, StoreError>((own, by_key))
            })?
        } else {
            (vec![Vec::new(); chunk.len()], Default::default())
        };
        for (((row, body), (obj, keys)), own) in chunk.into_iter().zip(keys_of).zip(own) {
            let c = if f.min_corroboration > 1 {
                let mut o: BTreeSet<&String> = BTreeSet::new();
                for k in &keys {
                    if let Some(set) = corroborated.get(k) {
                        o.extend(set.iter());
                    }
                }
                o.len()
            } else {
                usize::MAX
            };
            items.push(Item {
                body,
                obj,
                keys,
                own,
                corroborated: c,
                tlp: row.tlp,
            });
        }
        Ok((items, done))
    }))
}

/// Adds one object's observables to the CSV rows.
fn add_rows(
    rows: &mut BTreeMap<String, ObservableRow>,
    o: &Value,
    keys: Vec<String>,
    origins: &[String],
    tlp: TlpLevel,
) {
    let at = |k: &str| {
        o.get(k)
            .and_then(Value::as_str)
            .and_then(|t| Timestamp::parse(t).ok())
    };
    for k in keys {
        let row = rows.entry(k).or_default();
        row.origins.extend(origins.iter().cloned());
        row.objects += 1;
        let first = at("first_seen")
            .or_else(|| at("valid_from"))
            .or_else(|| at("created"));
        let last = at("last_seen").or_else(|| at("modified"));
        row.first_seen = match (row.first_seen.take(), first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        row.last_seen = match (row.last_seen.take(), last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(c) = o.get("confidence").and_then(Value::as_i64) {
            row.confidence = Some(row.confidence.map_or(c, |x| x.max(c)));
        }
        row.tlp = Some(row.tlp.map_or(tlp, |t| t.min(tlp)));
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    /// `first_seen` and `last_seen` are chosen as instants and written alike, with
    /// milliseconds: compared as texts, `…00:00Z` sorts after `…00:00.123456Z` though
    /// it is earlier, and each column kept its source's precision.
    #[test]
    fn csv_first_and_last_seen_are_instants_written_alike() {
        use super::{ObservableRow, add_rows};
        use crate::stix::tlp::TlpLevel;
        use serde_json::json;
        let mut rows = std::collections::BTreeMap::<String, ObservableRow>::new();
        let key = || vec!["ipv4-addr|203.0.113.9".to_string()];
        let later = json!({"valid_from": "2026-03-01T10:00:00.123456Z",
                           "modified": "2026-03-02T00:00:00.000Z"});
        let earlier = json!({"valid_from": "2026-03-01T10:00:00Z",
                             "modified": "2026-03-01T12:00:00.5Z"});
        add_rows(&mut rows, &later, key(), &[], TlpLevel::Green);
        add_rows(&mut rows, &earlier, key(), &[], TlpLevel::Green);
        let row = &rows["ipv4-addr|203.0.113.9"];
        assert_eq!(
            row.first_seen.map(|t| t.to_millis_string()).as_deref(),
            Some("2026-03-01T10:00:00.000Z")
        );
        assert_eq!(
            row.last_seen.map(|t| t.to_millis_string()).as_deref(),
            Some("2026-03-02T00:00:00.000Z")
        );
    }

    #[test]
    fn csv_cells_that_look_like_formulas_are_inert() {
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-cmd"), "'-cmd");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("plain.example"), "plain.example");
    }
}
