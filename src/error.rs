//! The one error type of incq. Every message names the op, file, flag or shader it concerns and
//! what was expected, so that a user can act on it without reading the source.

use std::path::PathBuf;

/// Everything that can go wrong in incq.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter matched the request. The message says how to get a software driver.
    #[error("no GPU adapter found{detail}. On a machine without a GPU, install a software Vulkan driver: `sudo apt-get install mesa-vulkan-drivers` (Mesa lavapipe)")]
    NoAdapter {
        /// What was asked for (backend, adapter substring), or empty.
        detail: String,
    },
    /// The adapter was found but the device could not be created.
    #[error("could not open the GPU device on adapter '{adapter}': {msg}")]
    Device { adapter: String, msg: String },
    /// A WGSL module or compute pipeline failed to build.
    #[error("shader '{shader}' entry '{entry}' failed to build: {msg}")]
    Shader {
        shader: &'static str,
        entry: String,
        msg: String,
    },
    /// A GPU operation reported an error (out of memory, validation).
    #[error("GPU error in {op}: {msg}")]
    Gpu { op: String, msg: String },
    /// A buffer would exceed the device's limits.
    #[error("{what} needs {bytes} bytes, but the device allows at most {limit} bytes per {kind}")]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        kind: &'static str,
    },
    /// Shapes or arguments of an op do not agree.
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// A command-line flag or config value is invalid.
    #[error("invalid value for {flag}: {msg}")]
    BadArg { flag: String, msg: String },
    /// A file could not be read or written.
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    /// Reading a result back from the GPU failed.
    #[error("readback of {what} failed: {msg}")]
    Readback { what: String, msg: String },
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds a [`Error::File`] from an I/O error.
    pub fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        Error::File {
            path: path.into(),
            msg: e.to_string(),
        }
    }
}
