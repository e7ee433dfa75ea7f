//! Atomic file writes: a temporary file in the target's directory, synced, then
//! renamed over the target. A crash or kill at any point leaves either the old
//! file or the new one, never a mix.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable naming a fault to inject in [`write_atomic`], for
/// tests: `abort-mid-write` writes half of the bytes to the temporary file and
/// aborts the process.
pub const FAULT_ENV: &str = "SIMDNET_FAULT";

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
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
