//! `pairs`: a small dynamic-mode lookup plugin for overlayd, written
//! against `overlay-plugin-abi` the way any third-party plugin is.
//!
//! The daemon keeps a target cache per device and asks the plugin, off the
//! packet path, where frames for a destination MAC it has no answer for go
//! (`lookup`). `pairs` answers from one property, `pairs/table`: a list of
//! `MAC=ADDRESS:PORT` pairs separated by spaces (IPv6 as `[ADDRESS]:PORT`).
//! A MAC not in the table, and every broadcast or multicast frame, is
//! dropped. The table can be changed while the device is active: the MACs
//! whose answer changed are handed to the daemon (`take_stale`), which
//! forgets what it cached for them and asks again at their next frame.

use overlay_plugin_abi::{
    dest,
    kit::{Lookup, LookupInstance},
    prop::{ip_to_in6, PropStore, PropValue},
    LookupAnswer, LookupInfo, LookupRequest, Mac, PluginError, Point, PropInfo, MODE_DYNAMIC,
};
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Mutex, PoisonError},
};

const TABLE: &str = "pairs/table";

fn properties() -> Vec<PropInfo> {
    vec![PropInfo::string(TABLE).default_str("").runtime()]
}

/// Reads a table: `MAC=ADDRESS:PORT` pairs separated by whitespace.
fn parse_table(text: &str) -> Result<BTreeMap<Mac, Point>, String> {
    let mut table = BTreeMap::new();
    for pair in text.split_whitespace() {
        let (mac, to) = pair
            .split_once('=')
            .ok_or_else(|| format!("'{pair}' is not MAC=ADDRESS:PORT"))?;
        let mac = Mac::parse(mac)?;
        if mac.is_group() {
            return Err(format!("{mac} is a group address, not a host's"));
        }
        let to: SocketAddr = to
            .parse()
            .map_err(|_| format!("'{to}' is not ADDRESS:PORT ([ADDRESS]:PORT for IPv6)"))?;
        if to.port() == 0 {
            return Err(format!("{to}: the port must be 1-65535"));
        }
        let point = Point {
            mac: [0; 6],
            ip: ip_to_in6(to.ip()),
            port: to.port(),
        };
        if table.insert(mac, point).is_some() {
            return Err(format!("{mac} is given twice"));
        }
    }
    Ok(table)
}

/// The plugin object.
pub struct Pairs;

impl Lookup for Pairs {
    type Instance = PairsDevice;

    fn info(&self) -> LookupInfo {
        LookupInfo {
            modes: MODE_DYNAMIC,
            dest: dest::IP | dest::PORT,
            properties: properties().into(),
        }
    }

    fn new_instance(&self, dest: u32, _vnetid: u64) -> Result<PairsDevice, PluginError> {
        if dest & !(dest::IP | dest::PORT) != 0 {
            return Err(PluginError::not_supported(format!(
                "pairs provides IP and port destinations; this encapsulation needs kinds {dest:#x}"
            )));
        }
        Ok(PairsDevice {
            props: PropStore::new(properties()),
            state: Mutex::default(),
        })
    }
}

/// One device's table.
pub struct PairsDevice {
    props: PropStore,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    table: BTreeMap<Mac, Point>,
    /// MACs whose answer changed since the daemon last asked.
    stale: Vec<[u8; 6]>,
}

impl PairsDevice {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LookupInstance for PairsDevice {
    fn mode(&self) -> u32 {
        MODE_DYNAMIC
    }

