//! Where the database is and how to reach it: the URL, the password and the CA, from
//! the config and the environment, checked before any connection is made.
//!
//! The password never comes from the URL: a config is copied, pasted and committed,
//! so it comes from `SYNERGIA_STORE_PASSWORD` or a private file. TLS is required unless
//! the URL says `sslmode=disable` or the database is reached over a Unix socket, and
//! when TLS is used the server's certificate is always verified against the CA (a
//! `sslmode` that falls back to plain text, `prefer` or `allow`, is refused: a network
//! attacker could choose the fallback).

use std::path::{Path, PathBuf};

/// Environment variable that overrides `store.url`.
pub const URL_ENV: &str = "SYNERGIA_STORE_URL";
/// Environment variable that gives the database password (over `store.password_file`).
pub const PASSWORD_ENV: &str = "SYNERGIA_STORE_PASSWORD";

/// Why the database settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The URL is not usable.
    #[error("{source_name}: {message}")]
    Url {
        /// Where it came from (`store.url` or the environment variable).
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// No URL at all.
    #[error(
        "store.url: the postgres backend needs the database URL (postgresql://USER@HOST:PORT/DB) in the config or in {URL_ENV}"
    )]
    NoUrl,
    /// The password file cannot be read (or may be read by others).
    #[error("store.password_file: {0}")]
    PasswordFile(#[source] crate::keys::KeyError),
    /// The password file is empty.
    #[error("store.password_file {0}: the file is empty")]
    EmptyPassword(String),
}

/// How TLS to the database is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbTls {
    /// TLS, with the server's certificate verified against the CA and the host name.
    Verified,
    /// No TLS: the URL says `sslmode=disable`, or names a Unix socket directory.
    Off,
}

/// Everything needed to connect.
#[derive(Clone)]
pub struct DbSettings {
    /// The URL, without the `sslmode` parameter (which [`DbSettings::tls`] replaces).
    pub url: String,
    /// The password, if one is given.
    pub password: Option<String>,
    /// CA certificates (PEM) the server's certificate must chain to.
    pub ca: PathBuf,
    /// TLS or not.
    pub tls: DbTls,
    /// Connections this process keeps open at most.
    pub pool_size: usize,
}

impl std::fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is never printed.
        f.debug_struct("DbSettings")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("ca", &self.ca)
            .field("tls", &self.tls)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// What the config says about the database; [`DbSettings::resolve`] adds the
/// environment.
#[derive(Debug, Clone, Default)]
pub struct DbConfig {
    /// `store.url`.
    pub url: Option<String>,
    /// `store.password_file`.
    pub password_file: Option<PathBuf>,
    /// `store.ca`, else `tls.ca`.
    pub ca: PathBuf,
    /// `store.pool_size`.
    pub pool_size: usize,
}

impl DbSettings {
    /// The settings from the config and the process environment.
    pub fn resolve(cfg: &DbConfig) -> Result<DbSettings, SettingsError> {
        DbSettings::resolve_with(cfg, |k| std::env::var(k).ok())
    }

    /// [`DbSettings::resolve`] with the environment given by `env`.
    pub fn resolve_with(
        cfg: &DbConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<DbSettings, SettingsError> {
        let (text, source_name) = match env(URL_ENV).filter(|s| !s.is_empty()) {
            Some(u) => (u, URL_ENV.to_string()),
            None => (
                cfg.url.clone().ok_or(SettingsError::NoUrl)?,
                "store.url".to_string(),
            ),
        };
        let (url, tls) = check_url(&text).map_err(|message| SettingsError::Url {
            source_name,
            message,
        })?;
        let password = match env(PASSWORD_ENV).filter(|s| !s.is_empty()) {
            Some(p) => Some(p),
            None => match &cfg.password_file {
                Some(path) => Some(read_password(path)?),
                None => None,
            },
        };
        Ok(DbSettings {
            url,
            password,
            ca: cfg.ca.clone(),
            tls,
            pool_size: cfg.pool_size.max(1),
        })
    }
}

fn read_password(path: &Path) -> Result<String, SettingsError> {
    let text = crate::keys::read_private(path).map_err(SettingsError::PasswordFile)?;
    // One line: a trailing newline from an editor or `echo` is not part of it.
    let pw = text.strip_suffix('\n').unwrap_or(&text);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        return Err(SettingsError::EmptyPassword(path.display().to_string()));
    }
    Ok(pw.to_string())
}

