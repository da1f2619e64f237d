//! Every performance figure of docs/benchmarks.md from one command, side by side with
//! medallion (the OASIS TAXII 2.1 reference server):
//!
//! ```sh
//! cargo run --release --example bench_all -- --runs 3
//! ```
//!
//! Builds the release binaries it drives, writes the workloads with `synergia gen`
//! (one bundle per size, the same objects for every system measured), then, `--runs`
//! times:
//!
//! - `store_bench` on the 1M-indicator bundle: durable ingest, lookup p50/p99, RSS of a
//!   fresh process holding the store, disk against the raw JSON;
//! - `server_bench --replicate` on the same bundle: durable publish through
//!   `POST /api/v1/bundles`, TAXII paging of `consolidated` (limit 1000, mTLS), and an
//!   empty second node pulling everything through federation sync;
//! - `synergia demo --all-publish`: five-member convergence;
//! - at each `--store-counts` size (default the main workload's): both stores side by
//!   side, a node on the embedded store and one on PostgreSQL (`server_bench --count N
//!   --replicate`, with `--postgres` and `--peer-postgres` on fresh databases, dropped
//!   after), and the embedded store alone (`store_bench`); PostgreSQL is the server
//!   `--postgres URL` names (a user that may create databases, the password in
//!   `SYNERGIA_STORE_PASSWORD`), else a throwaway cluster the harness starts and
//!   removes (Debian's `postgresql` package), or left out with `--no-postgres`;
//! - at each `--medallion-counts` size: `server_bench --publish taxii` against a
//!   Synergia node and `server_bench --taxii-collection` against medallion (installed
//!   into a virtual environment, memory backend, loopback): the same objects, the same
//!   TAXII requests and the same client code; at each `--medallion-publish-counts`
//!   size, publishing only (medallion's paging is too slow there);
//!
//! and once the criterion micro-benchmarks (`envelope`, `stix`) with short times.
//!
//! Each figure is reported as the median of the runs with min and max, next to the
//! machine, the commit and the command. The results go to
//! `<target>/bench/results-<UTC time>.json` and are compared with an earlier results
//! file (`--baseline FILE`, default the latest one of the same sizes) so a regression
//! of more than 10% on any figure (a median that much worse, and no run of it as good
//! as the baseline's worst) is called out. The Markdown report is printed and
//! written beside the JSON.
//!
//! `--compare OLD.json NEW.json` only compares two results files; `--report FILE.json`
//! prints the report of one again.
//!
//! `--quick` uses small counts and one run, to check the harness itself in a minute or
//! two; its figures say nothing about performance.

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod postgres;
mod stores;

/// The medallion release measured (the latest on PyPI, 2020).
const MEDALLION: &str = "medallion==3.0.0";
/// `synergia gen` settings shared by every workload; `store_bench` recomputes the
/// observables of exactly these to look them up.
const GEN_SEED: &str = "7";
const GEN_ORIGIN: &str = "kaspersky";
const GEN_IDENTITY: &str = "identity--6b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c";
/// A regression is a median worse than the baseline's by more than this fraction.
const REGRESSION: f64 = 0.10;

/// Command-line options.
struct Options {
    runs: usize,
    quick: bool,
    /// Indicators of the main workload (1M).
    count: u64,
    /// Indicators each of the five members publishes in the convergence benchmark.
    convergence_count: u64,
    /// Sizes (indicators) at which Synergia and medallion are compared, publishing and
    /// paging; the largest is the comparison, the smaller ones show how medallion's
    /// costs grow.
    medallion_counts: Vec<u64>,
    /// Larger sizes at which only publishing is compared: medallion publishes in time
    /// that grows with the square of the collection, but pages in time that grows
    /// faster still (a 10,000-indicator collection takes it over ten minutes).
    medallion_publish_counts: Vec<u64>,
    /// Sizes (indicators) at which the two stores are compared.
    store_counts: Vec<u64>,
    /// Which PostgreSQL server the comparison uses.
    postgres: PostgresChoice,
    /// Only the stores' comparison (`--stores-only`).
    stores_only: bool,
    baseline: Option<PathBuf>,
    criterion: bool,
}

/// Where the PostgreSQL store of the comparison runs.
#[derive(Clone, PartialEq, Eq)]
enum PostgresChoice {
    /// A throwaway cluster the harness starts.
    Throwaway,
    /// The server at this URL (`--postgres URL`).
    Given(String),
    /// Not measured (`--no-postgres`).
    Leave,
}

