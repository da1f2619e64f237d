//! The two stores side by side: at each `--store-counts` size, a node on the embedded
//! store and a node on PostgreSQL each publish the same generated indicators, an empty
//! peer on the same store pulls them all, and the node is started again as its own
//! `synergia serve` process to page, look up and be measured (`server_bench
//! --replicate`); for the embedded store, also its store-only ingest (`store_bench`).
//! The report shows each figure at each size and how it grows from the smallest size
//! to the largest, with the targets at 10M indicators and above.

use crate::postgres::Server;
use crate::{Better, Options, Paths, Samples, Spec, Target, fmt_count, fmt_value, push};
use anyhow::Result;
use serde_json::Value;
use std::fmt::Write as _;
use std::process::Command;

/// Which store a node keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Embedded,
    Postgres,
}

impl Store {
    fn key(self) -> &'static str {
        match self {
            Store::Embedded => "embedded",
            Store::Postgres => "postgres",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Store::Embedded => "embedded",
            Store::Postgres => "PostgreSQL",
        }
    }
}

/// The size from which the targets apply (it sets them "at 10M").
const TARGET_SIZE: u64 = 10_000_000;

/// One figure of the comparison: its `server_bench` (or `store_bench`) result field.
struct Figure {
    name: &'static str,
    field: &'static str,
    label: &'static str,
    unit: &'static str,
    better: Better,
    /// The target at [`TARGET_SIZE`], per store.
    target: fn(Store) -> Option<Target>,
    /// Only measured for the embedded store.
    embedded_only: bool,
}

const FIGURES: &[Figure] = &[
    Figure {
        name: "publish",
        field: "publish_objects_per_s",
        label: "durable publish, `POST /api/v1/bundles`",
        unit: "objects/s",
        better: Better::Higher,
        target: |s| (s == Store::Postgres).then_some(Target::AtLeast(50_000.0)),
        embedded_only: false,
    },
    Figure {
        name: "replicated",
        field: "replicated_objects_per_s",
        label: "replicated ingest (an empty peer on the same store pulls all)",
        unit: "objects/s",
        better: Better::Higher,
        target: |s| (s == Store::Postgres).then_some(Target::AtLeast(50_000.0)),
        embedded_only: false,
    },
    Figure {
        name: "store_ingest",
        field: "ingest_store_objects_per_s",
        label: "durable ingest into the store alone (`store_bench`)",
        unit: "objects/s",
        better: Better::Higher,
        target: |_| Some(Target::AtLeast(100_000.0)),
        embedded_only: true,
    },
    Figure {
        name: "paging",
        field: "paging_objects_per_s",
        label: "TAXII paging of `consolidated`, limit 1000",
        unit: "objects/s",
        better: Better::Higher,
        target: |s| (s == Store::Postgres).then_some(Target::AtLeast(100_000.0)),
        embedded_only: false,
    },
    Figure {
        name: "lookup_p50_us",
        field: "lookup_p50_us",
        label: "lookup p50 over HTTPS",
        unit: "µs",
        better: Better::Lower,
        target: |_| None,
        embedded_only: false,
    },
    Figure {
        name: "lookup_p99_us",
        field: "lookup_p99_us",
        label: "lookup p99 over HTTPS",
        unit: "µs",
        better: Better::Lower,
        target: |s| (s == Store::Postgres).then_some(Target::Below(5000.0)),
        embedded_only: false,
    },
    Figure {
        name: "rss_steady_mb",
        field: "rss_steady_mb",
        label: "node RSS, steady (after 12 s idle)",
        unit: "MB",
        better: Better::Lower,
        target: |s| {
            Some(Target::Below(match s {
                Store::Embedded => 1500.0,
                Store::Postgres => 300.0,
            }))
        },
        embedded_only: false,
    },
    Figure {
        name: "rss_peak_mb",
        field: "rss_peak_mb",
        label: "node RSS, peak",
        unit: "MB",
        better: Better::Lower,
        target: |s| {
            Some(Target::Below(match s {
                Store::Embedded => 2000.0,
                Store::Postgres => 300.0,
            }))
        },
        embedded_only: false,
    },
    Figure {
        name: "startup_s",
        field: "startup_s",
        label: "start-up until `/healthz` answers",
        unit: "s",
        better: Better::Lower,
        target: |s| (s == Store::Embedded).then_some(Target::Below(10.0)),
        embedded_only: false,
    },
    Figure {
        name: "bytes_per_object",
        field: "disk_bytes_per_object",
        label: "bytes per object on disk",
        unit: "B",
        better: Better::Lower,
        target: |_| None,
        embedded_only: false,
    },
];

fn key(store: Store, figure: &str, n: u64) -> String {
    format!("stores_{}_{figure}_{n}", store.key())
}

/// The stores measured: both, or the embedded one alone with `--no-postgres`.
fn stores(o: &Options) -> Vec<Store> {
    if o.postgres == crate::PostgresChoice::Leave {
        vec![Store::Embedded]
    } else {
        vec![Store::Embedded, Store::Postgres]
    }
}

