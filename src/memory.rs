//! Giving the system back the memory the daemon freed.
//!
//! glibc's allocator keeps what a thread freed in that thread's arena and
//! returns pages only from the top of each heap, so after a burst (the
//! start's feed and page checks, a store connection's page cache given
//! back by `PRAGMA shrink_memory`) an idle daemon stayed resident at
//! several times what it uses: 114 MB at 200,000 posts, 33 MB after one
//! `malloc_trim(0)` (BENCHMARKS.md, newsgroups). SQLite allocates through
//! the C allocator, so a Rust global allocator would not reach that memory.

/// How often the daemon gives freed memory back ([`give_back`] walks and
/// locks every arena in turn: a few milliseconds, not at every moment a
/// thread finds nothing to do).
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Returns the free pages of every arena to the system (glibc's
/// `malloc_trim(0)`); nothing elsewhere (musl and other systems' allocators
/// return large blocks themselves, and have no such call).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code, reason = "malloc_trim has no safe binding")]
pub fn give_back() {
    // SAFETY: malloc_trim takes no pointers and touches only glibc's own
    // free lists, under the locks every allocation takes.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// See the glibc version.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back() {}