fn options() -> Result<Options> {
    let mut o = Options {
        runs: 3,
        quick: false,
        count: 1_000_000,
        convergence_count: 30_000,
        medallion_counts: vec![1000, 3000],
        medallion_publish_counts: vec![10_000, 20_000],
        store_counts: Vec::new(),
        postgres: PostgresChoice::Throwaway,
        stores_only: false,
        baseline: None,
        criterion: true,
    };
    let mut runs = None;
    let mut store_counts = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => runs = Some(value()?.parse().context("--runs N")?),
            "--quick" => {
                o.quick = true;
                o.count = 20_000;
                o.convergence_count = 2000;
                o.medallion_counts = vec![300, 1000];
                o.medallion_publish_counts = vec![2000];
            }
            "--count" => o.count = value()?.parse().context("--count N")?,
            "--convergence-count" => {
                o.convergence_count = value()?.parse().context("--convergence-count N")?
            }
            "--medallion-counts" => {
                o.medallion_counts = value()?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--medallion-counts N,N,...")?;
                o.medallion_counts.sort();
            }
            "--medallion-publish-counts" => {
                o.medallion_publish_counts = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--medallion-publish-counts N,N,...")?;
                o.medallion_publish_counts.sort();
            }
            "--store-counts" => {
                let mut v: Vec<u64> = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--store-counts N,N,...")?;
                v.sort();
                v.dedup();
                store_counts = Some(v);
            }
            "--postgres" => o.postgres = PostgresChoice::Given(value()?),
            "--no-postgres" => o.postgres = PostgresChoice::Leave,
            "--stores-only" => o.stores_only = true,
            "--baseline" => o.baseline = Some(value()?.into()),
            "--no-criterion" => o.criterion = false,
            "--help" | "-h" => {
                println!(
                    "cargo run --release --example bench_all -- [--runs N] [--quick] \
                     [--count N] [--convergence-count N] [--medallion-counts N,N] [--medallion-publish-counts N,N] \
                     [--store-counts N,N] [--postgres URL | --no-postgres] [--stores-only] \
                     [--baseline FILE] [--no-criterion]\n       \
                     cargo run --release --example bench_all -- --compare OLD.json NEW.json\n       \
                     cargo run --release --example bench_all -- --report FILE.json"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    o.runs = runs.unwrap_or(if o.quick { 1 } else { 3 });
    o.store_counts = store_counts.unwrap_or_else(|| vec![o.count]);
    if o.runs == 0 || o.medallion_counts.is_empty() {
        bail!("--runs and --medallion-counts must not be empty");
    }
    Ok(o)
}

impl Options {
    /// The options a results file was measured with (what its report needs).
    fn of_results(r: &Value) -> Options {
        let z = &r["sizes"];
        let list = |k: &str| -> Vec<u64> {
            z[k].as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect()
        };
        Options {
            runs: r["runs"].as_u64().unwrap_or(1) as usize,
            quick: z["quick"].as_bool().unwrap_or(false),
            count: z["count"].as_u64().unwrap_or(0),
            convergence_count: z["convergence_count"].as_u64().unwrap_or(0),
            medallion_counts: list("medallion_counts"),
            medallion_publish_counts: list("medallion_publish_counts"),
            store_counts: list("store_counts"),
            postgres: if z["postgres_store"].as_bool().unwrap_or(false) {
                PostgresChoice::Throwaway
            } else {
                PostgresChoice::Leave
            },
            stores_only: z["stores_only"].as_bool().unwrap_or(false),
            baseline: None,
            criterion: true,
        }
    }
}

/// Where things are: the workspace, cargo's target directory (which may be shared
/// through `CARGO_TARGET_DIR`), and the harness's own files under it.
struct Paths {
    root: PathBuf,
    target: PathBuf,
    bench: PathBuf,
    work: PathBuf,
    pyenv: PathBuf,
}

impl Paths {
    fn new() -> Result<Paths> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("workspace root")?
            .to_path_buf();
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) => std::env::current_dir()?.join(t),
            None => root.join("target"),
        };
        Ok(Paths {
            bench: target.join("bench"),
            work: target.join("bench").join("work"),
            pyenv: target.join("bench-pyenv"),
            root,
            target,
        })
    }
    fn release(&self, name: &str) -> PathBuf {
        self.target.join("release").join(name)
    }
    fn gen_bundle(&self, count: u64) -> PathBuf {
        self.work.join(format!("gen-{count}.json"))
    }
}

/// Runs a command to completion; fails with its output when it fails.
fn run(cmd: &mut Command) -> Result<std::process::Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Runs a benchmark example and returns its `RESULT {json}` line. Its progress goes to
/// our stderr.
fn run_result(cmd: &mut Command) -> Result<Value> {
    eprintln!("  $ {}", show(cmd));
    let out = run(cmd.stderr(Stdio::inherit()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("no RESULT line from {cmd:?}:\n{stdout}"))?;
    serde_json::from_str(line).context("RESULT line is not JSON")
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo(paths: &Paths) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(&paths.root);
    c
}

/// The machine the figures belong to.
fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "memory_gib": (mem_kb as f64 / (1 << 20) as f64 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "rustc": rustc,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn git_commit(paths: &Paths) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&paths.root)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"]);
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        head
    } else {
        format!("{head} (with uncommitted changes)")
    }
}

/// UTC time as `2026-11-27T09:15:02Z` (display) and `20261127T091502Z` (file names).
fn utc_now() -> (String, String) {
    let s = synergia::stix::timestamp::Timestamp::now().to_millis_string();
    let display = format!("{}Z", &s[..19]);
    let compact: String = display.chars().filter(|c| *c != '-' && *c != ':').collect();
    (display, compact)
}

/// The medallion virtual environment, created on first use.
fn medallion_env(paths: &Paths) -> Result<String> {
    let pip = paths.pyenv.join("bin/pip");
    let installed = paths.pyenv.join("installed");
    if std::fs::read_to_string(&installed).unwrap_or_default() != MEDALLION {
        eprintln!("installing {MEDALLION} into {}", paths.pyenv.display());
        let _ = std::fs::remove_dir_all(&paths.pyenv);
        run(Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&paths.pyenv))?;
        run(Command::new(&pip).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MEDALLION,
        ]))?;
        std::fs::write(&installed, MEDALLION)?;
    }
    let freeze = run(Command::new(&pip).args(["freeze", "--disable-pip-version-check"]))?;
    let versions: Vec<String> = String::from_utf8_lossy(&freeze.stdout)
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("medallion=") || l.starts_with("flask=") || l.starts_with("werkzeug=")
        })
        .map(str::to_string)
        .collect();
    let python = run(Command::new(paths.pyenv.join("bin/python")).arg("--version"))?;
    Ok(format!(
        "{} ({})",
        versions.join(", "),
        String::from_utf8_lossy(&python.stdout).trim()
    ))
}

