//! The OS edge: sockets and socket options, polling, eventfds and
//! signals, on `nix` where nix has the call. Everything else in the daemon
//! calls these instead of `libc`, so that the `unsafe` blocks of the OS
//! edge are here (and in the packet path's ring and ioctl code), each with
//! its `// SAFETY:` line.
//!
//! The packet path's part: interfaces by name and their ioctls
//! ([`ifctl`]), a TAP descriptor's ioctls ([`tun`]), the few
//! route-netlink requests it makes ([`rtnl`]), and,
//! for tests, private network namespaces.
//!
//! The Unix `SOCK_SEQPACKET` calls the control server shares with every
//! client are nlproto's ([`nlproto::sys`]); this module adds what only the
//! daemon needs.

pub mod ifctl;
pub mod rtnl;
pub mod signal;
pub mod socket;
#[cfg(test)]
pub(crate) mod testnet;
pub mod tun;
pub mod wake;

pub use wake::WakeFd;
