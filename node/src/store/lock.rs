//! One process per data directory, and nobody else's to read.
//!
//! Two processes writing one evidence log would interleave records and corrupt it, and
//! a `rebuild` under a running node deletes the index that node is writing. Every
//! opening of a store (`serve`, `rebuild`, the store commands) first takes an exclusive
//! lock on `<data_dir>/lock` and writes its process id there; a second one is refused
//! at once, naming the process that holds it. The operating system drops the lock when
//! the process ends, however it ends, so a crash never leaves a stale lock behind.

use super::StoreError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

/// Makes `dir` (and missing parents) readable by this user only (0700): it holds every
/// envelope, red ones included. Checked at every open: a directory others may read
/// (made by hand, a volume mounted 0755) is closed to them, with a warning, and refused
/// when that fails.
pub fn private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let io = |source| StoreError::Io {
        path: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700)) {
        Ok(()) => {
            tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "the data directory could be read by other users; it is now closed to them (0700)");
            Ok(())
        }
        Err(_) => Err(StoreError::OpenToOthers {
            dir: dir.display().to_string(),
            mode,
        }),
    }
}

/// The lock on a data directory, held while this value lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist) or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join("lock");
        let io = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io)?;
                file.rewind().map_err(io)?;
                write!(file, "{}", std::process::id()).map_err(io)?;
                Ok(DirLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(StoreError::InUse {
                    dir: dir.display().to_string(),
                    pid: holder.trim().parse().ok(),
                })
            }
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}