/// A running medallion: memory backend, one API root with one writable collection,
/// HTTP basic auth, on loopback. Killed when dropped.
struct Medallion {
    child: Child,
    collection_url: String,
}

const MEDALLION_COLLECTION: &str = "91a7b528-80eb-42ed-a74d-c6fbd5a26116";

impl Medallion {
    fn start(paths: &Paths) -> Result<Medallion> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let data = json!({
            "/discovery": {
                "title": "bench",
                "default": format!("{base}/bench/"),
                "api_roots": [format!("{base}/bench/")],
            },
            "bench": {
                "information": {
                    "title": "bench",
                    "versions": ["application/taxii+json;version=2.1"],
                    "max_content_length": 1u64 << 30,
                },
                "status": [],
                "collections": [{
                    "id": MEDALLION_COLLECTION,
                    "title": "bench",
                    "can_read": true,
                    "can_write": true,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": [],
                }],
            },
        });
        let data_path = paths.work.join("medallion-data.json");
        std::fs::write(&data_path, data.to_string())?;
        let config = json!({
            "backend": {
                "module": "medallion.backends.memory_backend",
                "module_class": "MemoryBackend",
                "filename": data_path,
            },
            "users": {"bench": "bench"},
            // Pages of 1000, like the Synergia figures (medallion's default is 100).
            "taxii": {"max_page_size": 1000},
        });
        let config_path = paths.work.join("medallion-config.json");
        std::fs::write(&config_path, config.to_string())?;
        let log = std::fs::File::create(paths.work.join("medallion.log"))?;
        let child = Command::new(paths.pyenv.join("bin/medallion"))
            .arg("--port")
            .arg(port.to_string())
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting medallion")?;
        let m = Medallion {
            child,
            collection_url: format!("{base}/bench/collections/{MEDALLION_COLLECTION}/"),
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t.elapsed() > Duration::from_secs(30) {
                bail!("medallion did not start; see {}", paths.work.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(m)
    }
}

impl Drop for Medallion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The five-member convergence time and the number of objects the members published
/// between them, from `synergia demo`'s progress line "converged in 12.34 s after the
/// first publish: groupib 159291/159291 … interpol 169505/169505" (the largest count is
/// the coordinator's, which is allowed everything published).
fn convergence(paths: &Paths, count: u64) -> Result<(f64, f64)> {
    let mut cmd = Command::new(paths.release("synergia"));
    cmd.args(["demo", "--all-publish", "--timeout", "900", "--count"])
        .arg(count.to_string());
    eprintln!("  $ {}", show(&cmd));
    let out = run(&mut cmd)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find_map(|l| {
            let (secs, held) = l.split_once("converged in ")?.1.split_once(':')?;
            let secs: f64 = secs.split_whitespace().next()?.parse().ok()?;
            let objects = held
                .split_whitespace()
                .filter_map(|t| t.split_once('/')?.1.parse::<f64>().ok())
                .fold(0.0, f64::max);
            (objects > 0.0).then_some((secs, objects))
        })
        .with_context(|| format!("no convergence line in the demo's output:\n{stderr}"))
}

/// Samples of every figure, by key.
type Samples = BTreeMap<String, Vec<f64>>;

fn push(samples: &mut Samples, key: &str, v: Option<f64>) -> Result<()> {
    let v = v.with_context(|| format!("figure {key} missing from a result"))?;
    samples.entry(key.to_string()).or_default().push(v);
    Ok(())
}

/// The medallion comparison sizes, ascending, each with whether paging is measured.
fn medallion_sizes(o: &Options) -> Vec<(u64, bool)> {
    let mut v: Vec<(u64, bool)> = o.medallion_counts.iter().map(|&n| (n, true)).collect();
    v.extend(
        o.medallion_publish_counts
            .iter()
            .filter(|n| !o.medallion_counts.contains(n))
            .map(|&n| (n, false)),
    );
    v.sort();
    v
}

/// `server_bench --bundle BUNDLE`, for the caller to add its options.
fn server_bench(paths: &Paths, bundle: &Path) -> Command {
    let mut cmd = Command::new(paths.release("examples/server_bench"));
    cmd.arg("--bundle").arg(bundle);
    cmd
}

/// One run of every end-to-end measurement.
fn one_run(
    o: &Options,
    paths: &Paths,
    pg: Option<&postgres::Server>,
    samples: &mut Samples,
) -> Result<()> {
    if o.stores_only {
        return stores::run(o, paths, pg, samples);
    }
    let big = paths.gen_bundle(o.count);
    let store_dir = paths.work.join("store");
    let _ = std::fs::remove_dir_all(&store_dir);
    std::fs::create_dir_all(&store_dir)?;
    let r = run_result(
        Command::new(paths.release("examples/store_bench"))
            .arg("--bundle")
            .arg(&big)
            .args(["--count", &o.count.to_string(), "--no-baseline", "--dir"])
            .arg(&store_dir),
    )?;
    std::fs::remove_dir_all(&store_dir)?;
    let f = |k: &str| r[k].as_f64();
    push(samples, "store_ingest", f("ingest_store_objects_per_s"))?;
    push(
        samples,
        "store_ingest_verified",
        f("ingest_parse_verify_store_objects_per_s"),
    )?;
    push(samples, "lookup_p50_us", f("lookup_p50_us"))?;
    push(samples, "lookup_p99_us", f("lookup_p99_us"))?;
    push(
        samples,
        "rss_fresh_mb",
        f("rss_kb_fresh_process").map(|k| k / 1024.0),
    )?;
    push(
        samples,
        "rss_fresh_peak_mb",
        f("rss_kb_fresh_process_peak").map(|k| k / 1024.0),
    )?;
    push(
        samples,
        "rss_after_ingest_mb",
        f("rss_kb_after_ingest").map(|k| k / 1024.0),
    )?;
    push(samples, "disk_ratio", f("disk_vs_raw_json"))?;
    push(
        samples,
        "disk_mb",
        Some((f("log_bytes").unwrap_or(0.0) + f("index_bytes").unwrap_or(0.0)) / 1048576.0),
    )?;

    let r = run_result(server_bench(paths, &big).arg("--replicate"))?;
    push(samples, "publish_api", r["publish_objects_per_s"].as_f64())?;
    // A pipeline that publishes over two connections at once (the node takes
    // concurrent publishes; `limits.max_concurrent_publishes`).
    let r2 = run_result(server_bench(paths, &big).args(["--concurrency", "2"]))?;
    push(
        samples,
        "publish_api_2",
        r2["publish_objects_per_s"].as_f64(),
    )?;
    push(samples, "paging", r["paging_objects_per_s"].as_f64())?;
    push(
        samples,
        "replicated",
        r["replicated_objects_per_s"].as_f64(),
    )?;

    let (secs, objects) = convergence(paths, o.convergence_count)?;
    push(samples, "convergence_s", Some(secs))?;
    // The issue asks for the convergence time also as a multiple of the time one node
    // takes to ingest the same total: here one node's durable publish of the same
    // number of objects at this run's publish rate. Unlike seconds, the multiple
    // changes little with the machine's speed, which moves by 2× between sittings.
    push(
        samples,
        "convergence_vs_one_node",
        r["publish_objects_per_s"]
            .as_f64()
            .map(|rate| secs * rate / objects),
    )?;

    for (n, paging) in medallion_sizes(o) {
        let bundle = paths.gen_bundle(n);
        let s = run_result(server_bench(paths, &bundle).args(["--publish", "taxii"]))?;
        let m = {
            let medallion = Medallion::start(paths)?;
            let mut cmd = server_bench(paths, &bundle);
            cmd.args(["--taxii-collection", &medallion.collection_url])
                .args(["--basic", "bench:bench"]);
            if !paging {
                cmd.arg("--no-paging");
            }
            run_result(&mut cmd)?
        };
        let mut compared = vec![("publish", "publish_objects_per_s")];
        if paging {
            push(
                samples,
                &format!("medallion_paging_s_{n}"),
                m["paging_s"].as_f64(),
            )?;
            compared.push(("paging", "paging_objects_per_s"));
        }
        for (what, field) in compared {
            let (sv, mv) = (s[field].as_f64(), m[field].as_f64());
            push(samples, &format!("synergia_taxii_{what}_{n}"), sv)?;
            push(samples, &format!("medallion_{what}_{n}"), mv)?;
            push(
                samples,
                &format!("ratio_{what}_{n}"),
                sv.zip(mv).map(|(s, m)| s / m),
            )?;
        }
    }
    stores::run(o, paths, pg, samples)
}

/// Runs the criterion benchmarks once with short times and reads each benchmark's
/// median (and its 95% confidence interval) from `estimates.json`.
fn criterion(o: &Options, paths: &Paths) -> Result<Vec<Value>> {
    let started = std::time::SystemTime::now();
    for bench in ["envelope", "stix"] {
        let mut cmd = cargo(paths);
        cmd.args(["bench", "--bench", bench, "--"]);
        if o.quick {
            // One small benchmark each: enough to check the harness reads them.
            cmd.args(["--warm-up-time", "0.2", "--measurement-time", "0.5"]);
            cmd.arg(if bench == "stix" {
                "stix-pattern"
            } else {
                "envelope/verify/1$"
            });
        } else {
            cmd.args(["--warm-up-time", "1", "--measurement-time", "3"]);
        }
        cmd.arg("--noplot");
        eprintln!("  $ {}", show(&cmd));
        run(cmd.stdout(Stdio::null()).stderr(Stdio::inherit()))?;
    }
    let mut found = Vec::new();
    let mut stack = vec![paths.target.join("criterion")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let fresh = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= started);
            if !fresh || !p.ends_with("new/estimates.json") {
                continue;
            }
            let read =
                |p: &Path| -> Result<Value> { Ok(serde_json::from_slice(&std::fs::read(p)?)?) };
            let est = read(&p)?;
            let meta = read(&p.with_file_name("benchmark.json"))?;
            let elements = meta["throughput"]["Elements"].as_f64();
            let bytes = meta["throughput"]["Bytes"].as_f64();
            found.push(json!({
                "id": meta["full_id"],
                "median_ns": est["median"]["point_estimate"],
                "low_ns": est["median"]["confidence_interval"]["lower_bound"],
                "high_ns": est["median"]["confidence_interval"]["upper_bound"],
                "elements": elements,
                "bytes": bytes,
            }));
        }
    }
    found.sort_by_key(|v| v["id"].as_str().unwrap_or_default().to_string());
    if found.is_empty() {
        bail!("criterion wrote no estimates");
    }
    Ok(found)
}

