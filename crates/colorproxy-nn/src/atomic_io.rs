//! Files written atomically and durably (unique temporary file, fsync, rename, fsync of the
//! folder), JSON read and written that way, and the fault-injection hook of the crash tests.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::NnError;

pub(crate) fn file_err(path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::File { path: path.to_owned(), msg: e.to_string() }
}

/// A unique temporary name beside `path` (process id and a counter: two processes or two writes
/// never share one).
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
}

/// The fault-injection hook of the crash tests: with `COLORPROXY_FAULT_AT=k` the process kills
/// itself (SIGKILL, no clean-up) at the k-th checkpoint file operation (1-based), counted over
/// the whole run.
pub(crate) fn fault_point() {
    static OPS: AtomicUsize = AtomicUsize::new(0);
    static AT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let at = *AT.get_or_init(|| std::env::var("COLORPROXY_FAULT_AT").ok().and_then(|v| v.parse().ok()));
    let n = OPS.fetch_add(1, Ordering::SeqCst) + 1;
    if at == Some(n) {
        // SAFETY: kill(2) on our own pid with a valid signal number.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), NnError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| file_err(dir, e))
}

/// Writes `bytes` to `path` and fsyncs it (no rename: for files inside a temporary folder).
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    let mut f = std::fs::File::create(path).map_err(|e| file_err(path, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| file_err(path, e))?;
    fault_point();
    Ok(())
}

/// Replaces `path` atomically and durably: unique temporary file, fsync, rename, fsync folder. A
/// failed write removes its temporary file (a full disk leaves nothing behind) and, when the disk
/// is full, says how much space the file needs.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let tmp = tmp_path(path);
    if let Err(e) = write_synced(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(with_space_hint(e, bytes.len() as u64));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_err(path, e));
    }
    fault_point();
    fsync_dir(dir)
}

const SPACE_HINT: &str = "the disk is full: this write needs";

/// Whether an error is a full disk or quota (ENOSPC, EDQUOT).
pub fn is_disk_full(e: &NnError) -> bool {
    let m = e.to_string();
    m.contains("os error 28") || m.contains("os error 122") || m.contains("No space left")
}

/// A full-disk error with the space the write needs: `needed` bytes, written as MB (once: the
/// innermost write that failed says it).
pub(crate) fn with_space_hint(e: NnError, needed: u64) -> NnError {
    if !is_disk_full(&e) {
        return e;
    }
    match e {
        NnError::File { path, msg } if !msg.contains(SPACE_HINT) => NnError::File {
            path,
            msg: format!(
                "{msg}; {SPACE_HINT} {:.1} MB free (nothing of it was left behind; free space or \
                 move --out, then rerun the same command)",
                needed as f64 / 1e6
            ),
        },
        other => other,
    }
}

/// Writes JSON atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NnError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| file_err(path, e))?;
    write_atomic(path, text.as_bytes())
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, NnError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| file_err(path, format!("invalid JSON: {e}")))
}
