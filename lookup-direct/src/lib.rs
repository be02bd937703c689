//! The `direct` lookup plugin: point mode, one underlay destination for
//! every frame of the device, taken from `direct/dest_ip` and
//! `direct/dest_port`.
//!
//! It keeps no state of its own beyond those two properties, which the
//! daemon persists itself, so it leaves `save`/`restore` at the kit's
//! defaults: nothing saved, nothing to restore.

use overlay_plugin_abi::{
    dest,
    kit::{Lookup, LookupInstance},
    prop::{check_unicast_endpoint, ip_to_in6, perm, PropStore, PropValue},
    LookupInfo, PluginError, Point, PropInfo, MODE_POINT,
};

const DEST_IP: &str = "direct/dest_ip";
const DEST_PORT: &str = "direct/dest_port";

fn dest_ip_prop() -> PropInfo {
    PropInfo::ip(DEST_IP).perm(perm::RRW)
}

fn dest_port_prop() -> PropInfo {
    PropInfo::uint(DEST_PORT).perm(perm::RRW).range(1, 65535)
}

/// The plugin object.
pub struct Direct;

impl Lookup for Direct {
    type Instance = DirectDevice;

    fn info(&self) -> LookupInfo {
        LookupInfo {
            modes: MODE_POINT,
            dest: dest::IP | dest::PORT,
            properties: vec![dest_ip_prop(), dest_port_prop()].into(),
        }
    }

    fn new_instance(&self, dest: u32, _vnetid: u64) -> Result<DirectDevice, PluginError> {
        if dest == 0 || dest & !(dest::IP | dest::PORT) != 0 {
            return Err(PluginError::not_supported(format!(
                "direct provides IP and port destinations; this encapsulation needs kinds {dest:#x}"
            )));
        }
        // One property per destination kind the encapsulation needs.
        let mut props = Vec::new();
        if dest & dest::IP != 0 {
            props.push(dest_ip_prop());
        }
        if dest & dest::PORT != 0 {
            props.push(dest_port_prop());
        }
        Ok(DirectDevice {
            dest,
            props: PropStore::new(props),
        })
    }
}

/// One device's destination.
pub struct DirectDevice {
    dest: u32,
    props: PropStore,
}

impl LookupInstance for DirectDevice {
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
        self.props
            .set_with(name, value, |v| match v {
                PropValue::Ip(ip) if ip.is_unspecified() => {
                    Err("the unspecified address cannot be a destination".into())
                }
                PropValue::Ip(ip) if ip.is_multicast() => Ok(()),
                PropValue::Ip(ip) => check_unicast_endpoint(*ip),
                _ => Ok(()),
            })
            .map(|_| ())
    }

    fn missing_required(&self) -> Vec<String> {
        self.props.missing_required()
    }

    fn start(&self) -> Result<(), PluginError> {
        let missing = self.props.missing_required();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PluginError::new(
                libc::EAGAIN,
                format!("direct needs {} before it can start", missing.join(" and ")),
            ))
        }
    }

    fn stop(&self) {}

    fn default_point(&self) -> Result<Point, PluginError> {
        let mut point = Point {
            mac: [0; 6],
            ip: [0; 16],
            port: 0,
        };
        if self.dest & dest::IP != 0 {
            let ip = self
                .props
                .value(DEST_IP)
                .and_then(|v| v.as_ip())
                .ok_or_else(|| {
                    PluginError::invalid(format!(
                        "{DEST_IP} is not set: the plugin has no destination"
                    ))
                })?;
            point.ip = ip_to_in6(ip);
        }
        if self.dest & dest::PORT != 0 {
            let port = self
                .props
                .value(DEST_PORT)
                .and_then(|v| v.as_uint())
                .ok_or_else(|| {
                    PluginError::invalid(format!(
                        "{DEST_PORT} is not set: the plugin has no destination"
                    ))
                })?;
            point.port = port as u16;
        }
        Ok(point)
    }
}

overlay_plugin_abi::export_lookup_plugin! {
    name: "direct",
    version: env!("CARGO_PKG_VERSION"),
    new: Direct,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> [u8; 16] {
        ip_to_in6(s.parse().unwrap())
    }

    #[test]
    fn point_from_properties() {
        let dev = Direct.new_instance(dest::IP | dest::PORT, 42).unwrap();
        assert_eq!(dev.properties().len(), 2);
        assert_eq!(dev.start().unwrap_err().errno, libc::EAGAIN);
        assert!(dev.default_point().is_err());
        dev.setprop(DEST_IP, &ip("10.1.0.2")).unwrap();
        assert!(dev.start().unwrap_err().msg.contains(DEST_PORT));
        dev.setprop(DEST_PORT, &4789u64.to_ne_bytes()).unwrap();
        dev.start().unwrap();
        let p = dev.default_point().unwrap();
        assert_eq!((p.ip, p.port), (ip("10.1.0.2"), 4789));
    }

    #[test]
    fn destination_checks() {
        let dev = Direct.new_instance(dest::IP | dest::PORT, 1).unwrap();
        for bad in ["::", "0.0.0.0", "2002::1", "::10.0.0.1"] {
            assert!(dev.setprop(DEST_IP, &ip(bad)).is_err(), "{bad}");
        }
        dev.setprop(DEST_IP, &ip("239.1.1.1")).unwrap();
        dev.setprop(DEST_IP, &ip("2001:db8::2")).unwrap();
        assert!(dev.setprop(DEST_PORT, &0u64.to_ne_bytes()).is_err());
        assert!(dev.setprop(DEST_PORT, &70000u64.to_ne_bytes()).is_err());
    }

    #[test]
    fn properties_follow_destination_kinds() {
        let dev = Direct.new_instance(dest::IP, 1).unwrap();
        let names: Vec<_> = dev
            .properties()
            .iter()
            .map(|p| p.name.to_string())
            .collect();
        assert_eq!(names, vec![DEST_IP]);
        assert_eq!(
            Direct.new_instance(dest::ETHERNET, 1).err().unwrap().errno,
            libc::ENOTSUP
        );
    }
}