/// Whether larger or smaller is better.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

/// A target from the project's issues.
#[derive(Clone, Copy)]
enum Target {
    AtLeast(f64),
    Below(f64),
    AtMost(f64),
}

impl Target {
    fn met(self, v: f64) -> bool {
        match self {
            Target::AtLeast(t) => v >= t,
            Target::Below(t) => v < t,
            Target::AtMost(t) => v <= t,
        }
    }
    fn text(self, unit: &str) -> String {
        match self {
            Target::AtLeast(t) => format!("≥ {}", fmt_value(t, unit)),
            Target::Below(t) => format!("< {}", fmt_value(t, unit)),
            Target::AtMost(t) => format!("≤ {}", fmt_value(t, unit)),
        }
    }
}

/// A figure of the report: what it is, its unit, and its target if any.
struct Spec {
    key: String,
    label: String,
    unit: &'static str,
    better: Better,
    target: Option<Target>,
}

fn specs(o: &Options) -> Vec<Spec> {
    let n = fmt_count(o.count);
    let s = |key: &str, label: String, unit, better, target| Spec {
        key: key.into(),
        label,
        unit,
        better,
        target,
    };
    use Better::*;
    let mut v = vec![
        s(
            "publish_api",
            format!(
                "durable publish, `POST /api/v1/bundles`, {n} indicators (10,000 objects per request, mTLS)"
            ),
            "objects/s",
            Higher,
            Some(Target::AtLeast(100_000.0)),
        ),
        s(
            "publish_api_2",
            "same, two clients publishing at once".into(),
            "objects/s",
            Higher,
            None,
        ),
        s(
            "store_ingest",
            format!("durable ingest into the store, signed envelopes, {n} indicators (store only)"),
            "objects/s",
            Higher,
            Some(Target::AtLeast(100_000.0)),
        ),
        s(
            "store_ingest_verified",
            "same, parse + verify + store".into(),
            "objects/s",
            Higher,
            None,
        ),
        s(
            "replicated",
            "replicated ingest: an empty peer pulls everything through federation sync".into(),
            "objects/s",
            Higher,
            Some(Target::AtLeast(100_000.0)),
        ),
        s(
            "paging",
            format!("TAXII paging of `consolidated`, limit 1000, mTLS, {n} indicators"),
            "objects/s",
            Higher,
            Some(Target::AtLeast(200_000.0)),
        ),
        s(
            "lookup_p50_us",
            format!("observable lookup p50 at {n} indicators"),
            "µs",
            Lower,
            None,
        ),
        s(
            "lookup_p99_us",
            format!("observable lookup p99 at {n} indicators"),
            "µs",
            Lower,
            Some(Target::Below(1000.0)),
        ),
        s(
            "rss_fresh_mb",
            format!("RSS of a fresh process holding the store of {n} indicators"),
            "MB",
            Lower,
            Some(Target::Below(300.0)),
        ),
        s(
            "rss_fresh_peak_mb",
            "same, peak while opening".into(),
            "MB",
            Lower,
            None,
        ),
        s(
            "rss_after_ingest_mb",
            "RSS of the ingesting process after ingest".into(),
            "MB",
            Lower,
            None,
        ),
        s(
            "disk_ratio",
            "disk (evidence log + index) / raw JSON".into(),
            "×",
            Lower,
            Some(Target::AtMost(2.5)),
        ),
        s(
            "disk_mb",
            "disk (evidence log + index)".into(),
            "MB",
            Lower,
            None,
        ),
        s(
            "convergence_s",
            format!(
                "five members × {} indicators converge",
                fmt_count(o.convergence_count)
            ),
            "s",
            Lower,
            Some(Target::Below(5.0)),
        ),
        s(
            "convergence_vs_one_node",
            "same, as a multiple of the time one node takes to publish as many objects (this run's publish rate)".into(),
            "×",
            Lower,
            None,
        ),
    ];
    let sizes = medallion_sizes(o);
    let largest = sizes.last().map(|&(n, _)| n);
    let largest_paged = sizes.iter().rev().find(|(_, p)| *p).map(|&(n, _)| n);
    for (m, paging) in sizes {
        let mn = fmt_count(m);
        let mut compared = vec![(
            "publish",
            "TAXII publish (POST to a collection, 1000 objects per request)",
            largest,
        )];
        if paging {
            compared.push(("paging", "TAXII paging, limit 1000", largest_paged));
        }
        for (what, label, target_size) in compared {
            v.push(s(
                &format!("synergia_taxii_{what}_{m}"),
                format!("Synergia {label}, {mn} indicators"),
                "objects/s",
                Higher,
                None,
            ));
            v.push(s(
                &format!("medallion_{what}_{m}"),
                format!("medallion {label}, {mn} indicators"),
                "objects/s",
                Higher,
                None,
            ));
            v.push(s(
                &format!("ratio_{what}_{m}"),
                format!("Synergia / medallion, {what}, {mn} indicators"),
                "×",
                Higher,
                (target_size == Some(m)).then_some(Target::AtLeast(50.0)),
            ));
        }
        if paging {
            v.push(s(
                &format!("medallion_paging_s_{m}"),
                format!("medallion: one paging pass over {mn} indicators takes"),
                "s",
                Lower,
                None,
            ));
        }
    }
    v.extend(stores::specs(o));
    v
}

fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A value with its unit.
fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "×" => format!("{}×", fmt_num(v, unit)),
        _ => format!("{} {unit}", fmt_num(v, unit)),
    }
}

/// A value without its unit, rounded as its unit deserves.
fn fmt_num(v: f64, unit: &str) -> String {
    match unit {
        "objects/s" | "MB" | "B" => fmt_count(v.round() as u64),
        "×" if v >= 10.0 => format!("{v:.0}"),
        "µs" | "s" if v >= 100.0 => format!("{v:.0}"),
        "µs" => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if !n.is_multiple_of(2) {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The figures as JSON: median, min, max and every sample, with units and targets.
fn figures_json(specs: &[Spec], samples: &Samples, criterion: &[Value]) -> Value {
    let mut out = Vec::new();
    for sp in specs {
        let Some(v) = samples.get(&sp.key) else {
            continue;
        };
        let med = median(v);
        out.push(json!({
            "key": sp.key,
            "label": sp.label,
            "unit": sp.unit,
            "better": if sp.better == Better::Higher { "higher" } else { "lower" },
            "median": med,
            "min": v.iter().copied().fold(f64::INFINITY, f64::min),
            "max": v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "samples": v,
            "target": sp.target.map(|t| t.text(sp.unit)),
            "met": sp.target.map(|t| t.met(med)),
        }));
    }
    for c in criterion {
        let id = c["id"].as_str().unwrap_or_default();
        let ns = c["median_ns"].as_f64().unwrap_or(0.0);
        let is_parse_validate = id == "stix-parse-validate/bundle/100k-indicators";
        let target = is_parse_validate.then_some(Target::AtLeast(150_000.0));
        let rate = c["elements"].as_f64().map(|e| e / (ns / 1e9));
        out.push(json!({
            "key": format!("criterion:{id}"),
            "label": format!("criterion `{id}`"),
            "unit": "ns",
            "better": "lower",
            "median": ns,
            "min": c["low_ns"],
            "max": c["high_ns"],
            "samples": [ns],
            "elements_per_s": rate,
            "bytes_per_s": c["bytes"].as_f64().map(|b| b / (ns / 1e9)),
            "target": target.map(|t| t.text("objects/s")),
            "met": target.zip(rate).map(|(t, r)| t.met(r)),
        }));
    }
    Value::Array(out)
}

/// The latest earlier results file of the same sizes, to compare with.
fn find_baseline(paths: &Paths, this: &Path, sizes: &Value) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&paths.bench)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p != this
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("results-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files.into_iter().rev().find(|p| {
        std::fs::read(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| &v["sizes"] == sizes)
    })
}

