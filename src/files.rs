//! Input and output files must be regular files (or symlinks to one). A FIFO
//! blocks `open` until a writer comes, `/dev/zero` never ends, and replacing a
//! device node with a model file breaks the system: all are refused by type,
//! before anything is opened, read or written.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// What a path is when it should be a regular file: "is a directory", "is a
/// FIFO (named pipe)", …, or `None` for a regular file.
pub fn not_regular(meta: &fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "is a directory"
    } else if t.is_fifo() {
        "is a FIFO (named pipe)"
    } else if t.is_char_device() {
        "is a character device"
    } else if t.is_block_device() {
        "is a block device"
    } else if t.is_socket() {
        "is a socket"
    } else {
        "is not a regular file"
    })
}

/// The one-line problem for an I/O error, without the "(os error N)" noise
/// for the common cases.
pub fn io_problem(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Opens `path` for reading if it is a regular file (following symlinks), and
/// returns it with its length. `what` names the expected content in the
/// message ("an IDX file", "a model file").
///
/// The type is checked before opening (so a FIFO never blocks us), then again
/// on the open handle: a path swapped for a FIFO in between is opened with
/// `O_NONBLOCK`, which returns at once, and is refused by the second check.
pub fn open_regular(path: &Path, what: &str) -> Result<(File, u64), String> {
    let meta = fs::metadata(path).map_err(|e| io_problem(&e))?;
    if let Some(kind) = not_regular(&meta) {
        return Err(format!("{kind}, not {what}"));
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    // No effect on a regular file's reads; keeps a FIFO or a terminal from
    // blocking the open or becoming our controlling terminal.
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK | libc::O_NOCTTY);
    let file = options.open(path).map_err(|e| io_problem(&e))?;
    let meta = file.metadata().map_err(|e| io_problem(&e))?;
    if let Some(kind) = not_regular(&meta) {
        return Err(format!("{kind}, not {what}"));
    }
    Ok((file, meta.len()))
}

/// Refuses an output path that exists but is not a regular file (a device
/// node, a FIFO, a directory): an atomic write would replace it.
pub fn check_replaceable(path: &Path) -> Result<(), String> {
    match fs::metadata(path) {
        Ok(meta) => match not_regular(&meta) {
            Some(kind) => Err(format!("{kind} (only a regular file can be replaced)")),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_special_files_by_type() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_regular(dir.path(), "an IDX file").unwrap_err();
        assert_eq!(e, "is a directory, not an IDX file");
        let e = open_regular(Path::new("/dev/zero"), "a model file").unwrap_err();
        assert_eq!(e, "is a character device, not a model file");
        assert_eq!(open_regular(&dir.path().join("none"), "x").unwrap_err(), "no such file");
        assert!(check_replaceable(Path::new("/dev/null")).unwrap_err().contains("character device"));
        assert!(check_replaceable(dir.path()).unwrap_err().contains("directory"));
        let f = dir.path().join("f");
        assert!(check_replaceable(&f).is_ok(), "a missing file can be created");
        fs::write(&f, b"abc").unwrap();
        assert!(check_replaceable(&f).is_ok());
        let (_, len) = open_regular(&f, "x").unwrap();
        assert_eq!(len, 3);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: mkfifo unavailable");
            return;
        }
        // Opening a FIFO for reading without O_NONBLOCK would block forever.
        assert_eq!(open_regular(&fifo, "an IDX file").unwrap_err(), "is a FIFO (named pipe), not an IDX file");
        assert!(check_replaceable(&fifo).unwrap_err().contains("FIFO"));
    }
}
