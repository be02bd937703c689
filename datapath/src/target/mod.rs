//! The target: where a device's frames go. In dynamic mode, each device's
//! target cache ([`cache`]), the device's view of it that the packet path,
//! the control side and the lookups share ([`DynTarget`]), and the lookup
//! service that answers its misses ([`lookup`]).
//!
//! Nothing outside this module touches a cache: the packet path routes
//! frames through a [`Batch`] (one lock per batch), administrators read
//! and change answers through [`DynTarget`]'s methods, and the lookup
//! service applies answers the same way.

pub mod cache;
mod dynamic;
pub mod lookup;

pub use cache::{Answer, Answers, CacheLimits, State};
pub use dynamic::{Batch, DynIdentity, DynSettings, DynTarget, Route};
pub use overlay_plugin_abi::Mac;

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