/// Figures whose median is more than 10% worse than the baseline's and, when both
/// sides have several runs, whose every run is worse than every run of the baseline.
fn regressions(now: &Value, base: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(old) = base["figures"].as_array() else {
        return out;
    };
    for f in now["figures"].as_array().into_iter().flatten() {
        let Some(o) = old.iter().find(|o| o["key"] == f["key"]) else {
            continue;
        };
        let (Some(new), Some(was)) = (f["median"].as_f64(), o["median"].as_f64()) else {
            continue;
        };
        if was == 0.0 {
            continue;
        }
        let change = new / was - 1.0;
        let worse = if f["better"] == "higher" {
            -change
        } else {
            change
        };
        // With several runs on each side, the runs must not overlap either: on this
        // kind of machine short measurements move by a third between runs, and a
        // median alone then flags noise.
        let (lo, hi) = if f["better"] == "higher" {
            (f["max"].as_f64(), o["min"].as_f64())
        } else {
            (o["max"].as_f64(), f["min"].as_f64())
        };
        let several = |v: &Value| v["samples"].as_array().is_some_and(|s| s.len() > 1);
        let overlap = several(f) && several(o) && lo.zip(hi).is_some_and(|(lo, hi)| lo >= hi);
        if worse > REGRESSION && !overlap {
            out.push(format!(
                "{}: {} → {} ({:+.0}%)",
                f["label"].as_str().unwrap_or_default(),
                fmt_figure(o),
                fmt_figure(f),
                change * 100.0
            ));
        }
    }
    out
}

fn fmt_figure(f: &Value) -> String {
    let unit = f["unit"].as_str().unwrap_or_default();
    let v = f["median"].as_f64().unwrap_or(0.0);
    if unit == "ns" {
        fmt_ns(v)
    } else {
        fmt_value(v, unit)
    }
}

fn met_text(f: &Value) -> &'static str {
    match f["met"].as_bool() {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "",
    }
}

