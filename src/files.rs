//! Durable files: a file replaced atomically, its bytes and its rename
//! synced to disk, and exclusive lock files. The feeds, serve.json and the
//! outbox lock use them. Published files (feeds, pages) and the directories
//! made for them get the configured mode whatever the process's umask.
//!
//! No writer here follows a symbolic link at the name it writes, reads,
//! chmods or locks (each opens with `O_NOFOLLOW`): a link at a file's path
//! is replaced by the file (the rename replaces the link, not its target),
//! and its target is never read, written or chmodded. Directories on the
//! way are taken as they are: `site_dir` itself may be a link, and a
//! linked directory below it (`site_dir/posts`, say) is written into, but
//! the web side serves nothing through it (`web::files`).

use std::fs::{self, File, Metadata, OpenOptions, Permissions, TryLockError};
use std::io::{self, Read, Write};
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
    if holds(path, bytes, mode)? == Held::Exactly {
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
    match holds(path, bytes, mode)? {
        Held::Exactly => return Ok(false),
        Held::Nothing => create_whole(path, bytes, mode)?,
        Held::Otherwise => write_and_rename(path, bytes, Sync::No, Some(mode))?,
    }
    Ok(true)
}

/// What a path holds, against the bytes about to be written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// A regular file of exactly these bytes, with the mode asked for.
    Exactly,
    /// Something else: other bytes, a symbolic link (which the rename
    /// then replaces), not a regular file, or a file of another user.
    Otherwise,
    /// Nothing at all.
    Nothing,
}

/// What the file at `path` holds against `bytes`; one that holds them is
/// given permissions `mode` if it has others (a feed written under umask
/// 077 before `file_mode` existed), or counts as [`Held::Otherwise`] when
/// that fails (another user's file), so it is written anew as ours.
fn holds(path: &Path, bytes: &[u8], mode: u32) -> io::Result<Held> {
    let file = match open_no_follow(OpenOptions::new().read(true), path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Held::Nothing),
        Err(error) if is_link(&error) => return Ok(Held::Otherwise),
        Err(error) => return Err(error),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.len() != bytes.len() as u64 {
        return Ok(Held::Otherwise);
    }
    let mut existing = Vec::with_capacity(bytes.len());
    (&file)
        .take(bytes.len() as u64 + 1)
        .read_to_end(&mut existing)?;
    if existing != bytes {
        return Ok(Held::Otherwise);
    }
    Ok(match set_mode_of(&file, &metadata, mode) {
        Ok(()) => Held::Exactly,
        Err(_) => Held::Otherwise,
    })
}

/// Makes a new file at `path` holding `bytes`, with permissions `mode`,
/// appearing whole and unsynced: written as an unnamed file of its
/// directory (`O_TMPFILE`) and then linked at `path`. That makes one
/// directory entry, where a temporary name is added, renamed and removed
/// otherwise; in a directory of a hundred thousand pages, that work is
/// most of what a full build costs the kernel. Where the kernel or file
/// system cannot, `/proc` is not mounted, or a file appeared at `path`
/// meanwhile, as [`write_and_rename`] does.
#[cfg(target_os = "linux")]
fn create_whole(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use rustix::fs::{linkat, openat, AtFlags, Mode, OFlags, CWD};
    use std::os::fd::AsRawFd;

    let unnamed = openat(
        CWD,
        directory_of(path),
        OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    );
    let Ok(unnamed) = unnamed else {
        return write_and_rename(path, bytes, Sync::No, Some(mode));
    };
    let mut file = File::from(unnamed);
    // The mode given to open went through the umask.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    // Without CAP_DAC_READ_SEARCH an unnamed file is linked by its /proc
    // name. Whatever is at `path` by now, a symbolic link too, makes the
    // link fail (it is never followed), and the rename replaces it.
    let name = format!("/proc/self/fd/{}", file.as_raw_fd());
    match linkat(CWD, name.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) => Ok(()),
        Err(_) => write_and_rename(path, bytes, Sync::No, Some(mode)),
    }
}

