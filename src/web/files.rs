//! Files the daemon serves as they are on disk: feeds and the archive's
//! pages. A poll must cost almost nothing: the ETag and Last-Modified come
//! from the file's size and mtime (the writers leave unchanged files
//! alone, so both stay put), a conditional GET that matches is answered
//! 304 without reading the file, and bodies past [`READ_WHOLE`] are
//! streamed, never read whole into memory.
//!
//! No file is served through a symbolic link below its directory
//! ([`open_beneath`]): a link in `site_dir` or `feeds_dir`, to a file or a
//! directory, is a missing file, and its target is never opened. The
//! directory itself may be a link (the operator's choice).
//!
//! Compression comes after (tower-http); [`etag_per_encoding`] then makes
//! the ETag of a compressed body differ from the identity one, as RFC 9110
//! section 8.8.3 asks of strong validators.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// How long clients may reuse a file without asking again.
pub const MAX_AGE: &str = "public, max-age=60";

/// Files up to this size are read whole; larger ones are streamed, so
/// memory stays bounded by connections times this, whatever is posted.
const READ_WHOLE: u64 = 256 * 1024;

/// The suffixes [`etag_per_encoding`] gives compressed bodies' ETags.
const ENCODING_SUFFIXES: [&str; 2] = ["-gzip", "-br"];

/// Answers a GET of the file `relative` under the directory `root` as
/// `media_type`: 404 when there is no such file or it is reached through a
/// symbolic link, 304 when the client's copy is current, else the file,
/// streamed past [`READ_WHOLE`].
pub async fn serve(
    root: &Path,
    relative: &Path,
    media_type: &'static str,
    request: &HeaderMap,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Option<Response> {
    // An open and an fstat are a few microseconds on a local disk; they
    // run here rather than on the blocking pool, which would cost more
    // than it saves. The validators and the body come from the one open
    // file, so they agree even when a writer renames a new one over it.
    let file = open_beneath(root, relative).ok()?;
    let metadata = file.metadata().ok().filter(|m| m.is_file())?;
    let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{:x}\"", metadata.len(), nanos);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("ascii etag"),
    );
    headers.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&httpdate::fmt_http_date(modified)).expect("ascii date"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(MAX_AGE));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
    if not_modified(request, &etag, modified) {
        return Some((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    let body = if metadata.len() <= READ_WHOLE {
        // A page or a small feed: read at once, here, like the open (a few
        // microseconds from the page cache), rather than through the
        // blocking pool a chunk at a time.
        // `take`: no second fstat for a size hint, no read past the end.
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        (&file).take(metadata.len()).read_to_end(&mut bytes).ok()?;
        Body::from(bytes)
    } else {
        let file = tokio::fs::File::from_std(file);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(metadata.len()));
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024))
    };
    Some((StatusCode::OK, headers, body).into_response())
}

/// How a served file is opened: for reading, never as the process's
/// terminal, and without waiting (a FIFO opens at once, and is then no
/// regular file: 404).
#[cfg(any(target_os = "linux", target_os = "android"))]
const READ: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::NOFOLLOW)
    .union(rustix::fs::OFlags::NONBLOCK)
    .union(rustix::fs::OFlags::NOCTTY)
    .union(rustix::fs::OFlags::CLOEXEC);