/// The Markdown report of one harness run.
fn report(r: &Value, regress: &[String], baseline: Option<&Path>) -> String {
    let o = &Options::of_results(r);
    let mut s = String::new();
    let m = &r["machine"];
    let runs = o.runs;
    let _ = writeln!(
        s,
        "Run of {} UTC{}: `{}`, commit {}, {} min {} s.\n",
        r["started"].as_str().unwrap_or_default(),
        if o.quick {
            " (**--quick: small counts, one run; these figures check the harness, they are not the project's figures**)"
        } else {
            ""
        },
        r["command"].as_str().unwrap_or_default(),
        r["commit"].as_str().unwrap_or_default(),
        r["elapsed_s"].as_u64().unwrap_or(0) / 60,
        r["elapsed_s"].as_u64().unwrap_or(0) % 60,
    );
    let _ = writeln!(
        s,
        "Machine: {} × {}, {} GiB, Linux {}, {}; load average (1/5/15 min) {} at the start, {} at the end. \
         Medallion: {}.\n",
        m["cpus"],
        m["cpu_model"].as_str().unwrap_or_default(),
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or_default(),
        m["rustc"].as_str().unwrap_or_default(),
        r["load_start"].as_str().unwrap_or_default(),
        r["load_end"].as_str().unwrap_or_default(),
        r["medallion"].as_str().unwrap_or_default(),
    );
    let _ = writeln!(
        s,
        "Each figure: median of {runs} run{} (min – max).\n",
        if runs == 1 { "" } else { "s" }
    );
    let figures = r["figures"].as_array().cloned().unwrap_or_default();
    if !o.stores_only {
        let _ = writeln!(s, "| figure | median | min – max | target | met? |");
        let _ = writeln!(s, "|---|---|---|---|---|");
    }
    let key = |f: &Value| f["key"].as_str().unwrap_or_default().to_string();
    let compared = |k: &str| {
        k.starts_with("synergia_taxii_")
            || k.starts_with("medallion_")
            || k.starts_with("ratio_")
            || stores::is_comparison(k)
    };
    for f in figures
        .iter()
        .filter(|f| f["unit"] != "ns" && !compared(&key(f)))
    {
        let unit = f["unit"].as_str().unwrap_or_default();
        let v = |k: &str| fmt_num(f[k].as_f64().unwrap_or(0.0), unit);
        let _ = writeln!(
            s,
            "| {} | {} | {} – {} | {} | {} |",
            f["label"].as_str().unwrap_or_default(),
            fmt_value(f["median"].as_f64().unwrap_or(0.0), unit),
            v("min"),
            v("max"),
            f["target"].as_str().unwrap_or(""),
            met_text(f)
        );
    }
    if !o.stores_only {
        let _ = writeln!(
            s,
            "\nSynergia and medallion, the same objects through the same TAXII client \
             (Synergia: mTLS, durable; medallion: plain HTTP, memory backend). \
             Medians (min – max):\n"
        );
        let _ = writeln!(
            s,
            "| indicators | Synergia publish | medallion publish | ratio | \
             Synergia paging | medallion paging | ratio | medallion paging pass |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        let cell = |k: String, range: bool| -> String {
            let Some(f) = figures.iter().find(|f| f["key"] == k.as_str()) else {
                return "—".into();
            };
            let unit = f["unit"].as_str().unwrap_or_default();
            let v = |k: &str| fmt_num(f[k].as_f64().unwrap_or(0.0), unit);
            let mut c = fmt_value(f["median"].as_f64().unwrap_or(0.0), unit);
            if range {
                let _ = write!(c, " ({} – {})", v("min"), v("max"));
            }
            if f["met"].is_boolean() {
                let _ = write!(c, " — target ≥ 50×: {}", met_text(f));
            }
            c
        };
        for (n, _) in medallion_sizes(o) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                fmt_count(n),
                cell(format!("synergia_taxii_publish_{n}"), false),
                cell(format!("medallion_publish_{n}"), false),
                cell(format!("ratio_publish_{n}"), true),
                cell(format!("synergia_taxii_paging_{n}"), false),
                cell(format!("medallion_paging_{n}"), false),
                cell(format!("ratio_paging_{n}"), true),
                cell(format!("medallion_paging_s_{n}"), false),
            );
        }
    }
    stores::report(
        o,
        &figures,
        r["postgres"].as_str().unwrap_or("not measured"),
        &mut s,
    );
    let crit: Vec<&Value> = figures.iter().filter(|f| f["unit"] == "ns").collect();
    if !crit.is_empty() {
        let _ = writeln!(
            s,
            "\nCriterion micro-benchmarks (one run each; median and its 95% confidence interval):\n"
        );
        let _ = writeln!(
            s,
            "| benchmark | median | interval | rate | target | met? |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for f in crit {
            let rate = match (f["elements_per_s"].as_f64(), f["bytes_per_s"].as_f64()) {
                (Some(e), _) => format!("{} elements/s", fmt_count(e.round() as u64)),
                (_, Some(b)) => format!("{:.0} MB/s", b / 1e6),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "| `{}` | {} | {} – {} | {} | {} | {} |",
                f["key"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches("criterion:"),
                fmt_ns(f["median"].as_f64().unwrap_or(0.0)),
                fmt_ns(f["min"].as_f64().unwrap_or(0.0)),
                fmt_ns(f["max"].as_f64().unwrap_or(0.0)),
                rate,
                f["target"].as_str().unwrap_or(""),
                met_text(f)
            );
        }
    }
    let met: Vec<&str> = figures
        .iter()
        .filter(|f| f["met"] == true)
        .filter_map(|f| f["label"].as_str())
        .collect();
    let not_met: Vec<&str> = figures
        .iter()
        .filter(|f| f["met"] == false)
        .filter_map(|f| f["label"].as_str())
        .collect();
    let _ = writeln!(
        s,
        "\nTargets met ({}): {}.\n\nTargets not met ({}): {}.",
        met.len(),
        if met.is_empty() {
            "none".into()
        } else {
            met.join("; ")
        },
        not_met.len(),
        if not_met.is_empty() {
            "none".into()
        } else {
            not_met.join("; ")
        }
    );
    match baseline {
        None => {
            let _ = writeln!(s, "\nNo earlier results of the same sizes to compare with.");
        }
        Some(b) => {
            let name = b.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if regress.is_empty() {
                let _ = writeln!(
                    s,
                    "\nCompared with `{name}`: no figure is more than 10% worse."
                );
            } else {
                let _ = writeln!(
                    s,
                    "\nCompared with `{name}`, **{} figure(s) more than 10% worse**:\n",
                    regress.len()
                );
                for r in regress {
                    let _ = writeln!(s, "- {r}");
                }
            }
        }
    }
    s
}