/// Checks a database URL as far as it can be checked without the database, and
/// answers it without `sslmode`, with the TLS it asks for: a `postgresql://` URL with
/// no password in it and an `sslmode` that cannot be downgraded (`disable`, `require`
/// or `verify-full`, the last two alike: the certificate is always verified).
pub fn check_url(text: &str) -> Result<(String, DbTls), String> {
    let mut url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "postgresql" | "postgres") {
        return Err(format!(
            "scheme {:?} is not postgresql:// (postgresql://USER@HOST:PORT/DB)",
            url.scheme()
        ));
    }
    if url.password().is_some() || url.query_pairs().any(|(k, _)| k == "password") {
        return Err(format!(
            "holds a password; give it in {PASSWORD_ENV} or store.password_file, never in the URL"
        ));
    }
    let mut tls = DbTls::Verified;
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in url.query_pairs() {
        match (&*k, &*v) {
            ("sslmode", "disable") => tls = DbTls::Off,
            ("sslmode", "require" | "verify-full") => tls = DbTls::Verified,
            ("sslmode", other) => {
                return Err(format!(
                    "sslmode={other} is not one of disable, require, verify-full (prefer and allow fall back to plain text, which a network attacker can force)"
                ));
            }
            ("host", h) if h.starts_with('/') => {
                tls = DbTls::Off;
                kept.push((k.to_string(), v.to_string()));
            }
            _ => kept.push((k.to_string(), v.to_string())),
        }
    }
    if url
        .host_str()
        .is_some_and(|h| h.starts_with("%2F") || h.starts_with("%2f"))
    {
        // A Unix socket directory given as the host.
        tls = DbTls::Off;
    }
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    Ok((url.to_string(), tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> DbConfig {
        DbConfig {
            url: Some(url.into()),
            password_file: None,
            ca: "ca.pem".into(),
            pool_size: 4,
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_wherever_it_comes_from() {
        for u in [
            "postgresql://u:secret@db:5432/x",
            "postgresql://u@db:5432/x?password=secret",
        ] {
            let e = DbSettings::resolve_with(&cfg(u), |_| None).unwrap_err();
            assert!(
                e.to_string().starts_with("store.url: holds a password"),
                "{e}"
            );
            let e = DbSettings::resolve_with(&cfg("postgresql://u@db/x"), |k| {
                (k == URL_ENV).then(|| u.to_string())
            })
            .unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("SYNERGIA_STORE_URL: holds a password"),
                "{e}"
            );
        }
    }

    #[test]
    fn tls_is_required_unless_disabled_or_over_a_unix_socket() {
        let tls = |u: &str| DbSettings::resolve_with(&cfg(u), |_| None).map(|s| (s.tls, s.url));
        assert_eq!(
            tls("postgresql://u@db:5432/x").unwrap(),
            (DbTls::Verified, "postgresql://u@db:5432/x".into())
        );
        assert_eq!(
            tls("postgresql://u@db:5432/x?sslmode=disable&application_name=n").unwrap(),
            (
                DbTls::Off,
                "postgresql://u@db:5432/x?application_name=n".into()
            )
        );
        assert_eq!(
            tls("postgresql://u@db/x?sslmode=verify-full").unwrap().0,
            DbTls::Verified
        );
        assert_eq!(
            tls("postgresql://u@%2Frun%2Fpostgresql/x").unwrap().0,
            DbTls::Off
        );
        assert_eq!(
            tls("postgresql:///x?host=/run/postgresql&user=u")
                .unwrap()
                .0,
            DbTls::Off
        );
        for downgradable in ["prefer", "allow", "nonsense"] {
            let e = tls(&format!("postgresql://u@db/x?sslmode={downgradable}")).unwrap_err();
            assert!(
                e.to_string().contains("is not one of disable, require"),
                "{e}"
            );
        }
        let e = tls("mysql://u@db/x").unwrap_err();
        assert!(e.to_string().contains("is not postgresql://"), "{e}");
    }

    #[test]
    fn the_environment_overrides_the_config() {
        let env = |k: &str| match k {
            URL_ENV => Some("postgresql://other@db2:6000/y?sslmode=disable".to_string()),
            PASSWORD_ENV => Some("from-env".to_string()),
            _ => None,
        };
        let s = DbSettings::resolve_with(&cfg("postgresql://u@db/x"), env).unwrap();
        assert_eq!(s.url, "postgresql://other@db2:6000/y");
        assert_eq!(s.password.as_deref(), Some("from-env"));
        assert!(
            !format!("{s:?}").contains("from-env"),
            "the password is never printed"
        );
        let e = DbSettings::resolve_with(&DbConfig::default(), |_| None).unwrap_err();
        assert!(matches!(e, SettingsError::NoUrl), "{e}");
    }

    #[test]
    fn the_password_file_must_be_private_and_not_empty() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut c = cfg("postgresql://u@db/x");
        c.password_file = Some(p.clone());
        let s = DbSettings::resolve_with(&c, |_| None).unwrap();
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = DbSettings::resolve_with(&c, |_| None).unwrap_err();
        assert!(e.to_string().starts_with("store.password_file:"), "{e}");
        std::fs::write(&p, "\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = DbSettings::resolve_with(&c, |_| None).unwrap_err();
        assert!(e.to_string().contains("the file is empty"), "{e}");
    }
}
