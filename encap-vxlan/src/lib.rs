//! VXLAN encapsulation (RFC 7348) as an overlayd plugin.
//!
//! The header is 8 bytes: a flags byte with the I bit (0x08) set, 3 reserved
//! bytes, the 24-bit VXLAN network identifier (VNI) and one reserved byte.
//! On receipt the I bit is required and the reserved fields are ignored, as
//! RFC 7348 §5 says. The plugin asks for one UDP socket bound to
//! `vxlan/listen_ip`:`vxlan/listen_port`; devices with equal values share it.

use overlay_plugin_abi::{
    dest,
    kit::{Encap, EncapInstance},
    prop::{check_unicast_endpoint, perm, PropStore, PropValue},
    DecapInfo, EncapInfo, PluginError, PropInfo, SocketSpec, ENCAP_F_VLAN_TAG,
};

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI field is valid.
pub const FLAG_I: u8 = 0x08;
/// The IANA-assigned VXLAN port.
pub const DEFAULT_PORT: u16 = 4789;

const LISTEN_IP: &str = "vxlan/listen_ip";
const LISTEN_PORT: &str = "vxlan/listen_port";

/// A view of a VXLAN header over a byte buffer, checked once at creation.
pub struct Header<T: AsRef<[u8]>>(T);

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: std::ops::Range<usize> = 4..7;
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps `buf` if it holds at least a whole header.
    pub fn new_checked(buf: T) -> Result<Self, PluginError> {
        let len = buf.as_ref().len();
        if len < HEADER_LEN {
            return Err(PluginError::invalid(format!(
                "packet of {len} bytes is shorter than the {HEADER_LEN}-byte VXLAN header"
            )));
        }
        Ok(Header(buf))
    }

    /// Whether the I flag is set.
    pub fn vni_valid(&self) -> bool {
        self.0.as_ref()[field::FLAGS] & FLAG_I != 0
    }

    /// The 24-bit VNI.
    pub fn vni(&self) -> u32 {
        let b = &self.0.as_ref()[field::VNI];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Writes a header for `vni` with the I flag and zero reserved fields.
    pub fn emit(&mut self, vni: u32) {
        let b = &mut self.0.as_mut()[..HEADER_LEN];
        let v = vni.to_be_bytes();
        b.copy_from_slice(&[FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]);
    }
}

/// The plugin object shared by every VXLAN device.
pub struct Vxlan;

impl Vxlan {
    fn properties() -> Vec<PropInfo> {
        vec![
            PropInfo::ip(LISTEN_IP).perm(perm::RRW),
            PropInfo::uint(LISTEN_PORT)
                .perm(perm::RRW)
                .default_uint(DEFAULT_PORT as u64)
                .range(1, 65535),
        ]
    }
}

impl Encap for Vxlan {
    type Instance = VxlanDevice;

    fn info(&self) -> EncapInfo {
        EncapInfo {
            id_size: 3,
            flags: ENCAP_F_VLAN_TAG,
            dest: dest::IP | dest::PORT,
            max_header_len: HEADER_LEN as u32,
            properties: Self::properties().into(),
        }
    }

    fn new_instance(&self) -> Result<VxlanDevice, PluginError> {
        Ok(VxlanDevice {
            props: PropStore::new(Self::properties()),
        })
    }

    fn decap(&self, packet: &[u8]) -> Result<DecapInfo, PluginError> {
        let hdr = Header::new_checked(packet)?;
        if !hdr.vni_valid() {
            return Err(PluginError::invalid("VXLAN header without the I flag"));
        }
        Ok(DecapInfo {
            vnetid: hdr.vni() as u64,
            header_len: HEADER_LEN as u32,
            flags: 0,
        })
    }
}

/// One device's VXLAN state: its properties.
pub struct VxlanDevice {
    props: PropStore,
}

