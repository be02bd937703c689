//! The offload engine: what a NIC does for the kernel, done here on bytes.
//!
//! Pure functions, no I/O (the packet threads around them own the
//! syscalls, in the manner of quinn-proto and quinn-udp):
//!
//! * [`csum`]: the internet checksum, and completing a partial one;
//! * [`vnet`]: the virtio-net header in front of TAP and `AF_PACKET`
//!   frames, and its consistency checks;
//! * [`layout`]: where a frame's IP and TCP/UDP headers lie;
//! * [`segment`]: a GSO super-frame split into segments, either as headers
//!   to lay beside payload slices (one UDP GSO send for the whole
//!   super-frame) or as whole frames;
//! * [`coalesce`]: consecutive TCP segments of one flow merged into one
//!   GSO frame for the TAP (receive side), as the kernel's GRO does.

pub mod coalesce;
pub mod csum;
pub mod layout;
pub mod segment;
pub mod vnet;

#[cfg(test)]
mod tests;