#[cfg(not(target_os = "linux"))]
fn create_whole(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_and_rename(path, bytes, Sync::No, Some(mode))
}

/// Opens `path` with `options`, refusing a symbolic link at its last
/// component (`O_NOFOLLOW`: the error [`is_link`] tells), and without
/// waiting on a FIFO.
fn open_no_follow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    options.open(path)
}

/// Whether an open with `O_NOFOLLOW` failed because the name is a
/// symbolic link (`ELOOP`; FreeBSD says `EMLINK`).
fn is_link(error: &io::Error) -> bool {
    #[cfg(unix)]
    return matches!(error.raw_os_error(), Some(libc::ELOOP | libc::EMLINK));
    #[cfg(not(unix))]
    return false;
}

/// Gives the directory at `path` permissions `mode` unless it has them
/// already; a symbolic link there is refused, its target left alone.
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    let file = open_no_follow(OpenOptions::new().read(true), path)?;
    set_mode_of(&file, &file.metadata()?, mode)
}

/// Gives the open `file` permissions `mode` unless `metadata` (its own)
/// says it has them already.
#[cfg(unix)]
fn set_mode_of(file: &File, metadata: &Metadata, mode: u32) -> io::Result<()> {
    if metadata.permissions().mode() & 0o7777 != mode {
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_mode_of(_: &File, _: &Metadata, _: u32) -> io::Result<()> {
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
    let open = || {
        open_no_follow(
            OpenOptions::new().write(true).create(true).truncate(true),
            &temporary,
        )
    };
    let written = (|| {
        let mut file = match open() {
            // A link at the temporary name would have the bytes written
            // where it points: it goes (the link, not its target), and the
            // file is made in its place.
            Err(error) if is_link(&error) => {
                fs::remove_file(&temporary)?;
                open()?
            }
            opened => opened?,
        };
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

/// Opens (or makes) the lock file at `path`; a symbolic link there is
/// refused, so no file elsewhere is made or locked through it.
fn open_lock_file(path: &Path) -> io::Result<File> {
    open_no_follow(
        OpenOptions::new().write(true).create(true).truncate(false),
        path,
    )
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

    /// A page where there was none is made whole (through an unnamed file
    /// where the kernel can) with its mode, whatever the umask gave, and
    /// leaves no other entry; made again over itself, it is replaced.
    #[cfg(unix)]
    #[test]
    fn a_new_page_is_made_whole_with_its_mode_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for mode_asked in [0o640, 0o604] {
            let page = dir.path().join(format!("{mode_asked:o}.html"));
            assert_eq!(holds(&page, b"<p>", mode_asked).unwrap(), Held::Nothing);
            assert!(replace_if_changed_unsynced(&page, b"<p>", mode_asked).unwrap());
            assert_eq!(fs::read(&page).unwrap(), b"<p>");
            assert_eq!(mode(&page), mode_asked);
            assert_eq!(holds(&page, b"<p>", mode_asked).unwrap(), Held::Exactly);
            assert!(replace_if_changed_unsynced(&page, b"<p>two", mode_asked).unwrap());
            assert_eq!(fs::read(&page).unwrap(), b"<p>two");
        }
        assert_eq!(entries(dir.path()), 2);
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

    /// A symbolic link at a page's or feed's path, to a file outside
    /// holding the very bytes and mode 0o600: the writers replace the
    /// link with a file of their own and neither chmod the target (the
    /// old `holds` read through the link, found the bytes equal and
    /// chmodded the target to `mode`) nor write to it.
    #[cfg(unix)]
    #[test]
    fn a_link_at_a_file_s_path_is_replaced_and_its_target_never_chmodded() {
        type Write = fn(&Path, &[u8], u32) -> io::Result<bool>;
        let writers: [(&str, Write); 2] = [
            ("replace_if_changed", replace_if_changed),
            ("replace_if_changed_unsynced", replace_if_changed_unsynced),
        ];
        for (name, write) in writers {
            let dir = tempfile::tempdir().unwrap();
            let outside = dir.path().join("passwd");
            fs::write(&outside, b"one").unwrap();
            fs::set_permissions(&outside, Permissions::from_mode(0o600)).unwrap();
            let site = dir.path().join("site");
            fs::create_dir(&site).unwrap();
            let page = site.join("index.html");
            std::os::unix::fs::symlink(&outside, &page).unwrap();

            assert!(write(&page, b"one", 0o644).unwrap(), "{name} wrote");
            assert!(!fs::symlink_metadata(&page).unwrap().is_symlink(), "{name}");
            assert_eq!(fs::read(&page).unwrap(), b"one");
            assert_eq!(mode(&page), 0o644, "{name}");
            assert_eq!(mode(&outside), 0o600, "{name} chmodded the link's target");
            assert_eq!(fs::read(&outside).unwrap(), b"one");
            assert_eq!(entries(&site), 1, "{name}");
        }
    }

    /// A link to a directory at a file's path: the old `holds` read
    /// through it and failed (EISDIR); the link is replaced instead.
    #[cfg(unix)]
    #[test]
    fn a_link_to_a_directory_at_a_file_s_path_is_replaced_not_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let feed = dir.path().join("en.atom");
        std::os::unix::fs::symlink(&elsewhere, &feed).unwrap();
        assert!(replace_if_changed(&feed, b"<feed/>", 0o644).unwrap());
        assert_eq!(fs::read(&feed).unwrap(), b"<feed/>");
        assert_eq!(entries(&elsewhere), 0);
    }

    /// A link at the temporary name a write goes through: the bytes would
    /// have gone where it points (truncating it), and the rename would
    /// have put the link itself at the file's path.
    #[cfg(unix)]
    #[test]
    fn a_link_at_the_temporary_name_is_removed_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("tidings.sqlite3");
        fs::write(&outside, b"the store").unwrap();
        let feeds = dir.path().join("feeds");
        fs::create_dir(&feeds).unwrap();
        let path = feeds.join("en.atom");
        let temporary = feeds.join(format!(".en.atom.{}.tmp", std::process::id()));
        for write in [
            |path: &Path| replace(path, b"<feed/>"),
            |path: &Path| replace_if_changed(path, b"<feed/>", 0o644).map(drop),
        ] {
            let _ = fs::remove_file(&path);
            std::os::unix::fs::symlink(&outside, &temporary).unwrap();
            write(&path).unwrap();
            assert_eq!(fs::read(&outside).unwrap(), b"the store");
            assert!(!fs::symlink_metadata(&path).unwrap().is_symlink());
            assert_eq!(fs::read(&path).unwrap(), b"<feed/>");
            assert_eq!(entries(&feeds), 1);
        }
    }

    /// `set_mode` (given to the directories `create_dirs` makes) refuses a
    /// link instead of chmodding its target.
    #[cfg(unix)]
    #[test]
    fn set_mode_never_chmods_the_target_of_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("private");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("posts");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(set_mode(&link, 0o755).is_err());
        assert_eq!(mode(&target), 0o700);
        // A directory of its own is given the mode.
        set_mode(&target, 0o750).unwrap();
        assert_eq!(mode(&target), 0o750);
    }

    /// A lock file's path that is a link (dangling here) is refused: the
    /// old open made the file it pointed to.
    #[cfg(unix)]
    #[test]
    fn a_lock_file_that_is_a_link_is_refused_and_nothing_is_made_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("made-through-the-link");
        let path = dir.path().join(".lock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(LockFile::try_acquire(&path).is_err());
        assert!(LockFile::acquire(&path).is_err());
        assert!(!target.exists());
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
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
