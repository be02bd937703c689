//! `magicid`: a small encapsulation plugin for overlayd, written against
//! `overlay-plugin-abi` the way any third-party plugin is.
//!
//! Frames travel in UDP with an 8-byte header in front:
//!
//! ```text
//!  0               1               2               3
//!  +---------------+---------------+---------------+---------------+
//!  |          magic 0x4d49 ("MI")  |  version (1)  | flags (O=0x80)|
//!  +---------------+---------------+---------------+---------------+
//!  |                    virtual network id (32 bits)               |
//!  +---------------------------------------------------------------+
//! ```
//!
//! The O flag marks an OAM packet, which the daemon never delivers to a
//! device. Each device asks for one UDP socket bound to
//! `magicid/listen_ip`:`magicid/listen_port`; devices with equal values
//! share it and are told apart by their id.

use overlay_plugin_abi::{
    buf, dest,
    kit::{Encap, EncapInstance},
    prop::{check_unicast_endpoint, PropStore, PropValue},
    DecapInfo, EncapInfo, PluginError, PropInfo, SocketSpec, DECAP_F_OAM,
};

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// The first two bytes of every header.
pub const MAGIC: u16 = 0x4d49;
/// The header version this plugin writes and accepts.
pub const VERSION: u8 = 1;
/// The OAM flag.
pub const FLAG_OAM: u8 = 0x80;
/// The port used when `magicid/listen_port` is not set.
pub const DEFAULT_PORT: u16 = 7000;

const LISTEN_IP: &str = "magicid/listen_ip";
const LISTEN_PORT: &str = "magicid/listen_port";
const HEADER_VERSION: &str = "magicid/header_version";

mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 2;
    pub const FLAGS: usize = 3;
    pub const ID: usize = 4;
}

fn properties() -> Vec<PropInfo> {
    vec![
        PropInfo::ip(LISTEN_IP).required(),
        PropInfo::uint(LISTEN_PORT)
            .default_uint(DEFAULT_PORT as u64)
            .range(1024, 65535),
        PropInfo::uint(HEADER_VERSION)
            .read_only()
            .default_uint(VERSION as u64),
    ]
}

/// The plugin object, shared by every device using `magicid`.
pub struct MagicId;

impl Encap for MagicId {
    type Instance = MagicIdDevice;

    fn info(&self) -> EncapInfo {
        EncapInfo {
            id_size: 4,
            flags: 0,
            dest: dest::IP | dest::PORT,
            max_header_len: HEADER_LEN as u32,
            properties: properties().into(),
        }
    }

    fn new_instance(&self) -> Result<MagicIdDevice, PluginError> {
        Ok(MagicIdDevice {
            props: PropStore::new(properties()),
        })
    }

    fn decap(&self, packet: &[u8]) -> Result<DecapInfo, PluginError> {
        buf::check_len(packet, HEADER_LEN, "magicid packet")?;
        if buf::get_u16(packet, field::MAGIC)? != MAGIC {
            return Err(PluginError::invalid("not a magicid header (wrong magic)"));
        }
        let version = buf::get_u8(packet, field::VERSION)?;
        if version != VERSION {
            return Err(PluginError::invalid(format!(
                "magicid header version {version} is not {VERSION}"
            )));
        }
        let oam = buf::get_u8(packet, field::FLAGS)? & FLAG_OAM != 0;
        Ok(DecapInfo {
            vnetid: buf::get_u32(packet, field::ID)? as u64,
            header_len: HEADER_LEN as u32,
            flags: if oam { DECAP_F_OAM } else { 0 },
        })
    }
}

/// One device's state: its properties.
pub struct MagicIdDevice {
    props: PropStore,
}

impl EncapInstance for MagicIdDevice {
    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        self.props.get(name)
    }

    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
        self.props
            .set_with(name, value, |v| match v {
                PropValue::Ip(ip) => check_unicast_endpoint(*ip),
                _ => Ok(()),
            })
            .map(|_| ())
    }

    fn missing_required(&self) -> Vec<String> {
        self.props.missing_required()
    }

    fn socket(&self) -> Result<SocketSpec, PluginError> {
        SocketSpec::udp_from_props(&self.props, LISTEN_IP, LISTEN_PORT, DEFAULT_PORT)
    }

    fn header_len(&self) -> usize {
        HEADER_LEN
    }

    fn encap(&self, vnetid: u64, _frame: &[u8], header: &mut [u8]) -> Result<usize, PluginError> {
        buf::put_u16(header, field::MAGIC, MAGIC)?;
        buf::put_u8(header, field::VERSION, VERSION)?;
        buf::put_u8(header, field::FLAGS, 0)?;
        buf::put_uint(header, field::ID, vnetid, 4)?;
        Ok(HEADER_LEN)
    }
}

overlay_plugin_abi::export_encap_plugin! {
    name: "magicid",
    version: env!("CARGO_PKG_VERSION"),
    new: MagicId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_refusals() {
        let dev = MagicId.new_instance().unwrap();
        let mut hdr = [0xaa; 12];
        assert_eq!(dev.encap(0xdead_beef, &[0; 14], &mut hdr).unwrap(), 8);
        assert_eq!(&hdr[..8], &[0x4d, 0x49, 1, 0, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(hdr[8], 0xaa, "nothing written past the header");
        let info = MagicId.decap(&hdr).unwrap();
        assert_eq!(
            (info.vnetid, info.header_len, info.flags),
            (0xdead_beef, 8, 0)
        );
        assert!(
            dev.encap(1 << 32, &[], &mut hdr).is_err(),
            "id over 32 bits"
        );
        assert!(dev.encap(1, &[], &mut hdr[..7]).is_err(), "short buffer");
        assert!(MagicId.decap(&hdr[..7]).is_err());
        hdr[3] = FLAG_OAM;
        assert_eq!(MagicId.decap(&hdr).unwrap().flags, DECAP_F_OAM);
        hdr[0] = 0;
        assert!(MagicId.decap(&hdr).unwrap_err().msg.contains("magic"));
    }

    #[test]
    fn properties_drive_the_socket() {
        let dev = MagicId.new_instance().unwrap();
        assert_eq!(dev.missing_required(), [LISTEN_IP]);
        assert!(dev.socket().is_err());
        let ip = overlay_plugin_abi::prop::ip_to_in6("192.0.2.1".parse().unwrap());
        dev.setprop(LISTEN_IP, &ip).unwrap();
        assert!(dev.setprop(LISTEN_PORT, &80u64.to_ne_bytes()).is_err());
        let s = dev.socket().unwrap();
        assert_eq!(
            (s.domain, s.port, s.addr),
            (libc::AF_INET, DEFAULT_PORT, ip)
        );
    }
}
