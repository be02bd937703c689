//! The error every control operation answers with.

use overlay_plugin_abi::PluginError;
use std::fmt;

/// An operation failed: the errno goes into NLMSG_ERROR, the message into
/// the extended ack, for a person to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    /// Positive errno.
    pub errno: i32,
    /// What went wrong and how to fix it.
    pub msg: String,
}

impl CtlError {
    /// An error with this errno and text.
    pub fn new(errno: i32, msg: impl Into<String>) -> Self {
        CtlError {
            errno,
            msg: msg.into(),
        }
    }
    /// `EINVAL`.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(libc::EINVAL, msg)
    }
    /// `ENOENT`.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(libc::ENOENT, msg)
    }
    /// `EEXIST`.
    pub fn exists(msg: impl Into<String>) -> Self {
        Self::new(libc::EEXIST, msg)
    }

    /// An I/O error with what was being done: the OS errno when the error
    /// has one, otherwise the errno its kind stands for.
    pub fn io(context: &str, e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let errno = e.raw_os_error().unwrap_or(match e.kind() {
            K::NotFound => libc::ENOENT,
            K::AlreadyExists => libc::EEXIST,
            K::InvalidInput | K::InvalidData => libc::EINVAL,
            K::PermissionDenied => libc::EPERM,
            K::AddrInUse => libc::EADDRINUSE,
            K::AddrNotAvailable => libc::EADDRNOTAVAIL,
            _ => libc::EIO,
        });
        Self::new(errno, format!("{context}: {e}"))
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for CtlError {}

impl From<PluginError> for CtlError {
    fn from(e: PluginError) -> Self {
        CtlError::new(e.errno, e.msg.to_string())
    }
}

/// A shorthand for control results.
pub type CtlResult<T> = Result<T, CtlError>;
