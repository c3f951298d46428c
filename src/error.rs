//! The crate's one error type. Every message names the problem and, where possible, what to do.
//! [`Error::code`] gives the stable code the JavaScript API exposes (`BAD_MODEL`, `STATE_MISMATCH`, ...).

/// Everything that can go wrong on a path a user can reach.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The bytes are not a well-formed container (zip, pickle, safetensors, state blob).
    #[error("{0}")]
    BadFile(String),
    /// A pickle asked for something a state dict never needs (a global, an opcode).
    #[error("refused pickle: {0} (only plain PyTorch state dicts are loaded; nothing in the file is executed)")]
    ForbiddenPickle(String),
    /// The tensors do not form an RWKV-7 x070 model (missing, unknown or mis-shaped tensors).
    #[error("not a usable RWKV-7 model: {0}")]
    BadModel(String),
    /// A recognised model variant that Gander does not implement.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// A bad argument: token id out of range, empty prompt, bad option value.
    #[error("{0}")]
    BadInput(String),
    /// A state blob that belongs to another model or another format version.
    #[error("state does not fit this model: {0}")]
    StateMismatch(String),
    /// No usable GPU adapter or device.
    #[error("{0}")]
    NoGpu(String),
    /// The GPU device was lost or failed mid-call.
    #[error("GPU device lost: {0}; the session state saved before this call can be loaded on the CPU")]
    DeviceLost(String),
}

impl Error {
    /// The stable code used by the JavaScript API and in tests.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "IO",
            Error::BadFile(_) | Error::ForbiddenPickle(_) | Error::BadModel(_) => "BAD_MODEL",
            Error::Unsupported(_) => "UNSUPPORTED",
            Error::BadInput(_) => "BAD_INPUT",
            Error::StateMismatch(_) => "STATE_MISMATCH",
            Error::NoGpu(_) => "NO_WEBGPU",
            Error::DeviceLost(_) => "DEVICE_LOST",
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
