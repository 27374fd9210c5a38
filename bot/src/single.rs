//! One server per SQLite file. SQLite has one writer, and a server keeps state that only it
//! writes in memory (the lockdowns it caches) and releases, at start, the claims a previous run
//! of it left: a second server on the same file would take the first one's claimed work and
//! miss its lockdowns. So `serve` holds an exclusive advisory lock (`flock`) on
//! `<database>.lock` beside the file for as long as it runs; a second one finds it held and
//! stops before opening the database. The operating system drops the lock when the process
//! ends, however it ends, so a crashed server never blocks the next. CLI commands that read the
//! file (`audit verify`, `report`, `audit export`) take no lock and work beside a server.

use std::{
    fs::{File, OpenOptions, TryLockError},
    path::{Path, PathBuf},
};

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct ServerLock {
    _file: File,
    pub path: PathBuf,
}

/// The lock file of a SQLite database file.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    db.with_file_name(name)
}

/// Takes the lock of the database file `db`, or says which server-wide problem stops it.
pub fn lock(db: &Path) -> Result<ServerLock, String> {
    let path = lock_path(db);
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the directory for {}: {e}", db.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(ServerLock { _file: file, path }),
        Err(TryLockError::WouldBlock) => Err(format!(
            "another elevate server is already running on the SQLite database {} (it holds {}); \
             run one server per SQLite file, or use PostgreSQL for several replicas",
            db.display(),
            path.display()
        )),
        Err(TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub").join("elevate.db");
        let first = lock(&db).unwrap();
        assert_eq!(first.path, dir.path().join("sub").join("elevate.db.lock"));
        let e = lock(&db).unwrap_err();
        assert!(e.contains("another elevate server is already running") && e.contains("elevate.db.lock"), "{e}");
        assert!(lock(&dir.path().join("other.db")).is_ok(), "another file is another lock");
        drop(first);
        assert!(lock(&db).is_ok());
    }
}
