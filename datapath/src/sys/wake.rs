//! Waking a thread that polls: an eventfd.

use nix::sys::eventfd::{EfdFlags, EventFd};
use std::{
    io,
    os::fd::{AsFd, BorrowedFd},
};

/// A non-blocking eventfd: [`WakeFd::wake`] from any thread makes it
/// readable until the polling thread calls [`WakeFd::drain`].
pub struct WakeFd(EventFd);

impl WakeFd {
    /// A new one, not signalled.
    pub fn new() -> io::Result<WakeFd> {
        let flags = EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
        Ok(WakeFd(EventFd::from_value_and_flags(0, flags)?))
    }

    /// Signals it. Never blocks (a counter already near its maximum is
    /// signalled already).
    pub fn wake(&self) {
        let _ = self.0.write(1);
    }

    /// Clears the signal; returns whether it was signalled.
    pub fn drain(&self) -> bool {
        self.0.read().is_ok()
    }
}

impl AsFd for WakeFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_wake_makes_it_readable_until_drained() {
        let w = WakeFd::new().unwrap();
        let readable = |w: &WakeFd| nlproto::sys::wait_readable(w.as_fd(), Duration::ZERO).unwrap();
        assert!(!readable(&w));
        assert!(!w.drain());
        w.wake();
        w.wake();
        assert!(readable(&w));
        assert!(w.drain());
        assert!(!readable(&w));
    }
}
