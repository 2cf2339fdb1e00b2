//! Durable files: a file replaced atomically, its bytes and its rename
//! synced to disk, and exclusive lock files. The feeds, serve.json and the
//! outbox lock use them. Published files (feeds, pages) and the directories
//! made for them get the configured mode whatever the process's umask.

use std::fs::{self, File, OpenOptions, Permissions, TryLockError};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Replaces the file at `path` with `bytes` and makes the change durable:
/// the bytes go to a temporary file in the same directory, which is synced
/// and renamed over the old file, and the directory is synced, so a reader
/// sees the old file or the new one, never half of one, and a crash after
/// this returns keeps the new one.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_and_rename(path, bytes, Sync::Yes, None)?;
    sync_dir(directory_of(path))
}

/// Replaces the file at `path` with `bytes` as [`replace`] does, unless it
/// already holds exactly them; says whether it wrote. An unchanged file
/// keeps its modification time (and so the HTTP validators derived from
/// it). The directory is not synced: a caller replacing many files in it
/// syncs it once with [`sync_dir`]. The file has permissions `mode`
/// whatever the umask; an unchanged file with others is given them.
pub fn replace_if_changed(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    if holds(path, bytes, mode)? {
        return Ok(false);
    }
    write_and_rename(path, bytes, Sync::Yes, Some(mode)).map(|()| true)
}

/// [`replace_if_changed`] without waiting for the disk: the file is still
/// replaced atomically (a reader sees the old or the new one), but a crash
/// soon after may leave the old one, or on some file systems an empty one.
/// For what can be made again from the store at any time (the static
/// site's pages), where a full build of a hundred thousand files cannot
/// afford a flush each.
pub fn replace_if_changed_unsynced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    if holds(path, bytes, mode)? {
        return Ok(false);
    }
    write_and_rename(path, bytes, Sync::No, Some(mode)).map(|()| true)
}

/// Whether the file at `path` holds exactly `bytes` (false when there is
/// none); one that does is given permissions `mode` if it has others (a
/// feed written under umask 077 before `file_mode` existed), or counts as
/// not holding them when that fails (another user's file), so it is
/// written anew as ours.
fn holds(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    match fs::read(path) {
        Ok(existing) if existing == bytes => Ok(set_mode(path, mode).is_ok()),
        Ok(_) => Ok(false),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Gives the file or directory at `path` permissions `mode` unless it has
/// them already.
#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    if fs::metadata(path)?.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> io::Result<()> {
    Ok(())
}

/// Makes the directory `dir` and any missing parents, each made with
/// permissions `mode` whatever the umask; directories already there keep
/// theirs (they may be the operator's).
pub fn create_dirs(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, mode)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => set_mode(dir, mode),
        // Made meanwhile by another writer.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Whether a write waits for the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    Yes,
    No,
}

/// Writes `bytes` to a temporary file beside `path`, syncs it (unless
/// told not to), gives it permissions `mode` if one is given (set on the
/// open file, so the umask plays no part) and renames it over `path`; the
/// temporary file does not outlive a failure.
fn write_and_rename(path: &Path, bytes: &[u8], sync: Sync, mode: Option<u32>) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a file path has a name"))?
        .to_string_lossy();
    // A lock keeps other writers of the same kind out; the process id keeps
    // apart anything else that writes here.
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        #[cfg(unix)]
        if let Some(mode) = mode {
            file.set_permissions(Permissions::from_mode(mode))?;
        }
        #[cfg(not(unix))]
        let _ = mode;
        file.write_all(bytes)?;
        if sync == Sync::Yes {
            file.sync_all()?;
        }
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// The directory a file is in: `.` for a bare file name.
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes the renames in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// An exclusive lock on a file (created if missing), held while this is
/// alive and released when it is dropped, or when the process ends,
/// however it ends.
#[derive(Debug)]
pub struct LockFile {
    _file: File,
}

impl LockFile {
    /// Waits for the lock on `path`.
    pub fn acquire(path: &Path) -> io::Result<LockFile> {
        let file = open_lock_file(path)?;
        file.lock()?;
        Ok(LockFile { _file: file })
    }

    /// Takes the lock on `path` if nobody holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<LockFile>> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockFile { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => Err(error),
        }
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_bytes_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("en.atom");
        assert!(replace_if_changed(&path, b"one", 0o644).unwrap());
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        let first_inode = inode(&path);
        assert!(!replace_if_changed(&path, b"one", 0o644).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert_eq!(inode(&path), first_inode);
        assert!(replace_if_changed(&path, b"two", 0o644).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // Nothing but the feed is left behind.
        assert_eq!(entries(dir.path()), 1);
    }

    #[test]
    fn replace_always_writes_a_new_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.json");
        replace(&path, b"{}").unwrap();
        let first_inode = inode(&path);
        replace(&path, b"{}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        if cfg!(unix) {
            assert_ne!(inode(&path), first_inode);
        }
        assert_eq!(entries(dir.path()), 1);
    }

    #[test]
    fn a_failed_replace_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: the rename fails.
        let path = dir.path().join("serve.json");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        assert!(replace(&path, b"{}").is_err());
        assert_eq!(entries(dir.path()), 1);
    }

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(directory_of(Path::new("serve.json")), Path::new("."));
        assert_eq!(
            directory_of(Path::new("/run/serve.json")),
            Path::new("/run")
        );
    }

    /// How many entries `dir` holds.
    fn entries(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
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
        let path = dir.path().join(".lock");
        let held = LockFile::try_acquire(&path).unwrap();
        assert!(held.is_some());
        assert!(LockFile::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(LockFile::acquire(&path).is_ok());
        assert!(LockFile::try_acquire(&path).unwrap().is_some());
    }
}
