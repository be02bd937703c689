//! The signals that stop the daemon (SIGTERM, SIGINT, SIGHUP), read
//! through a signalfd by the control loop.

use nix::sys::{
    signal::{SigSet, Signal},
    signalfd::{SfdFlags, SignalFd},
};
use std::{
    io,
    os::fd::{AsFd, BorrowedFd},
};

/// The signals that make the daemon exit cleanly.
pub const EXIT_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

fn mask() -> SigSet {
    let mut mask = SigSet::empty();
    for s in EXIT_SIGNALS {
        mask.add(s);
    }
    mask
}

/// Blocks the exit signals in the calling thread (and the threads it
/// starts afterwards), so that they are only seen through [`ExitSignals`].
pub fn block_exit_signals() -> io::Result<()> {
    Ok(mask().thread_block()?)
}

/// A non-blocking signalfd for the exit signals.
pub struct ExitSignals(SignalFd);

impl ExitSignals {
    /// Opens it. The signals must be blocked ([`block_exit_signals`]).
    pub fn new() -> io::Result<ExitSignals> {
        let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
        Ok(ExitSignals(SignalFd::with_flags(&mask(), flags)?))
    }

    /// The exit signal received, if one is pending.
    pub fn read(&self) -> Option<Signal> {
        match self.0.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        }
    }
}

impl AsFd for ExitSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_exit_signal_is_read_from_the_fd() {
        // Blocked in this test's thread only; the signal is sent to it
        // alone, so no other thread sees it.
        block_exit_signals().unwrap();
        let s = ExitSignals::new().unwrap();
        assert_eq!(s.read(), None);
        // raise() signals the calling thread.
        nix::sys::signal::raise(Signal::SIGHUP).unwrap();
        assert_eq!(s.read(), Some(Signal::SIGHUP));
        assert_eq!(s.read(), None);
    }
}
