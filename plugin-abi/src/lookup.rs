//! The lookup plugin interface.

use crate::{PluginError, PropInfo};
use abi_stable::{
    sabi_trait,
    std_types::{RBox, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// Lookup mode bit: one destination for every frame.
pub const MODE_POINT: u32 = 0x1;
/// Lookup mode bit: a destination per destination MAC, looked up on demand.
pub const MODE_DYNAMIC: u32 = 0x2;

/// An underlay destination. Which fields are meaningful follows the
/// encapsulation's destination kinds.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Point {
    /// Ethernet address ([`crate::dest::ETHERNET`]).
    pub mac: [u8; 6],
    /// IP address as an `in6_addr`, IPv4 v4-mapped ([`crate::dest::IP`]).
    pub ip: [u8; 16],
    /// Port, host order ([`crate::dest::PORT`]).
    pub port: u16,
}

/// What a dynamic lookup is asked about: the frame at the head of the
/// queue of a destination MAC that missed the device's target cache.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupRequest {
    /// The device's virtual network id.
    pub vnetid: u64,
    /// Ethernet source of the frame.
    pub src: [u8; 6],
    /// Ethernet destination of the frame: the MAC being looked up.
    pub dst: [u8; 6],
    /// The ethertype, after a VLAN tag when there is one.
    pub ethertype: u16,
    /// The VLAN id; 0 when the frame is untagged.
    pub vlan: u16,
    /// Length of the Ethernet header: 14, or 18 with a VLAN tag.
    pub hdr_len: u16,
    /// `REQ_F_*` bits.
    pub flags: u16,
    /// Length of the whole frame, header included.
    pub frame_len: u32,
}

/// [`LookupRequest::flags`] bit: the device's `flood` property is on, so
/// broadcast and multicast frames may be replicated to every destination
/// ([`LookupAnswer::replicate`]) instead of being dropped.
pub const REQ_F_FLOOD: u16 = 0x1;

impl LookupRequest {
    /// The request describing `frame` on a device with `vnetid`, or `None`
    /// when the frame is too short to carry an Ethernet header.
    pub fn parse(vnetid: u64, frame: &[u8], flags: u16) -> Option<LookupRequest> {
        if frame.len() < 14 {
            return None;
        }
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&frame[0..6]);
        src.copy_from_slice(&frame[6..12]);
        let tpid = u16::from_be_bytes([frame[12], frame[13]]);
        let (ethertype, vlan, hdr_len) = if tpid == 0x8100 {
            if frame.len() < 18 {
                return None;
            }
            let tci = u16::from_be_bytes([frame[14], frame[15]]);
            (u16::from_be_bytes([frame[16], frame[17]]), tci & 0x0fff, 18)
        } else {
            (tpid, 0, 14)
        };
        Some(LookupRequest {
            vnetid,
            src,
            dst,
            ethertype,
            vlan,
            hdr_len,
            flags,
            frame_len: frame.len() as u32,
        })
    }

    /// Whether the destination is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        self.dst == [0xff; 6]
    }

    /// Whether the destination is a group address (multicast or broadcast).
    pub fn is_group(&self) -> bool {
        self.dst[0] & 1 == 1
    }

    /// Whether the device allows replication of group traffic.
    pub fn flood(&self) -> bool {
        self.flags & REQ_F_FLOOD != 0
    }
}

/// What a lookup decided (a `u8` newtype, so that later versions can add
/// actions without changing the layout; the daemon treats an action it
/// does not know as [`Action::DROP`]).
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Action(pub u8);

impl Action {
    /// The destination MAC lives at `points[0]`: the cache entry becomes
    /// valid and every frame queued on it is sent there.
    pub const RESPOND: Action = Action(1);
    /// Drop the frame the request is about. Other frames queued on the
    /// same MAC are looked up in turn.
    pub const DROP: Action = Action(2);
    /// Deliver `frame` to the hosts (a proxy's answer, such as an ARP
    /// reply), and drop the frame the request is about.
    pub const INJECT: Action = Action(3);
    /// Send `frame` down the transmit path, through the cache (a redirect,
    /// such as broadcast DHCP re-addressed to a server), and drop the
    /// frame the request is about.
    pub const RESEND: Action = Action(4);
    /// Send the frame the request is about to every destination in
    /// `points` (head-end replication of broadcast and multicast). Nothing
    /// is cached: the next frame to the same MAC is looked up again.
    pub const REPLICATE: Action = Action(5);
}

/// The answer to a [`LookupRequest`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct LookupAnswer {
    /// What to do.
    pub action: Action,
    /// [`Action::RESPOND`]: one destination; [`Action::REPLICATE`]: every
    /// destination.
    pub points: RVec<Point>,
    /// [`Action::INJECT`] and [`Action::RESEND`]: the frame.
    pub frame: RVec<u8>,
}

impl LookupAnswer {
    /// Frames to the MAC go to `point`.
    pub fn respond(point: Point) -> LookupAnswer {
        LookupAnswer {
            action: Action::RESPOND,
            points: vec![point].into(),
            frame: RVec::new(),
        }
    }

    /// Drop the frame.
    pub fn drop_frame() -> LookupAnswer {
        LookupAnswer {
            action: Action::DROP,
            points: RVec::new(),
            frame: RVec::new(),
        }
    }

