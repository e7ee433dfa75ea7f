//! Atomic file writes: a temporary file in the target's directory, synced, then
//! renamed over the target. A crash or kill at any point leaves either the old
//! file or the new one, never a mix.
//!
//! The temporary file is `.<name>.<pid>.<n>.tmp` beside the target. A process
//! killed mid-write (SIGKILL, power loss, an abort) leaves it behind; the next
//! write of the same target removes the temporary files of processes that no
//! longer run.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable naming a fault to inject in [`write_atomic`], for
/// tests: `abort-mid-write` writes half of the bytes to the temporary file and
/// aborts the process.
pub const FAULT_ENV: &str = "SIMDNET_FAULT";

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned())
}

/// A fresh temporary file for `path`: `.<name>.<pid>.<n>.tmp` beside it, `n`
/// counting this process's calls, so two threads writing the same target
/// (e.g. two tests decompressing one data set) never share a temporary file.
pub fn temp_path(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_file_name(format!(".{}.{}.{n}.tmp", file_name(path), std::process::id()))
}

/// Removes `.<name>.<pid>[.<n>].tmp` files beside `path` left by processes that are
/// gone. Liveness is read from /proc; without it (not Linux), nothing is
/// removed. Best effort: errors are ignored.
pub fn remove_stale_temps(path: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!(".{}.", file_name(path));
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|r| r.strip_suffix(".tmp"))
            .and_then(|r| r.split('.').next())
        else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || pid == std::process::id().to_string() {
            continue;
        }
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` atomically. An existing `path` that is not a
/// regular file (a device node, a FIFO) is refused: the rename would replace
/// it with a regular file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::check_replaceable(path).map_err(|p| Error::file(path, format!("cannot write: {p}")))?;
    remove_stale_temps(path);
    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        if std::env::var(FAULT_ENV).is_ok_and(|v| v == "abort-mid-write") {
            file.write_all(&bytes[..bytes.len() / 2])?;
            file.sync_all()?;
            std::process::abort();
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::file(path, format!("cannot write: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn clears_temps_of_dead_processes_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.bin");
        // A pid above the kernel's maximum (4194304) never runs.
        let dead = dir.path().join(".m.bin.99999999.tmp");
        let alive = dir.path().join(format!(".m.bin.{}.tmp", std::process::id()));
        let other = dir.path().join(".n.bin.99999999.tmp");
        for f in [&dead, &alive, &other] {
            fs::write(f, b"half").unwrap();
        }
        remove_stale_temps(&p);
        assert_eq!(dead.exists(), !Path::new("/proc/self").exists());
        assert!(alive.exists() && other.exists());
    }

    #[test]
    fn never_replaces_a_special_file() {
        // /dev/null as anyone: as root the rename would have succeeded.
        let e = write_atomic(Path::new("/dev/null"), b"model").unwrap_err().to_string();
        assert_eq!(e, "/dev/null: cannot write: is a character device (only a regular file can be replaced)");
        assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    }

    #[test]
    fn a_failed_write_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: refused (the rename would fail).
        let p = dir.path().join("d");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("x"), b"x").unwrap();
        let e = write_atomic(&p, b"data").unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()) && e.contains("cannot write"), "{e}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
