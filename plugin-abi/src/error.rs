//! The one error type that crosses the plugin boundary.

use abi_stable::{std_types::RString, StableAbi};
use std::fmt;

/// An error returned by a plugin call: an errno the daemon passes on to the
/// client, and a message a person can act on.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    /// A positive errno value (`libc::EINVAL`, ...).
    pub errno: i32,
    /// What went wrong and, where possible, how to fix it.
    pub msg: RString,
    /// Set when the call panicked inside the plugin; the daemon counts these
    /// and degrades the device.
    pub panicked: bool,
}

impl PluginError {
    /// An error with the given errno and message.
    pub fn new(errno: i32, msg: impl Into<String>) -> Self {
        PluginError {
            errno,
            msg: RString::from(msg.into()),
            panicked: false,
        }
    }

    /// `EINVAL`: a value the plugin does not accept.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(libc::EINVAL, msg)
    }

    /// `ENOENT`: no such property (or object).
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(libc::ENOENT, msg)
    }

    /// `ENOTSUP`: the plugin does not do this.
    pub fn not_supported(msg: impl Into<String>) -> Self {
        Self::new(libc::ENOTSUP, msg)
    }

    /// The error a caught panic becomes.
    pub fn from_panic(call: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        let what = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        PluginError {
            errno: libc::EIO,
            msg: RString::from(format!("plugin panicked in {call}: {what}")),
            panicked: true,
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for PluginError {}
