//! `fixed`: a small point-mode lookup plugin for overlayd, written against
//! `overlay-plugin-abi` the way any third-party plugin is.
//!
//! Every frame of a device goes to one underlay destination,
//! `fixed/dest_ip`:`fixed/dest_port`. `fixed/family` pins the address
//! family the destination must have (`any`, `ipv4` or `ipv6`), so that a
//! configuration management system cannot hand an IPv6 destination to a
//! device meant for an IPv4 underlay. Both destination properties can be
//! changed while the device is active; the daemon re-reads the point.

use overlay_plugin_abi::{
    dest,
    kit::{Lookup, LookupInstance},
    prop::{check_unicast_endpoint, ip_to_in6, PropStore, PropValue},
    LookupInfo, PluginError, Point, PropInfo, MODE_POINT,
};
use std::net::IpAddr;

const DEST_IP: &str = "fixed/dest_ip";
const DEST_PORT: &str = "fixed/dest_port";
const FAMILY: &str = "fixed/family";
const FAMILIES: [&str; 3] = ["any", "ipv4", "ipv6"];

fn properties() -> Vec<PropInfo> {
    vec![
        PropInfo::ip(DEST_IP).required().runtime(),
        PropInfo::uint(DEST_PORT)
            .default_uint(7000)
            .range(1, 65535)
            .runtime(),
        PropInfo::string(FAMILY)
            .default_str("any")
            .possible(&FAMILIES),
    ]
}

fn family_allows(family: &str, ip: IpAddr) -> Result<(), String> {
    match (family, ip) {
        ("ipv4", IpAddr::V6(_)) => Err(format!("{ip} is IPv6 but {FAMILY} is ipv4")),
        ("ipv6", IpAddr::V4(_)) => Err(format!("{ip} is IPv4 but {FAMILY} is ipv6")),
        _ => Ok(()),
    }
}

/// The plugin object.
pub struct Fixed;

impl Lookup for Fixed {
    type Instance = FixedDevice;

    fn info(&self) -> LookupInfo {
        LookupInfo {
            modes: MODE_POINT,
            dest: dest::IP | dest::PORT,
            properties: properties().into(),
        }
    }

    fn new_instance(&self, dest: u32, _vnetid: u64) -> Result<FixedDevice, PluginError> {
        if dest & !(dest::IP | dest::PORT) != 0 {
            return Err(PluginError::not_supported(format!(
                "fixed provides IP and port destinations; this encapsulation needs kinds {dest:#x}"
            )));
        }
        Ok(FixedDevice {
            props: PropStore::new(properties()),
        })
    }
}

/// One device's destination.
pub struct FixedDevice {
    props: PropStore,
}

impl FixedDevice {
    fn family(&self) -> String {
        self.props.string(FAMILY).unwrap_or_else(|| "any".into())
    }
}

impl LookupInstance for FixedDevice {
    fn mode(&self) -> u32 {
        MODE_POINT
    }

    fn properties(&self) -> Vec<PropInfo> {
        self.props.infos().to_vec()
    }

    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        self.props.get(name)
    }

    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
        let family = self.family();
        let current = self.props.ip(DEST_IP);
        self.props
            .set_with(name, value, |v| match v {
                PropValue::Ip(ip) if ip.is_unspecified() => {
                    Err("the unspecified address cannot be a destination".into())
                }
                PropValue::Ip(ip) => {
                    check_unicast_endpoint(*ip)?;
                    family_allows(&family, *ip)
                }
                PropValue::Str(f) => match current {
                    Some(ip) => family_allows(f, ip)
                        .map_err(|e| format!("{e}; change {DEST_IP} first")),
                    None => Ok(()),
                },
                _ => Ok(()),
            })
            .map(|_| ())
    }

    fn missing_required(&self) -> Vec<String> {
        self.props.missing_required()
    }

    fn start(&self) -> Result<(), PluginError> {
        let missing = self.props.missing_required();
        if !missing.is_empty() {
            return Err(PluginError::new(
                libc::EAGAIN,
                format!("fixed needs {} before it can start", missing.join(" and ")),
            ));
        }
        Ok(())
    }

    fn stop(&self) {}

    fn default_point(&self) -> Result<Point, PluginError> {
        let ip = self
            .props
            .ip(DEST_IP)
            .ok_or_else(|| PluginError::invalid(format!("{DEST_IP} is not set")))?;
        let port = self.props.uint(DEST_PORT).unwrap_or(7000) as u16;
        Ok(Point {
            mac: [0; 6],
            ip: ip_to_in6(ip),
            port,
        })
    }
}

overlay_plugin_abi::export_lookup_plugin! {
    name: "fixed",
    version: env!("CARGO_PKG_VERSION"),
    new: Fixed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> [u8; 16] {
        ip_to_in6(s.parse().unwrap())
    }

    #[test]
    fn point_follows_the_properties() {
        let dev = Fixed.new_instance(dest::IP | dest::PORT, 1).unwrap();
        assert_eq!(dev.start().unwrap_err().errno, libc::EAGAIN);
        dev.setprop(DEST_IP, &ip("192.0.2.7")).unwrap();
        dev.start().unwrap();
        let p = dev.default_point().unwrap();
        assert_eq!((p.ip, p.port), (ip("192.0.2.7"), 7000));
        dev.setprop(DEST_PORT, &7001u64.to_ne_bytes()).unwrap();
        assert_eq!(dev.default_point().unwrap().port, 7001);
    }

    #[test]
    fn family_is_enforced_both_ways() {
        let dev = Fixed.new_instance(dest::IP | dest::PORT, 1).unwrap();
        dev.setprop(FAMILY, b"ipv6\0").unwrap();
        let e = dev.setprop(DEST_IP, &ip("192.0.2.7")).unwrap_err();
        assert!(e.msg.contains("is IPv4"), "{}", e.msg);
        dev.setprop(DEST_IP, &ip("2001:db8::7")).unwrap();
        let e = dev.setprop(FAMILY, b"ipv4\0").unwrap_err();
        assert!(e.msg.contains("change fixed/dest_ip first"), "{}", e.msg);
        assert!(dev.setprop(FAMILY, b"ipx\0").is_err());
        assert!(Fixed.new_instance(dest::ETHERNET, 1).is_err());
    }
}
