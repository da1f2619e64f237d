//! The PostgreSQL server the stores are compared on: one named by `--postgres URL`
//! (its user must be allowed to create databases; the password comes from
//! `SYNERGIA_STORE_PASSWORD`), or a throwaway cluster the harness starts itself with
//! the settings docs/benchmarks.md names, stopped and removed when the harness ends.
//!
//! When neither can be had the harness fails and says why: the comparison is never
//! left out silently (`--no-postgres` leaves it out on purpose).

use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../tests/common/pg_bin.rs"]
mod pg_bin;
use pg_bin::{as_server_user, is_root};

/// The throwaway cluster's superuser and password (loopback only, removed at the end).
const USER: &str = "synergia";
const PASSWORD: &str = "bench-throwaway";

/// A server to make databases on.
pub struct Server {
    /// `postgresql://USER@HOST:PORT` (no database, no password).
    base: String,
    /// Query parameters every URL carries (`?sslmode=disable`), or empty.
    params: String,
    /// The password the node and `psql` use.
    password: String,
    /// What the report says the server was.
    pub description: String,
    /// The cluster this harness started, stopped when dropped.
    owned: Option<Cluster>,
}

struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    /// Removed after the server stops.
    _dir: tempfile::TempDir,
}

impl Server {
    /// The server `url` names (`postgresql://USER@HOST:PORT/DB?…`; its database is
    /// only used to connect for `CREATE DATABASE`).
    pub fn given(url: &str) -> Result<Server> {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("--postgres {url}: not a postgresql:// URL"))?;
        if scheme != "postgresql" && scheme != "postgres" {
            bail!("--postgres {url}: not a postgresql:// URL");
        }
        let (rest, params) = match rest.split_once('?') {
            Some((r, p)) => (r, format!("?{p}")),
            None => (rest, String::new()),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        {
            bail!("--postgres {url}: put the password in SYNERGIA_STORE_PASSWORD, not the URL");
        }
        let password = std::env::var("SYNERGIA_STORE_PASSWORD").unwrap_or_default();
        let mut s = Server {
            base: format!("postgresql://{authority}"),
            params,
            password,
            description: String::new(),
            owned: None,
        };
        let version = s.psql("postgres", "SHOW server_version").with_context(|| {
            format!("--postgres {url}: the server does not answer (password from SYNERGIA_STORE_PASSWORD)")
        })?;
        s.description = format!("PostgreSQL {version} at {authority} (given)");
        Ok(s)
    }

    /// Starts a throwaway cluster: `initdb` in a temporary directory, the server on a
    /// free loopback port, as `nobody` when the harness runs as root (PostgreSQL
    /// refuses root), `shared_buffers` 512 MB and `max_wal_size` 4 GB.
    pub fn throwaway() -> Result<Server> {
        let bin = pg_bin::bin_dir().map_err(|e| {
            anyhow::anyhow!(
                "{e}; or give a server with --postgres URL, or leave the PostgreSQL store \
                 out with --no-postgres"
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("synergia-bench-pg-")
            .tempdir()
            .context("a temporary directory for the PostgreSQL cluster")?;
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD)?;
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir.path())
                .status()
                .context("chown")?;
            if !st.success() {
                bail!("chown of {} to nobody failed", dir.path().display());
            }
        }
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["--username", USER, "--auth-local=trust"])
            .args(["--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .with_context(|| format!("running {}/initdb", bin.display()))?;
        if !out.status.success() {
            bail!(
                "PostgreSQL initdb failed, the stores cannot be compared: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c shared_buffers=512MB -c max_wal_size=4GB",
            dir.path().display()
        );
        let out = as_server_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}/pg_ctl", bin.display()))?;
        if !out.status.success() {
            bail!(
                "the PostgreSQL server did not start, the stores cannot be compared: {}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            );
        }
        let mut s = Server {
            base: format!("postgresql://{USER}@127.0.0.1:{port}"),
            params: "?sslmode=disable".into(),
            password: PASSWORD.into(),
            description: String::new(),
            owned: Some(Cluster {
                bin,
                data,
                _dir: dir,
            }),
        };
        let t = Instant::now();
        let version = loop {
            match s.psql("postgres", "SHOW server_version") {
                Ok(v) => break v,
                Err(e) if t.elapsed() > Duration::from_secs(60) => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        s.description = format!(
            "PostgreSQL {version}, a throwaway cluster on the same machine (shared_buffers 512 MB, max_wal_size 4 GB)"
        );
        Ok(s)
    }

    /// The URL of database `db` (no password).
    pub fn url(&self, db: &str) -> String {
        format!("{}/{db}{}", self.base, self.params)
    }

    /// The password to give the node (`SYNERGIA_STORE_PASSWORD`).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// An empty database called `db` (dropped first if a cut-short run left it).
    pub fn fresh_database(&self, db: &str) -> Result<()> {
        self.drop_database(db)?;
        self.psql("postgres", &format!("CREATE DATABASE {db}"))?;
        Ok(())
    }

    /// Drops database `db` if it exists.
    pub fn drop_database(&self, db: &str) -> Result<()> {
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        )?;
        Ok(())
    }

    /// Runs one statement on database `db`; its output, trimmed.
    fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
            .args(["-c", sql])
            .env("PGPASSWORD", &self.password)
            .stdin(Stdio::null())
            .output()
            .context("running psql (Debian's postgresql-client)")?;
        if !out.status.success() {
            bail!(
                "psql {sql:?} on {}: {}",
                self.url(db),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &self.owned {
            let _ = as_server_user(&c.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&c.data)
                .args(["-m", "fast", "-w", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
