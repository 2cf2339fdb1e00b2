//! Feed files on disk: replaced atomically and only when their bytes
//! change, by one regeneration at a time.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::Path;

/// Replaces the file at `path` with `bytes` unless it already holds exactly
/// them; says whether it wrote. The bytes go to a temporary file in the same
/// directory, are synced, and the file is renamed over the old one, so a
/// reader sees the old feed or the new one, never half of one; an unchanged
/// feed keeps its modification time (and so the HTTP validators derived
/// from it). The directory itself is synced by [`sync_dir`].
pub fn replace_if_changed(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    match fs::read(path) {
        Ok(existing) if existing == bytes => return Ok(false),
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a feed path has a name"))?
        .to_string_lossy();
    // The lock keeps other regenerations out; the process id keeps apart
    // anything else that writes here.
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written.map(|()| true)
}

/// Makes the renames in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The lock that lets one regeneration at a time write a feeds directory:
/// an exclusive lock on `.lock` in it, released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Waits for the lock on `dir`.
    pub fn acquire(dir: &Path) -> io::Result<Lock> {
        let file = open_lock_file(dir)?;
        file.lock()?;
        Ok(Lock { _file: file })
    }

    /// Takes the lock on `dir` if nobody holds it.
    pub fn try_acquire(dir: &Path) -> io::Result<Option<Lock>> {
        let file = open_lock_file(dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => Err(error),
        }
    }
}

fn open_lock_file(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_bytes_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("en.atom");
        assert!(replace_if_changed(&path, b"one").unwrap());
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        let first_inode = inode(&path);
        assert!(!replace_if_changed(&path, b"one").unwrap());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert_eq!(inode(&path), first_inode);
        assert!(replace_if_changed(&path, b"two").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // Nothing but the feed is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).unwrap().ino()
    }

    #[cfg(not(unix))]
    fn inode(_: &Path) -> u64 {
        0
    }

    #[test]
    fn one_holder_of_the_lock_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = Lock::try_acquire(dir.path()).unwrap();
        assert!(held.is_some());
        assert!(Lock::try_acquire(dir.path()).unwrap().is_none());
        drop(held);
        assert!(Lock::try_acquire(dir.path()).unwrap().is_some());
    }
}