impl EncapInstance for VxlanDevice {
    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        self.props.get(name)
    }

    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
        self.props
            .set_with(name, value, |v| match v {
                // The unspecified address binds the wildcard, as the
                // reference allows.
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
        let vni = u32::try_from(vnetid)
            .ok()
            .filter(|v| *v <= 0xff_ffff)
            .ok_or_else(|| PluginError::invalid(format!("VNI {vnetid} exceeds 24 bits")))?;
        if header.len() < HEADER_LEN {
            return Err(PluginError::invalid("header buffer shorter than 8 bytes"));
        }
        Header(header).emit(vni);
        Ok(HEADER_LEN)
    }
}

overlay_plugin_abi::export_encap_plugin! {
    name: "vxlan",
    version: env!("CARGO_PKG_VERSION"),
    new: Vxlan,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encap_writes_the_rfc_7348_header() {
        let dev = Vxlan.new_instance().unwrap();
        let mut hdr = [0xaa; 16];
        assert_eq!(dev.encap(0x123456, &[0; 14], &mut hdr).unwrap(), 8);
        assert_eq!(&hdr[..8], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        assert_eq!(hdr[8], 0xaa, "nothing written past the header");
        assert!(dev.encap(0x100_0000, &[], &mut hdr).is_err());
        assert!(dev.encap(1, &[], &mut hdr[..7]).is_err());
    }

    #[test]
    fn decap_parses_and_rejects() {
        let ok = [0x08, 0, 0, 0, 0x00, 0x00, 0x2a, 0, 0xde, 0xad];
        assert_eq!(
            Vxlan.decap(&ok).unwrap(),
            DecapInfo {
                vnetid: 42,
                header_len: 8,
                flags: 0
            }
        );
        // Reserved bits are ignored on receipt.
        let reserved = [0x0c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(Vxlan.decap(&reserved).unwrap().vnetid, 0xff_ffff);
        let no_i = [0x00, 0, 0, 0, 0, 0, 0x2a, 0];
        let err = Vxlan.decap(&no_i).unwrap_err();
        assert_eq!(err.errno, libc::EINVAL);
        assert!(err.msg.contains("I flag"));
        let short = [0x08, 0, 0, 0, 0, 0, 0x2a];
        assert!(Vxlan.decap(&short).unwrap_err().msg.contains("shorter"));
        assert!(Vxlan.decap(&[]).is_err());
    }

    #[test]
    fn encap_decap_round_trip_every_vni_edge() {
        let dev = Vxlan.new_instance().unwrap();
        for vni in [0u64, 1, 42, 0xffff, 0xff_ffff] {
            let mut hdr = [0u8; 8];
            dev.encap(vni, &[], &mut hdr).unwrap();
            assert_eq!(Vxlan.decap(&hdr).unwrap().vnetid, vni);
        }
    }

    #[test]
    fn properties_and_socket() {
        let dev = Vxlan.new_instance().unwrap();
        assert_eq!(dev.missing_required(), vec![LISTEN_IP.to_string()]);
        assert_eq!(dev.socket().unwrap_err().errno, libc::EINVAL);
        let port = dev.getprop(LISTEN_PORT).unwrap();
        assert_eq!(port, 4789u64.to_ne_bytes());
        let ip = |s: &str| overlay_plugin_abi::prop::ip_to_in6(s.parse().unwrap());
        assert!(dev.setprop(LISTEN_IP, &ip("224.0.0.1")).is_err());
        assert!(dev.setprop(LISTEN_IP, &ip("2002::1")).is_err());
        assert!(dev.setprop(LISTEN_IP, &[0; 4]).is_err());
        assert!(dev.setprop(LISTEN_PORT, &0u64.to_ne_bytes()).is_err());
        assert!(dev.setprop(LISTEN_PORT, &65536u64.to_ne_bytes()).is_err());
        dev.setprop(LISTEN_IP, &ip("10.0.0.1")).unwrap();
        dev.setprop(LISTEN_PORT, &8472u64.to_ne_bytes()).unwrap();
        let s = dev.socket().unwrap();
        assert_eq!((s.domain, s.port), (libc::AF_INET, 8472));
        assert_eq!(s.addr, ip("10.0.0.1"));
        dev.setprop(LISTEN_IP, &ip("::")).unwrap();
        assert_eq!(dev.socket().unwrap().domain, libc::AF_INET6);
        assert!(dev.missing_required().is_empty());
    }
}
