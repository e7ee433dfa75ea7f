//! One error type for everything a user can get wrong: each message is one line
//! that names the file (or flag) and the problem.

use std::fmt;
use std::path::Path;

#[derive(Debug)]
pub struct Error {
    message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into() }
    }

    /// `"<path>: <problem>"`.
    pub fn file(path: &Path, problem: impl fmt::Display) -> Self {
        Error::new(format!("{}: {problem}", path.display()))
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// The outcome of printing a report to stdout: a reader that closed the pipe
/// early (`simdnet bench | head`) stops it quietly; any other failure to
/// print is an error.
pub fn printed(r: std::io::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::new(format!("cannot print: {e}"))),
    }
}
