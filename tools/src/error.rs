//! The CLI's errors and their one-line rendering.

use nlproto::client::Error as ClientError;
use nlproto::errno;
use std::fmt;
use std::io;

/// Why a command failed. Displayed as one line without the program name:
/// `show ov0: no device named ov0 (ENOENT)`.
#[derive(Debug)]
pub enum Error {
    /// Something wrong with the arguments, found before anything was sent.
    Local(String),
    /// A request to the daemon failed.
    Daemon {
        /// What was being done (`set mtu on ov0`).
        what: String,
        /// The failure.
        source: ClientError,
    },
}

impl Error {
    /// A local error with this text.
    pub fn local(text: impl Into<String>) -> Error {
        Error::Local(text.into())
    }

    /// A closure that wraps a client error with what was being done, for
    /// `map_err`.
    pub fn daemon(what: impl Into<String>) -> impl FnOnce(ClientError) -> Error {
        let what = what.into();
        move |source| Error::Daemon { what, source }
    }
}

/// An I/O error as `description (ENAME)`, the form used for daemon errors
/// too, rather than Rust's `... (os error N)`.
pub fn io_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{} ({})", errno::describe(n), errno::label(n)),
        None => e.to_string(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Local(text) => f.write_str(text),
            Error::Daemon { what, source } => match source {
                ClientError::Netlink { errno, message, .. } => {
                    let text = match message.as_deref() {
                        Some(m) if !m.is_empty() => m.to_string(),
                        _ => errno::describe(*errno),
                    };
                    write!(f, "{what}: {text} ({})", errno::label(*errno))
                }
                // The connection is made on the first request; naming the
                // socket says more than naming that request.
                ClientError::Connect { path, source } => {
                    write!(
                        f,
                        "cannot connect to {}: {}",
                        path.display(),
                        io_text(source)
                    )
                }
                ClientError::Io(e) => write!(f, "{what}: {}", io_text(e)),
                other => write!(f, "{what}: {other}"),
            },
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(source: ClientError) -> String {
        Error::daemon("set mtu on ov0")(source).to_string()
    }

    #[test]
    fn netlink_with_text() {
        let e = daemon(ClientError::Netlink {
            errno: libc::EINVAL,
            message: Some("mtu 10 outside 576-8900".into()),
            offset: None,
        });
        assert_eq!(e, "set mtu on ov0: mtu 10 outside 576-8900 (EINVAL)");
    }

    #[test]
    fn netlink_without_text() {
        for message in [None, Some(String::new())] {
            let e = daemon(ClientError::Netlink {
                errno: libc::EPERM,
                message,
                offset: Some(20),
            });
            assert_eq!(e, "set mtu on ov0: operation not permitted (EPERM)");
        }
    }

    #[test]
    fn connect() {
        let e = daemon(ClientError::Connect {
            path: "/nowhere.sock".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        });
        assert_eq!(
            e,
            "cannot connect to /nowhere.sock: no such file or directory (ENOENT)"
        );
    }

    #[test]
    fn io_and_others() {
        let e = daemon(ClientError::Io(io::Error::from_raw_os_error(libc::EPIPE)));
        assert_eq!(e, "set mtu on ov0: broken pipe (EPIPE)");
        let e = daemon(ClientError::Timeout);
        assert!(e.starts_with("set mtu on ov0: no answer"), "{e}");
        assert_eq!(Error::local("bad").to_string(), "bad");
    }
}
