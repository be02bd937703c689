//! The target: where a device's frames go. In dynamic mode, each device's
//! target cache ([`cache`]) and the lookup service that answers its misses
//! ([`lookup`]).

pub mod cache;
pub mod lookup;

use crate::error::CtlResult;

/// A running device's packet path, as the target and its lookups see it:
/// where proxy answers and held frames are injected, and what is woken
/// when answers release queued frames. The packet path implements it; the
/// target knows nothing else of it.
pub trait PacketPath: Send + Sync {
    /// Sends `frame` down the transmit path as if the hosts had sent it.
    fn outbound(&self, frame: &[u8]) -> CtlResult<()>;

    /// Delivers `frames` to the hosts as if they had come from the
    /// underlay; returns how many the backend took.
    fn inbound(&self, frames: &[&[u8]]) -> CtlResult<usize>;

    /// Wakes the sender: answers released frames for it.
    fn wake(&self);
}
