//! overlayd: the userspace overlay datapath daemon.

pub mod control;
pub mod device;
pub mod error;
pub mod plugins;
pub mod registry;
