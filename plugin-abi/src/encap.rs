//! The encapsulation plugin interface.

use crate::{PluginError, PropInfo};
use abi_stable::{
    sabi_trait,
    std_types::{RBox, RResult, RSlice, RSliceMut, RStr, RString, RVec},
    StableAbi,
};

/// Encap flag: inner frames may carry an 802.1Q tag, so the device accepts
/// frames 4 bytes longer than MTU + Ethernet header.
pub const ENCAP_F_VLAN_TAG: u32 = 0x1;

/// Decap flag: the packet is an OAM (control) packet and must not be
/// delivered to the device.
pub const DECAP_F_OAM: u32 = 0x1;

/// What an encapsulation plugin is, declared once.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct EncapInfo {
    /// Bytes of virtual network id, 1 to 8 (VXLAN: 3).
    pub id_size: u32,
    /// `ENCAP_F_*` bits.
    pub flags: u32,
    /// The destination kinds it needs ([`crate::dest`] bits).
    pub dest: u32,
    /// The longest header `encap` may write, so the host sizes its buffers.
    pub max_header_len: u32,
    /// The plugin's properties, all named `plugin/...`.
    pub properties: RVec<PropInfo>,
}

/// A socket option the plugin wants on its underlay socket.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct SockOpt {
    /// `SOL_SOCKET`, `IPPROTO_IP`, ...
    pub level: i32,
    /// The option name.
    pub name: i32,
    /// The option value, as `setsockopt` takes it.
    pub value: RVec<u8>,
}

/// The underlay socket a device needs; devices whose specs are equal share
/// one socket (a mux).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct SocketSpec {
    /// `AF_INET` or `AF_INET6`.
    pub domain: i32,
    /// `SOCK_DGRAM`, ...
    pub sotype: i32,
    /// `IPPROTO_UDP`, or 0 for the default.
    pub protocol: i32,
    /// Bind address as an `in6_addr` (IPv4 v4-mapped, unspecified for any).
    pub addr: [u8; 16],
    /// Bind port, host order.
    pub port: u16,
    /// Options set once when the socket is opened.
    pub options: RVec<SockOpt>,
}

impl SocketSpec {
    /// A UDP socket bound to `ip`:`port` with no options, the socket every
    /// UDP-carried encapsulation (VXLAN, Geneve) asks for.
    pub fn udp(ip: std::net::IpAddr, port: u16) -> SocketSpec {
        SocketSpec {
            domain: match ip {
                std::net::IpAddr::V4(_) => libc::AF_INET,
                std::net::IpAddr::V6(_) => libc::AF_INET6,
            },
            sotype: libc::SOCK_DGRAM,
            protocol: libc::IPPROTO_UDP,
            addr: crate::prop::ip_to_in6(ip),
            port,
            options: RVec::new(),
        }
    }

    /// The UDP socket of an encapsulation that listens on the address in
    /// its property `ip_prop` and the port in `port_prop` (or
    /// `default_port` while that has no value); an error naming
    /// `ip_prop` while the address is not set.
    pub fn udp_from_props(
        props: &crate::prop::PropStore,
        ip_prop: &str,
        port_prop: &str,
        default_port: u16,
    ) -> Result<SocketSpec, PluginError> {
        let ip = props.ip(ip_prop).ok_or_else(|| {
            PluginError::invalid(format!(
                "{ip_prop} is not set; set it to the underlay address to listen on"
            ))
        })?;
        let port = props
            .uint(port_prop)
            .map_or(default_port, |p| p.clamp(1, u16::MAX as u64) as u16);
        Ok(SocketSpec::udp(ip, port))
    }
}

/// The result of parsing an encapsulation header.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecapInfo {
    /// The virtual network id the packet belongs to.
    pub vnetid: u64,
    /// Bytes of header before the inner Ethernet frame.
    pub header_len: u32,
    /// `DECAP_F_*` bits.
    pub flags: u32,
}

/// An encapsulation plugin, shared by every device (and mux) that uses it.
#[sabi_trait]
pub trait EncapPlugin: Send + Sync {
    /// The plugin's declaration.
    fn info(&self) -> EncapInfo;

    /// A new per-device instance, its properties at their defaults.
    fn new_device(&self) -> RResult<EncapDeviceBox, PluginError>;

    /// Parses the header at the start of an underlay payload. Runs before
    /// the device is known, hence a method of the plugin. Must not allocate.
    #[sabi(last_prefix_field)]
    fn decap(&self, packet: RSlice<'_, u8>) -> RResult<DecapInfo, PluginError>;
}

/// The per-device side of an encapsulation plugin.
#[sabi_trait]
pub trait EncapDevice: Send + Sync {
    /// The encoded value of a property; empty when unset.
    fn getprop(&self, name: RStr<'_>) -> RResult<RVec<u8>, PluginError>;

    /// Validates and stores a property value; on error the old value stays.
    fn setprop(&self, name: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), PluginError>;

    /// The names of required properties that have no value.
    fn missing_required(&self) -> RVec<RString>;

    /// The underlay socket this device needs, from its current properties.
    fn socket(&self) -> RResult<SocketSpec, PluginError>;

    /// The length of the header `encap` writes with the current properties.
    fn header_len(&self) -> u32;

    /// Writes the header for `frame` on virtual network `vnetid` at the
    /// start of `header`, returning its length. Must not allocate.
    #[sabi(last_prefix_field)]
    fn encap(
        &self,
        vnetid: u64,
        frame: RSlice<'_, u8>,
        header: RSliceMut<'_, u8>,
    ) -> RResult<u32, PluginError>;
}

/// A boxed encapsulation plugin as it crosses the boundary.
pub type EncapPluginBox = EncapPlugin_TO<'static, RBox<()>>;
/// A boxed per-device encapsulation instance.
pub type EncapDeviceBox = EncapDevice_TO<'static, RBox<()>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prop::{ip_to_in6, PropStore};

    #[test]
    fn udp_socket_from_listen_properties() {
        let props = PropStore::new(vec![
            PropInfo::ip("t/listen_ip"),
            PropInfo::uint("t/listen_port").range(1, 65535),
        ]);
        let e =
            SocketSpec::udp_from_props(&props, "t/listen_ip", "t/listen_port", 7000).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        assert!(e.msg.starts_with("t/listen_ip is not set"), "{}", e.msg);

        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        props.set("t/listen_ip", &ip_to_in6(v6)).unwrap();
        let s = SocketSpec::udp_from_props(&props, "t/listen_ip", "t/listen_port", 7000).unwrap();
        assert_eq!(s, SocketSpec::udp(v6, 7000));
        assert_eq!(s.domain, libc::AF_INET6);
        props.set("t/listen_port", &4789u64.to_ne_bytes()).unwrap();
        let s = SocketSpec::udp_from_props(&props, "t/listen_ip", "t/listen_port", 7000).unwrap();
        assert_eq!(s, SocketSpec::udp(v6, 4789));
    }
}
