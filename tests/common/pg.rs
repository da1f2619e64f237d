//! A throwaway PostgreSQL cluster for the tests: `initdb` in a temporary directory, the
//! server on a free loopback port, run as an unprivileged user when the tests run as
//! root (PostgreSQL refuses to run as root), stopped and removed when the test process
//! ends, however it ends.
//!
//! The server binaries come from `SYNERGIA_PG_BIN`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package, which `tests/run`
//! installs), else `PATH`. When none is found or the server does not start, the test
//! fails with a message that says so: nothing is skipped.

use super::pg_bin::{as_server_user, bin_dir, is_root};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The user the cluster's superuser is called, and its password.
pub const SUPERUSER: &str = "synergia";
/// The superuser's password (scram-sha-256 over TCP).
pub const PASSWORD: &str = "throwaway-test-password";

/// A running cluster.
pub struct PgCluster {
    /// Its loopback port.
    pub port: u16,
    /// The data directory's parent (removed by the watcher when the tests end).
    pub dir: PathBuf,
    /// The watcher: stdin held open while the tests run; closing it stops the server.
    /// A line `stop` stops the server (fast shutdown) and the next line starts it
    /// again ([`PgCluster::stop`], [`PgCluster::start_again`]).
    watcher: Mutex<Child>,
    /// The server binaries.
    bin: PathBuf,
    /// Databases made so far (each test takes a fresh one).
    made: Mutex<u32>,
}

/// Certificate and key (PEM) the server presents, for clusters that take only TLS.
pub struct ServerTls {
    /// The server certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}

impl PgCluster {
    /// The cluster shared by one test binary (started at first use).
    pub fn shared() -> &'static PgCluster {
        static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| PgCluster::start(None))
    }

    /// Starts a cluster; with `tls`, it accepts only TLS connections over TCP.
    pub fn start(tls: Option<&ServerTls>) -> PgCluster {
        let bin = bin_dir()
            .unwrap_or_else(|e| panic!("{e} (tests/run installs the package when run as root)"));
        let dir = tempfile::Builder::new()
            .prefix("synergia-pg-")
            .tempdir()
            .expect("temporary directory for the PostgreSQL cluster")
            .keep();
        let data = dir.join("data");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(st.success(), "chown of {} failed", dir.display());
        }
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "--username",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}/initdb: {e}", bin.display()));
        assert!(
            out.status.success(),
            "PostgreSQL initdb failed, the tests cannot run: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(t) = tls {
            std::fs::write(data.join("server.crt"), &t.cert_pem).unwrap();
            std::fs::write(data.join("server.key"), &t.key_pem).unwrap();
            let mut conf = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .unwrap();
            writeln!(conf, "ssl = on").unwrap();
            // TCP only over TLS; the Unix socket (the tests' own admin) stays trusted.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .unwrap();
            if is_root() {
                Command::new("chown")
                    .args(["-R", "nobody:nogroup"])
                    .arg(&data)
                    .status()
                    .unwrap();
            }
            std::fs::set_permissions(
                data.join("server.key"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
        }
        let port = super::free_ports(1)[0];
        // The watcher holds the server; when the test process ends (stdin closes) it
        // stops the server at once and removes the whole directory.
        let mut server = as_server_user(&bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
            ]);
        let script = format!(
            "while :; do {server} & pid=$!; \
               if ! read cmd; then kill -QUIT $pid 2>/dev/null; wait $pid; break; fi; \
               kill -INT $pid 2>/dev/null; wait $pid; \
               read cmd || break; \
             done; rm -rf '{dir}'",
            server = shell_words(&server),
            dir = dir.display()
        );
        let watcher = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("server.log")).unwrap(),
            ))
            .spawn()
            .expect("sh");
        let cluster = PgCluster {
            port,
            dir,
            watcher: Mutex::new(watcher),
            bin,
            made: Mutex::new(0),
        };
        cluster.wait_ready();
        cluster
    }

    fn tell(&self, line: &str) {
        let mut w = self.watcher.lock().unwrap();
        let stdin = w.stdin.as_mut().expect("the watcher's stdin");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Stops the server (a fast shutdown: connections are closed) and waits until it
    /// no longer answers.
    pub fn stop(&self) {
        self.tell("stop");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ready() {
            assert!(
                Instant::now() < deadline,
                "the PostgreSQL server did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again after [`PgCluster::stop`].
    pub fn start_again(&self) {
        self.tell("start");
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the PostgreSQL server on port {} did not start within 60 s: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs SQL as the superuser through the Unix socket (`psql`), panicking on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("psql (Debian's postgresql-client)");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new, empty database; its URL (without password) is returned.
    pub fn new_database(&self) -> String {
        let n = {
            let mut m = self.made.lock().unwrap();
            *m += 1;
            *m
        };
        let name = format!("t{}_{n}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The URL of database `db` over TCP (no password in it).
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }
}

fn shell_words(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Puts `cfg` on database `url` of the test cluster (TLS to it off; its password in a
/// private file in `dir`), keeping everything else, peers included.
pub fn use_database(cfg: &mut synergia::config::Config, url: &str, dir: &Path) {
    let pw = dir.join(format!("db-password-{}", cfg.member));
    std::fs::write(&pw, PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    cfg.store.backend = synergia::config::StoreBackend::Postgres;
    cfg.store.url = Some(format!("{url}?sslmode=disable"));
    cfg.store.password_file = Some(pw);
    cfg.store.pool_size = 8;
}

/// Member `m` of the example federation moved onto database `url`: its config written
/// beside the others, as `<m>-postgres.toml`.
pub fn example_on_database(fed: &super::ExampleFederation, m: &str, url: &str) -> PathBuf {
    let mut cfg = synergia::config::Config::load(&fed.config_path(m)).unwrap();
    use_database(&mut cfg, url, fed.dir.path());
    let path = fed.dir.path().join(format!("config/{m}-postgres.toml"));
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    path
}

/// `synergia serve --config <config> --listen 127.0.0.1:<port>` for member `m` of the
/// example federation, its log beside the configs; returns once it answers.
pub fn serve_on(
    fed: &super::ExampleFederation,
    m: &str,
    config: &Path,
    port: u16,
) -> super::NodeProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synergia"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    super::NodeProcess::spawn_command(
        cmd,
        m,
        &format!("https://127.0.0.1:{port}"),
        &fed.ca_path(),
        &fed.dir.path().join(format!("{m}-{port}.log")),
    )
}
