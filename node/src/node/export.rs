//! The consolidated feed for analysts: latest versions, filtered, as a STIX bundle or
//! a CSV of observables with corroboration. Written incrementally to any `Write`, so
//! exports of millions of objects run in constant memory (STIX) and the HTTP endpoint
//! can stream.

use super::Node;
use crate::stix::observable::keys_from_object;
use crate::stix::tlp::TlpLevel;
use crate::store::StoreError;
use crate::store::view::{LATEST, View};
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

/// Distinct origins, over latest versions, reporting any of `keys`.
fn corroboration(view: &View, keys: &[String]) -> BTreeSet<String> {
    let mut origins = BTreeSet::new();
    for k in keys {
        for h in view.by_observable(k) {
            if view.version(h).is_some_and(|v| v.has(LATEST)) {
                origins.extend(view.origins_of(h).into_iter().map(str::to_string));
            }
        }
    }
    origins
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[derive(Default)]
struct ObservableRow {
    origins: BTreeSet<String>,
    first_seen: Option<String>,
    last_seen: Option<String>,
    confidence: Option<i64>,
    tlp: Option<TlpLevel>,
    objects: usize,
}

impl Node {
    /// Writes the export; returns the number of objects (STIX) or rows (CSV) written.
    pub fn export(
        &self,
        f: &ExportFilter,
        format: ExportFormat,
        out: &mut dyn Write,
    ) -> Result<u64, ExportError> {
        let view = self.store.read();
        let origin_ix: Vec<u16> = f
            .origins
            .iter()
            .filter_map(|o| view.origin_index(o))
            .collect();
        let type_ix: Vec<u16> = f.types.iter().filter_map(|t| view.type_index(t)).collect();
        let start = f.since.map_or(0, |t| view.first_after(t));
        let mut n = 0u64;
        let mut rows: BTreeMap<String, ObservableRow> = BTreeMap::new();
        if format == ExportFormat::Stix {
            write!(
                out,
                "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[",
                uuid::Uuid::new_v4()
            )?;
        }
        for (i, v) in view.versions().iter().enumerate().skip(start) {
            let h = i as u32;
            if !v.has(LATEST) {
                continue;
            }
            if f.max_tlp.is_some_and(|m| v.tlp > m) {
                continue;
            }
            if !f.types.is_empty() && !type_ix.contains(&v.type_ix) {
                continue;
            }
            if !f.origins.is_empty()
                && !view
                    .deliveries(h)
                    .iter()
                    .any(|e| origin_ix.contains(&e.origin))
            {
                continue;
            }
            let Some(at) = view.body_location(h) else {
                continue;
            };
            let body = self.store.object_body(at)?;
            let needs_keys = f.min_corroboration > 1 || format == ExportFormat::Csv;
            let obj: Option<Value> = if needs_keys {
                serde_json::from_slice(&body).ok()
            } else {
                None
            };
            let keys: Vec<String> = obj
                .as_ref()
                .map(|o| keys_from_object(o).iter().map(|k| k.to_string()).collect())
                .unwrap_or_default();
            if f.min_corroboration > 1 && corroboration(&view, &keys).len() < f.min_corroboration {
                continue;
            }
            match format {
                ExportFormat::Stix => {
                    if n > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(&body)?;
                    n += 1;
                }
                ExportFormat::Csv => {
                    let Some(o) = &obj else { continue };
                    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
                    for k in keys {
                        let row = rows.entry(k).or_default();
                        row.origins
                            .extend(view.origins_of(h).into_iter().map(str::to_string));
                        row.objects += 1;
                        let first = text("first_seen")
                            .or_else(|| text("valid_from"))
                            .or_else(|| text("created"));
                        let last = text("last_seen").or_else(|| text("modified"));
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
                        row.tlp = Some(row.tlp.map_or(v.tlp, |t| t.min(v.tlp)));
                    }
                }
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
                        r.first_seen.unwrap_or_default(),
                        r.last_seen.unwrap_or_default(),
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