/// The report's figures of the comparison.
pub fn specs(o: &Options) -> Vec<Spec> {
    let mut v = Vec::new();
    for store in stores(o) {
        for f in FIGURES
            .iter()
            .filter(|f| store == Store::Embedded || !f.embedded_only)
        {
            for &n in &o.store_counts {
                v.push(Spec {
                    key: key(store, f.name, n),
                    label: format!(
                        "{} store, {}, {} indicators",
                        store.name(),
                        f.label,
                        fmt_count(n)
                    ),
                    unit: f.unit,
                    better: f.better,
                    target: if n >= TARGET_SIZE {
                        (f.target)(store)
                    } else {
                        None
                    },
                });
            }
        }
    }
    v
}

/// Whether a figure key belongs to the comparison (reported in its own table).
pub fn is_comparison(key: &str) -> bool {
    key.starts_with("stores_")
}

/// One run of the comparison at every size.
pub fn run(o: &Options, paths: &Paths, pg: Option<&Server>, samples: &mut Samples) -> Result<()> {
    for &n in &o.store_counts {
        let count = n.to_string();
        // The embedded store alone.
        let dir = paths.work.join("stores-store");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let r = crate::run_result(
            Command::new(paths.release("examples/store_bench"))
                .args(["--count", &count, "--no-baseline", "--dir"])
                .arg(&dir),
        )?;
        std::fs::remove_dir_all(&dir)?;
        let store_ingest = FIGURES.iter().find(|f| f.name == "store_ingest");
        if let Some(f) = store_ingest {
            push(
                samples,
                &key(Store::Embedded, f.name, n),
                r[f.field].as_f64(),
            )?;
        }
        for store in stores(o) {
            let mut cmd = Command::new(paths.release("examples/server_bench"));
            cmd.args(["--count", &count, "--replicate"]);
            let databases = match (store, pg) {
                (Store::Embedded, _) => None,
                (Store::Postgres, None) => {
                    anyhow::bail!(
                        "the PostgreSQL store is to be measured but no server was started"
                    )
                }
                (Store::Postgres, Some(pg)) => {
                    let (a, b) = (
                        format!("synergia_bench_{n}_a"),
                        format!("synergia_bench_{n}_b"),
                    );
                    pg.fresh_database(&a)?;
                    pg.fresh_database(&b)?;
                    cmd.arg("--postgres").arg(pg.url(&a));
                    cmd.arg("--peer-postgres").arg(pg.url(&b));
                    cmd.env("SYNERGIA_STORE_PASSWORD", pg.password());
                    Some((pg, a, b))
                }
            };
            let r = crate::run_result(&mut cmd);
            // Tens of gigabytes at 10M: dropped before anything else is measured.
            if let Some((pg, a, b)) = databases {
                pg.drop_database(&a)?;
                pg.drop_database(&b)?;
            }
            let r: Value = r?;
            for f in FIGURES.iter().filter(|f| !f.embedded_only) {
                push(samples, &key(store, f.name, n), r[f.field].as_f64())?;
            }
        }
    }
    Ok(())
}

/// The comparison's table: each figure at each size for each store, and its growth
/// from the smallest size to the largest.
pub fn report(o: &Options, figures: &[Value], postgres: &str, s: &mut String) {
    if o.store_counts.is_empty() {
        return;
    }
    let stores = stores(o);
    let _ = writeln!(
        s,
        "\nBoth stores side by side (`server_bench --count N --replicate`, on the \
         embedded store and with `--postgres`/`--peer-postgres`; the embedded store \
         alone: `store_bench --count N`). PostgreSQL: {postgres}. Medians; targets \
         apply at 10M indicators and above.\n"
    );
    let growth = o.store_counts.len() > 1;
    let mut head = String::from("| figure |");
    let mut rule = String::from("|---|");
    for store in &stores {
        for &n in &o.store_counts {
            let _ = write!(head, " {} {} |", store.name(), fmt_count(n));
            rule.push_str("---|");
        }
        if growth {
            let _ = write!(head, " {} growth |", store.name());
            rule.push_str("---|");
        }
    }
    let _ = writeln!(s, "{head}\n{rule}");
    let find = |k: &str| figures.iter().find(|f| f["key"] == k);
    for f in FIGURES {
        let mut row = format!("| {} |", f.label);
        for &store in &stores {
            if f.embedded_only && store != Store::Embedded {
                for _ in &o.store_counts {
                    row.push_str(" — |");
                }
                if growth {
                    row.push_str(" — |");
                }
                continue;
            }
            let mut first_last = (None, None);
            for &n in &o.store_counts {
                let cell = match find(&key(store, f.name, n)) {
                    Some(fig) => {
                        let v = fig["median"].as_f64().unwrap_or(0.0);
                        first_last.0.get_or_insert(v);
                        first_last.1 = Some(v);
                        let mut c = fmt_value(v, f.unit);
                        if let (Some(t), Some(met)) = (fig["target"].as_str(), fig["met"].as_bool())
                        {
                            let _ = write!(
                                c,
                                " (target {t}: {})",
                                if met { "met" } else { "**not met**" }
                            );
                        }
                        c
                    }
                    None => "—".into(),
                };
                let _ = write!(row, " {cell} |");
            }
            if growth {
                let g = match first_last {
                    (Some(a), Some(b)) if a > 0.0 => format!("{:.2}×", b / a),
                    _ => "—".into(),
                };
                let _ = write!(row, " {g} |");
            }
        }
        let _ = writeln!(s, "{row}");
    }
}