/// `--compare OLD NEW`: the regressions between two results files, without measuring.
fn compare_only() -> Result<bool> {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--compare") else {
        return Ok(false);
    };
    let (Some(old), Some(new)) = (args.get(i + 1), args.get(i + 2)) else {
        bail!("--compare OLD.json NEW.json");
    };
    let read = |p: &str| -> Result<Value> {
        Ok(serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {p}"))?,
        )?)
    };
    let (old_v, new_v) = (read(old)?, read(new)?);
    if old_v["sizes"] != new_v["sizes"] {
        println!(
            "note: the two runs used different sizes; only figures of the same key are compared"
        );
    }
    let r = regressions(&new_v, &old_v);
    if r.is_empty() {
        println!("no figure of {new} is more than 10% worse than in {old}");
    } else {
        println!(
            "{} figure(s) of {new} more than 10% worse than in {old}:",
            r.len()
        );
        for line in r {
            println!("- {line}");
        }
    }
    Ok(true)
}

/// `--report FILE.json`: prints the Markdown report of an earlier results file.
fn report_only() -> Result<bool> {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--report") else {
        return Ok(false);
    };
    let path = args.get(i + 1).context("--report FILE.json")?;
    let r: Value =
        serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {path}"))?)?;
    println!("{}", report(&r, &[], None));
    Ok(true)
}

fn main() -> Result<()> {
    if compare_only()? || report_only()? {
        return Ok(());
    }
    let o = options()?;
    let paths = Paths::new()?;
    let t0 = Instant::now();
    let (started, stamp) = utc_now();
    let load_start = load_average();
    let command = format!(
        "cargo run --release --example bench_all --{}",
        std::env::args()
            .skip(1)
            .map(|a| format!(" {a}"))
            .collect::<String>()
    );
    std::fs::create_dir_all(&paths.work)?;

    eprintln!("== PostgreSQL");
    let pg = match &o.postgres {
        PostgresChoice::Throwaway => Some(postgres::Server::throwaway()?),
        PostgresChoice::Given(url) => Some(postgres::Server::given(url)?),
        PostgresChoice::Leave => None,
    };
    let pg_description = pg.as_ref().map_or_else(
        || "not measured (--no-postgres)".to_string(),
        |p| p.description.clone(),
    );

    eprintln!("== building the release binaries");
    run(cargo(&paths)
        .args(["build", "--release", "--bin", "synergia"])
        .args(["--example", "store_bench", "--example", "server_bench"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit()))?;

    eprintln!("== writing the workloads with synergia gen");
    let mut sizes = vec![o.count];
    sizes.extend(medallion_sizes(&o).iter().map(|&(n, _)| n));
    if o.stores_only {
        // The stores' comparison generates its own (`--count`).
        sizes.clear();
    }
    for &n in &sizes {
        let mut cmd = Command::new(paths.release("synergia"));
        cmd.args(["gen", "--count", &n.to_string(), "--seed", GEN_SEED])
            .args(["--origin", GEN_ORIGIN, "--identity", GEN_IDENTITY])
            .args(["--tlp", "green", "--overlap", "0.3", "--out"])
            .arg(paths.gen_bundle(n));
        eprintln!("  $ {}", show(&cmd));
        run(&mut cmd)?;
    }

    let medallion = if o.stores_only {
        "not measured (--stores-only)".to_string()
    } else {
        eprintln!("== medallion");
        medallion_env(&paths)?
    };

    let specs = specs(&o);
    let commit = git_commit(&paths);
    let results = |samples: &Samples, criterion: &[Value], runs: usize| {
        json!({
            "started": started,
            "command": command,
            "commit": commit,
            "machine": machine(),
            "load_start": load_start,
            "load_end": load_average(),
            "elapsed_s": t0.elapsed().as_secs(),
            "runs": runs,
            "sizes": {
                "count": o.count,
                "convergence_count": o.convergence_count,
                "medallion_counts": o.medallion_counts,
                "medallion_publish_counts": o.medallion_publish_counts,
                "store_counts": o.store_counts,
                "postgres_store": pg.is_some(),
                "stores_only": o.stores_only,
                "quick": o.quick,
            },
            "medallion": medallion,
            "postgres": pg_description,
            "figures": figures_json(&specs, samples, criterion),
        })
    };
    // After each run the figures so far are kept, so a run cut short still leaves
    // them (`--report` prints them); the file goes once the full results are written.
    let partial = paths.bench.join(format!("partial-{stamp}.json"));
    let mut samples = Samples::new();
    for i in 1..=o.runs {
        eprintln!("== run {i} of {}", o.runs);
        one_run(&o, &paths, pg.as_ref(), &mut samples)?;
        std::fs::write(
            &partial,
            serde_json::to_vec_pretty(&results(&samples, &[], i))?,
        )?;
    }
    let criterion = if o.criterion && !o.stores_only {
        eprintln!("== criterion micro-benchmarks");
        criterion(&o, &paths)?
    } else {
        Vec::new()
    };
    let result = results(&samples, &criterion, o.runs);
    let out = paths.bench.join(format!("results-{stamp}.json"));
    std::fs::write(&out, serde_json::to_vec_pretty(&result)?)?;
    let _ = std::fs::remove_file(&partial);
    let baseline = match &o.baseline {
        Some(b) => Some(b.clone()),
        None => find_baseline(&paths, &out, &result["sizes"]),
    };
    let regress = match &baseline {
        Some(b) => {
            let base: Value = serde_json::from_slice(
                &std::fs::read(b).with_context(|| format!("reading {}", b.display()))?,
            )?;
            regressions(&result, &base)
        }
        None => Vec::new(),
    };
    let text = report(&result, &regress, baseline.as_deref());
    std::fs::write(paths.bench.join(format!("report-{stamp}.md")), &text)?;
    println!("{text}");
    eprintln!("results: {}", out.display());
    // The workloads and stores are gigabytes at 1M; only the results are kept.
    drop(pg);
    let _ = std::fs::remove_dir_all(&paths.work);
    Ok(())
}