    fn properties(&self) -> Vec<PropInfo> {
        self.props.infos().to_vec()
    }

    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        self.props.get(name)
    }

    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
        let mut parsed = BTreeMap::new();
        self.props.set_with(name, value, |v| match v {
            PropValue::Str(text) => parse_table(text).map(|t| parsed = t),
            _ => Ok(()),
        })?;
        // Every MAC whose answer is new, changed or gone is stale.
        let mut state = self.state();
        let old = std::mem::replace(&mut state.table, parsed);
        let new = &state.table;
        let changed: Vec<[u8; 6]> = old
            .iter()
            .filter(|(mac, p)| new.get(mac) != Some(p))
            .map(|(mac, _)| mac.0)
            .chain(
                new.keys()
                    .filter(|mac| !old.contains_key(mac))
                    .map(|mac| mac.0),
            )
            .collect();
        state.stale.extend(changed);
        Ok(())
    }

    fn missing_required(&self) -> Vec<String> {
        self.props.missing_required()
    }

    fn start(&self) -> Result<(), PluginError> {
        Ok(())
    }

    fn stop(&self) {}

    /// Dynamic only: there is no single destination to give.
    fn default_point(&self) -> Result<Point, PluginError> {
        Err(PluginError::not_supported(
            "pairs serves dynamic mode only: it has no single destination",
        ))
    }

    fn lookup(&self, req: &LookupRequest, _frame: &[u8]) -> Result<LookupAnswer, PluginError> {
        if req.is_group() {
            return Ok(LookupAnswer::drop_frame());
        }
        Ok(match self.state().table.get(&Mac(req.dst)) {
            Some(p) => LookupAnswer::respond(*p),
            None => LookupAnswer::drop_frame(),
        })
    }

    fn take_stale(&self) -> Vec<[u8; 6]> {
        std::mem::take(&mut self.state().stale)
    }
}

overlay_plugin_abi::export_lookup_plugin! {
    name: "pairs",
    version: env!("CARGO_PKG_VERSION"),
    new: Pairs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use overlay_plugin_abi::Action;

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

    fn frame(dst: [u8; 6]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        f.resize(60, 0);
        f
    }

    fn ask(dev: &PairsDevice, dst: [u8; 6]) -> LookupAnswer {
        let f = frame(dst);
        let req = LookupRequest::parse(7, &f, 0).unwrap();
        dev.lookup(&req, &f).unwrap()
    }

    fn set(dev: &PairsDevice, table: &str) -> Result<(), PluginError> {
        let mut v = table.as_bytes().to_vec();
        v.push(0);
        dev.setprop(TABLE, &v)
    }

    #[test]
    fn answers_from_the_table_and_reports_what_changed() {
        let dev = Pairs.new_instance(dest::IP | dest::PORT, 7).unwrap();
        assert_eq!(dev.mode(), MODE_DYNAMIC);
        assert_eq!(ask(&dev, A).action, Action::DROP);
        set(
            &dev,
            "02:00:00:00:00:0a=192.0.2.10:4789 2:0:0:0:0:b=[2001:db8::b]:4789",
        )
        .unwrap();
        let a = ask(&dev, A);
        assert_eq!(a.action, Action::RESPOND);
        assert_eq!(a.points[0].ip, ip_to_in6("192.0.2.10".parse().unwrap()));
        assert_eq!(ask(&dev, [0xff; 6]).action, Action::DROP);
        assert_eq!(dev.take_stale(), vec![A, B]);
        assert!(dev.take_stale().is_empty(), "reported once");
        // A moves, B stays: only A is stale.
        set(
            &dev,
            "02:00:00:00:00:0a=192.0.2.11:4789 2:0:0:0:0:b=[2001:db8::b]:4789",
        )
        .unwrap();
        assert_eq!(dev.take_stale(), vec![A]);
        assert!(dev.default_point().is_err());
    }

    #[test]
    fn a_bad_table_is_refused_and_the_old_one_kept() {
        let dev = Pairs.new_instance(dest::IP | dest::PORT, 7).unwrap();
        set(&dev, "02:00:00:00:00:0a=192.0.2.10:4789").unwrap();
        dev.take_stale();
        for bad in [
            "02:00:00:00:00:0a",
            "02:00:00:00:00:0a=192.0.2.10",
            "01:00:5e:00:00:01=192.0.2.10:4789",
            "02:00:00:00:00:0a=192.0.2.10:0",
            "02:00:00:00:00:0a=192.0.2.10:1 02:00:00:00:00:0a=192.0.2.10:2",
        ] {
            assert!(set(&dev, bad).is_err(), "{bad}");
        }
        assert_eq!(ask(&dev, A).action, Action::RESPOND);
        assert!(dev.take_stale().is_empty());
        assert!(Pairs.new_instance(dest::ETHERNET, 1).is_err());
    }
}
