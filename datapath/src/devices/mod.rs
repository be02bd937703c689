//! Devices: the registry of every device by link id, each device's
//! identity and properties, their persistence across restarts, and the
//! change notifications they emit.

pub mod device;
pub mod notify;
pub mod persist;
pub mod registry;