    /// Answer with `frame` delivered to the hosts; drop the request's frame.
    pub fn inject(frame: Vec<u8>) -> LookupAnswer {
        LookupAnswer {
            action: Action::INJECT,
            points: RVec::new(),
            frame: frame.into(),
        }
    }

    /// Send `frame` down the transmit path instead of the request's frame.
    pub fn resend(frame: Vec<u8>) -> LookupAnswer {
        LookupAnswer {
            action: Action::RESEND,
            points: RVec::new(),
            frame: frame.into(),
        }
    }

    /// Send the request's frame to each of `points`.
    pub fn replicate(points: Vec<Point>) -> LookupAnswer {
        LookupAnswer {
            action: Action::REPLICATE,
            points: points.into(),
            frame: RVec::new(),
        }
    }
}

/// What a lookup plugin is, declared once.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct LookupInfo {
    /// `MODE_*` bits it supports.
    pub modes: u32,
    /// The destination kinds it can provide ([`crate::dest`] bits); a device
    /// whose encapsulation needs other kinds cannot use it.
    pub dest: u32,
    /// Every property the plugin may expose (an instance may expose fewer,
    /// depending on the destination kinds).
    pub properties: RVec<PropInfo>,
}

/// A lookup plugin.
#[sabi_trait]
pub trait LookupPlugin: Send + Sync {
    /// The plugin's declaration.
    fn info(&self) -> LookupInfo;

    /// A new instance for a device whose encapsulation needs `dest` and
    /// whose virtual network id is `vnetid`. `ENOTSUP` when `dest` cannot be
    /// provided.
    #[sabi(last_prefix_field)]
    fn new_device(&self, dest: u32, vnetid: u64) -> RResult<LookupDeviceBox, PluginError>;
}

/// The per-device side of a lookup plugin.
#[sabi_trait]
pub trait LookupDevice: Send + Sync {
    /// The instance's mode (one `MODE_*` bit).
    fn mode(&self) -> u32;

    /// The properties of this instance.
    fn properties(&self) -> RVec<PropInfo>;

    /// The encoded value of a property; empty when unset.
    fn getprop(&self, name: RStr<'_>) -> RResult<RVec<u8>, PluginError>;

    /// Validates and stores a property value; on error the old value stays.
    fn setprop(&self, name: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), PluginError>;

    /// The names of required properties that have no value.
    fn missing_required(&self) -> RVec<RString>;

    /// Checks the configuration and acquires resources; called at activation.
    /// `EAGAIN` when something required is missing.
    fn start(&self) -> RResult<(), PluginError>;

    /// Undoes `start`; called at deactivation and delete.
    fn stop(&self);

    /// Point mode: the one destination of every frame.
    #[sabi(last_prefix_field)]
    fn default_point(&self) -> RResult<Point, PluginError>;

    /// The instance's private state, beyond its properties, as opaque
    /// bytes the daemon keeps in its state file across restarts (a learned
    /// table, a cursor into an external source). The daemon persists the
    /// properties itself, so an instance whose whole configuration is its
    /// properties returns nothing. Called on every change of the daemon's
    /// state; it should be quick.
    ///
    /// Added after the first version of the ABI: a plugin built before it
    /// gets this default, which saves nothing.
    fn save(&self) -> RResult<RVec<u8>, PluginError> {
        RResult::ROk(RVec::new())
    }

    /// Takes back what [`save`](LookupDevice::save) returned, on a fresh
    /// instance whose properties have already been restored, before
    /// `start`. Never called with empty bytes. An error leaves the device
    /// created and degraded with the error's message.
    ///
    /// The default (for plugins that save nothing, or predate this method)
    /// refuses any bytes, since it cannot know what they mean.
    fn restore(&self, state: RSlice<'_, u8>) -> RResult<(), PluginError> {
        RResult::RErr(PluginError::not_supported(format!(
            "this lookup plugin keeps no saved state and cannot restore {} bytes",
            state.len()
        )))
    }

    /// Dynamic mode: decides where the frame of `req` goes. `frame` is the
    /// whole frame (header included). Called on one of the daemon's lookup
    /// threads, never on the packet path, possibly for several requests
    /// of the same instance at once; only between `start` and `stop`.
    /// A call that takes longer than the device's `lookup_timeout` is
    /// asked again, and repeated timeouts degrade the device. An error
    /// drops the frame.
    ///
    /// Added after the first version of the ABI: a plugin built before it
    /// cannot work in dynamic mode.
    fn lookup(
        &self,
        req: &LookupRequest,
        frame: RSlice<'_, u8>,
    ) -> RResult<LookupAnswer, PluginError> {
        let _ = (req, frame);
        RResult::RErr(PluginError::not_supported(
            "this lookup plugin does not implement dynamic lookups",
        ))
    }

    /// Dynamic mode: the destination MACs whose answers changed since the
    /// last call (after a property change, such as a configuration
    /// reload), so that the daemon forgets what it cached for them and
    /// asks again. The daemon calls it after every property change of an
    /// active instance. The default reports nothing.
    fn take_stale(&self) -> RVec<[u8; 6]> {
        RVec::new()
    }
}

/// A boxed lookup plugin as it crosses the boundary.
pub type LookupPluginBox = LookupPlugin_TO<'static, RBox<()>>;
/// A boxed per-device lookup instance.
pub type LookupDeviceBox = LookupDevice_TO<'static, RBox<()>>;