/// Opens the file `relative` under `root` for reading, following no
/// symbolic link from `root` down: a link at the file's own name or at
/// any directory between is refused (`ELOOP`), so nothing a link points
/// to is ever opened. `root` itself is resolved as it is given, links and
/// all. `relative` must be made of plain names (no `..`, no root): the
/// callers' paths are ([`crate::site::paths::file_of`], the feed route).
///
/// Linux's `openat2` with `RESOLVE_NO_SYMLINKS` does it in one system
/// call where the root's path has no link (the `stat` this replaced was
/// one; the open file's `fstat` and `close` are the two added to a 304).
/// Under a root that is a link or lies behind one, that call fails, and
/// the root is opened and the file resolved beneath it
/// (`RESOLVE_BENEATH`): three calls more. Where `openat2` is missing
/// (Linux before 5.6, or a seccomp filter without it) each directory is
/// opened in turn with `O_NOFOLLOW` ([`open_step_by_step`]). Comparing
/// canonical paths instead would cost a `readlink` or `lstat` per path
/// component on every request, and leave a window between the check and
/// the open in which a link could be put in place.
pub(super) fn open_beneath(root: &Path, relative: &Path) -> io::Result<File> {
    plain_names(relative)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{openat, openat2, Mode, OFlags, ResolveFlags, CWD};
        use rustix::io::Errno;
        let no_links = ResolveFlags::NO_SYMLINKS;
        let opened = match openat2(CWD, root.join(relative), READ, Mode::empty(), no_links) {
            // A link on the way: in the root's own path (the operator's to
            // make), or below it (refused again here).
            Err(Errno::LOOP) => {
                let dir = openat(
                    CWD,
                    root,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                openat2(
                    &dir,
                    relative,
                    READ,
                    Mode::empty(),
                    no_links | ResolveFlags::BENEATH,
                )
            }
            Err(Errno::NOSYS | Errno::PERM) => return open_step_by_step(root, relative),
            opened => opened,
        };
        Ok(File::from(opened?))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    open_step_by_step(root, relative)
}

/// Refuses (as missing) a path that is empty or holds anything but plain
/// names: `..`, `.` or a root would lead elsewhere than below the root.
fn plain_names(relative: &Path) -> io::Result<()> {
    let plain = relative
        .components()
        .all(|part| matches!(part, Component::Normal(_)));
    match plain && !relative.as_os_str().is_empty() {
        true => Ok(()),
        false => Err(io::ErrorKind::NotFound.into()),
    }
}

/// [`open_beneath`] without `openat2`: the root, then each directory
/// below it and the file, each opened in the one before with
/// `O_NOFOLLOW`, so a link anywhere below the root fails to open.
pub(super) fn open_step_by_step(root: &Path, relative: &Path) -> io::Result<File> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    plain_names(relative)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let (directory, file) = (OFlags::PATH, READ);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let (directory, file) = (
        OFlags::RDONLY,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
    );
    let directory = directory | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = openat(CWD, root, directory, Mode::empty())?;
    let mut parts = relative.components().peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return Ok(File::from(openat(
                &dir,
                part.as_os_str(),
                file,
                Mode::empty(),
            )?));
        }
        dir = openat(
            &dir,
            part.as_os_str(),
            directory | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
    }
    Err(io::ErrorKind::NotFound.into())
}

/// RFC 9110 13.2.2: If-None-Match decides when present (weakly: a tag
/// given back with its encoding's suffix matches); else
/// If-Modified-Since, to the second.
pub fn not_modified(request: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(tags) = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return tags
            .split(',')
            .map(|tag| without_encoding(tag.trim().trim_start_matches("W/")))
            .any(|tag| tag == "*" || tag == etag);
    }
    let Some(since) = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    let seconds = |time: SystemTime| time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    seconds(modified) <= seconds(since)
}

/// `"tag-gzip"` -> `"tag"`.
fn without_encoding(tag: &str) -> String {
    let inner = tag.trim_matches('"');
    let inner = ENCODING_SUFFIXES
        .iter()
        .find_map(|suffix| inner.strip_suffix(suffix))
        .unwrap_or(inner);
    format!("\"{inner}\"")
}

/// Gives the ETag of a compressed answer its encoding's suffix.
pub async fn etag_per_encoding(mut response: Response) -> Response {
    let encoding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .and_then(|encoding| match encoding {
            "gzip" => Some("-gzip"),
            "br" => Some("-br"),
            _ => None,
        });
    let Some(suffix) = encoding else {
        return response;
    };
    let tagged = response
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(|etag| etag.strip_suffix('"'))
        .map(|etag| format!("{etag}{suffix}\""));
    if let Some(value) = tagged.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
