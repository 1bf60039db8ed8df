use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong reading, fetching or preparing a dataset. Every variant names the file or
/// address at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written (the cause follows in the error chain: not found, a
    /// FIFO or a device, over its size cap, ...).
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file the dataset needs is not there.
    #[error("{}: not found ({hint})", path.display())]
    Missing {
        /// The file looked for.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// A file's contents do not have the format they should.
    #[error("{}: {problem}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the sizes or values found and expected.
        problem: String,
    },
    /// A label outside the dataset's classes.
    #[error(
        "{}: record {record} has label {label}, but the dataset has {classes} classes",
        path.display()
    )]
    Label {
        /// The file.
        path: PathBuf,
        /// The record's index in the file.
        record: usize,
        /// The label found.
        label: u16,
        /// The number of classes.
        classes: usize,
    },
    /// A download failed.
    #[error("cannot download {url}: {reason}; {hint}")]
    Download {
        /// The address.
        url: String,
        /// What failed.
        reason: String,
        /// Where to put the files by hand.
        hint: String,
    },
    /// A downloaded file's checksum differs from the published one.
    #[error(
        "{}: MD5 {actual} differs from the published {expected} (a corrupt or truncated download; nothing was extracted)",
        path.display()
    )]
    Checksum {
        /// The downloaded file.
        path: PathBuf,
        /// The published MD5.
        expected: String,
        /// The MD5 of what arrived.
        actual: String,
    },
    /// An argument that makes no sense (an unknown dataset name, an empty index list, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Error {
        Error::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
