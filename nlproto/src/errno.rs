//! Names and descriptions of the errno values the protocol uses.

/// `(value, name, description)` for the errno values a client is likely to
/// see. Linux numbering (the protocol runs on Linux).
const TABLE: &[(i32, &str, &str)] = &[
    (libc::EPERM, "EPERM", "operation not permitted"),
    (libc::ENOENT, "ENOENT", "no such file or directory"),
    (libc::ESRCH, "ESRCH", "no such process"),
    (libc::EINTR, "EINTR", "interrupted system call"),
    (libc::EIO, "EIO", "input/output error"),
    (libc::ENXIO, "ENXIO", "no such device or address"),
    (libc::E2BIG, "E2BIG", "argument list too long"),
    (libc::EBADF, "EBADF", "bad file descriptor"),
    (libc::EAGAIN, "EAGAIN", "resource temporarily unavailable"),
    (libc::ENOMEM, "ENOMEM", "cannot allocate memory"),
    (libc::EACCES, "EACCES", "permission denied"),
    (libc::EFAULT, "EFAULT", "bad address"),
    (libc::EBUSY, "EBUSY", "device or resource busy"),
    (libc::EEXIST, "EEXIST", "file exists"),
    (libc::ENODEV, "ENODEV", "no such device"),
    (libc::ENOTDIR, "ENOTDIR", "not a directory"),
    (libc::EINVAL, "EINVAL", "invalid argument"),
    (libc::ENFILE, "ENFILE", "too many open files in system"),
    (libc::EMFILE, "EMFILE", "too many open files"),
    (libc::ENOSPC, "ENOSPC", "no space left on device"),
    (libc::EPIPE, "EPIPE", "broken pipe"),
    (libc::ERANGE, "ERANGE", "numerical result out of range"),
    (libc::ENOSYS, "ENOSYS", "function not implemented"),
    (libc::ENOTEMPTY, "ENOTEMPTY", "directory not empty"),
    (libc::ENODATA, "ENODATA", "no data available"),
    (libc::ETIME, "ETIME", "timer expired"),
    (libc::EPROTO, "EPROTO", "protocol error"),
    (libc::EBADMSG, "EBADMSG", "bad message"),
    (
        libc::EOVERFLOW,
        "EOVERFLOW",
        "value too large for defined data type",
    ),
    (libc::EMSGSIZE, "EMSGSIZE", "message too long"),
    (
        libc::EPROTONOSUPPORT,
        "EPROTONOSUPPORT",
        "protocol not supported",
    ),
    (libc::EOPNOTSUPP, "EOPNOTSUPP", "operation not supported"),
    (
        libc::EAFNOSUPPORT,
        "EAFNOSUPPORT",
        "address family not supported by protocol",
    ),
    (libc::EADDRINUSE, "EADDRINUSE", "address already in use"),
    (
        libc::EADDRNOTAVAIL,
        "EADDRNOTAVAIL",
        "cannot assign requested address",
    ),
    (libc::ENETDOWN, "ENETDOWN", "network is down"),
    (libc::ENETUNREACH, "ENETUNREACH", "network is unreachable"),
    (
        libc::ECONNABORTED,
        "ECONNABORTED",
        "software caused connection abort",
    ),
    (libc::ECONNRESET, "ECONNRESET", "connection reset by peer"),
    (libc::ENOBUFS, "ENOBUFS", "no buffer space available"),
    (
        libc::ENOTCONN,
        "ENOTCONN",
        "transport endpoint is not connected",
    ),
    (libc::ETIMEDOUT, "ETIMEDOUT", "connection timed out"),
    (libc::ECONNREFUSED, "ECONNREFUSED", "connection refused"),
    (libc::EHOSTUNREACH, "EHOSTUNREACH", "no route to host"),
    (libc::EALREADY, "EALREADY", "operation already in progress"),
    (
        libc::EINPROGRESS,
        "EINPROGRESS",
        "operation now in progress",
    ),
    (libc::ECANCELED, "ECANCELED", "operation canceled"),
];

/// The symbolic name of a positive errno (`ENOENT`). On Linux `ENOTSUP` and
/// `EOPNOTSUPP` are the same value; it is named `EOPNOTSUPP`.
pub fn name(errno: i32) -> Option<&'static str> {
    TABLE.iter().find(|e| e.0 == errno).map(|e| e.1)
}

/// A short description of a positive errno, `errno N` when unknown.
pub fn describe(errno: i32) -> String {
    match TABLE.iter().find(|e| e.0 == errno) {
        Some(e) => e.2.to_string(),
        None => format!("errno {errno}"),
    }
}

/// `ENOENT`, or `errno N` when the value has no known name.
pub fn label(errno: i32) -> String {
    match name(errno) {
        Some(n) => n.to_string(),
        None => format!("errno {errno}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::name(2), Some("ENOENT"));
        assert_eq!(super::name(95), Some("EOPNOTSUPP"));
        assert_eq!(super::label(4000), "errno 4000");
        assert_eq!(super::describe(22), "invalid argument");
    }
}
