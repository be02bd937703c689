//! The daemon's objects as read from reply attributes, and their display
//! forms.
//!
//! Readers are lenient: an attribute missing from a reply shows as `--` (or
//! an unknown type) rather than failing the whole listing, so a client
//! talking to a slightly different daemon still shows what it can.

use crate::value::{format_bound, format_value, PropType};
use nlproto::spec::handle;
use nlproto::spec::overlay as ov;
use nlproto::spec::target as tg;
use nlproto::{Attr, AttrValue, AttrsExt};

/// Shown for an absent value.
pub const NONE: &str = "--";

/// A property's description (`PROPINFO` reply, or a `PROP` of `PLUGINS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropInfo {
    /// The property's name (`vxlan/listen_ip`).
    pub name: String,
    /// Its type.
    pub ty: PropType,
    /// `PERM_*` bits.
    pub perm: u32,
    /// The default value's bytes, if any.
    pub default: Option<Vec<u8>>,
    /// Lower bound of an INT/UINT range.
    pub min: Option<u64>,
    /// Upper bound of an INT/UINT range.
    pub max: Option<u64>,
    /// The allowed values of a STRING property.
    pub possible: Vec<String>,
}

impl PropInfo {
    /// Reads a property description.
    pub fn from_attrs(attrs: &[Attr]) -> PropInfo {
        PropInfo {
            name: attrs
                .get_str(ov::ATTR_PROP_NAME)
                .unwrap_or(NONE)
                .to_string(),
            ty: PropType::from_wire(attrs.get_u32(ov::ATTR_PROP_TYPE).unwrap_or(0)),
            perm: attrs.get_u32(ov::ATTR_PROP_PERM).unwrap_or(0),
            default: attrs.get_bytes(ov::ATTR_PROP_DEFAULT).map(<[u8]>::to_vec),
            min: attrs.get_u64(ov::ATTR_PROP_RANGE_MIN),
            max: attrs.get_u64(ov::ATTR_PROP_RANGE_MAX),
            possible: attrs
                .get_nested(ov::ATTR_PROP_POSSIBLE)
                .unwrap_or(&[])
                .all(ov::ATTR_POSSIBLE_VALUE)
                .filter_map(|a| match &a.value {
                    AttrValue::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// `rw`, `r-`, `-w` or `--` from the READ and WRITE bits.
    pub fn perm_text(&self) -> String {
        perm_text(self.perm)
    }

    /// `y` when the property may be written while the device is active,
    /// else `-`.
    pub fn runtime_text(&self) -> &'static str {
        if self.perm & ov::PERM_RUNTIME != 0 {
            "y"
        } else {
            "-"
        }
    }

    /// `y` when the property must be set before activation, else `-`.
    pub fn req_text(&self) -> &'static str {
        if self.perm & ov::PERM_REQ != 0 {
            "y"
        } else {
            "-"
        }
    }

    /// The default value formatted by type, or `--`.
    pub fn default_text(&self) -> String {
        match &self.default {
            Some(v) => format_value(self.ty, v),
            None => NONE.to_string(),
        }
    }

    /// The allowed values comma-separated, else the range as `min-max`,
    /// else `--`.
    pub fn possible_text(&self) -> String {
        if !self.possible.is_empty() {
            return self.possible.join(",");
        }
        match (self.min, self.max) {
            (None, None) => NONE.to_string(),
            (min, max) => format!(
                "{}-{}",
                min.map(|v| format_bound(self.ty, v)).unwrap_or_default(),
                max.map(|v| format_bound(self.ty, v)).unwrap_or_default()
            ),
        }
    }
}

/// `rw`, `r-`, `-w` or `--` from `PERM_READ` and `PERM_WRITE`.
pub fn perm_text(perm: u32) -> String {
    let r = if perm & ov::PERM_READ != 0 { 'r' } else { '-' };
    let w = if perm & ov::PERM_WRITE != 0 { 'w' } else { '-' };
    format!("{r}{w}")
}

/// A loaded plugin (`PLUGINS` reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plugin {
    /// Its name (`vxlan`).
    pub name: String,
    /// `KIND_ENCAP` or `KIND_LOOKUP`.
    pub kind: u32,
    /// Its version.
    pub version: String,
    /// The `.so` it was loaded from.
    pub file: String,
    /// The overlay-plugin-abi version it was built against.
    pub abi_version: String,
    /// The destination kinds it works with (`DEST_*` bits).
    pub dest: Option<u32>,
    /// Encap: bytes of virtual network id its header carries.
    pub id_size: Option<u32>,
    /// Encap: `FLAG_*` bits.
    pub flags: Option<u32>,
    /// Encap: the longest header it writes, in bytes.
    pub max_header_len: Option<u32>,
    /// Lookup: the modes it serves (`MODE_*` bits).
    pub modes: Option<u32>,
    /// Its properties.
    pub props: Vec<PropInfo>,
}

impl Plugin {
    /// Reads a plugin.
    pub fn from_attrs(attrs: &[Attr]) -> Plugin {
        let text = |kind| attrs.get_str(kind).unwrap_or(NONE).to_string();
        Plugin {
            name: text(ov::ATTR_PLUGIN_NAME),
            kind: attrs.get_u32(ov::ATTR_PLUGIN_KIND).unwrap_or(0),
            version: text(ov::ATTR_PLUGIN_VERSION),
            file: text(ov::ATTR_PLUGIN_FILE),
            abi_version: text(ov::ATTR_ABI_VERSION),
            dest: attrs.get_u32(ov::ATTR_PLUGIN_DEST),
            id_size: attrs.get_u32(ov::ATTR_PLUGIN_ID_SIZE),
            flags: attrs.get_u32(ov::ATTR_PLUGIN_FLAGS),
            max_header_len: attrs.get_u32(ov::ATTR_PLUGIN_MAX_HEADER_LEN),
            modes: attrs.get_u32(ov::ATTR_PLUGIN_MODES),
            props: attrs
                .get_nested(ov::ATTR_PROPS)
                .unwrap_or(&[])
                .all(ov::ATTR_PROP)
                .filter_map(|a| match &a.value {
                    AttrValue::Nested(p) => Some(PropInfo::from_attrs(p)),
                    _ => None,
                })
                .collect(),
        }
    }

    /// `encap` or `lookup`.
    pub fn kind_text(&self) -> String {
        match self.kind {
            ov::KIND_ENCAP => "encap".into(),
            ov::KIND_LOOKUP => "lookup".into(),
            n => format!("unknown({n})"),
        }
    }

    /// The destination kinds, `ethernet+ip+port` style, or `--`.
    pub fn dest_text(&self) -> String {
        bits_text(
            self.dest,
            &[
                (ov::DEST_ETHERNET, "ethernet"),
                (ov::DEST_IP, "ip"),
                (ov::DEST_PORT, "port"),
            ],
            "+",
        )
    }

    /// The lookup modes, `point,dynamic` style, or `--`.
    pub fn modes_text(&self) -> String {
        bits_text(
            self.modes,
            &[(ov::MODE_POINT, "point"), (ov::MODE_DYNAMIC, "dynamic")],
            ",",
        )
    }

    /// The encap flags, `vlan-tag` style, `none` without any, or `--`.
    pub fn flags_text(&self) -> String {
        match self.flags {
            Some(0) => "none".into(),
            f => bits_text(f, &[(ov::FLAG_VLAN_TAG, "vlan-tag")], ","),
        }
    }

    /// What the plugin declares besides its properties, one line:
    /// `destination ip+port, id 3 bytes, header 8 bytes, flags none` for
    /// an encap plugin,
    /// `destination ip+port, modes point` for a lookup plugin.
    pub fn declares_text(&self) -> String {
        let mut parts = vec![format!("destination {}", self.dest_text())];
        if self.kind == ov::KIND_ENCAP {
            let bytes =
                |n: Option<u32>| n.map_or_else(|| NONE.to_string(), |n| format!("{n} bytes"));
            parts.push(format!("id {}", bytes(self.id_size)));
            parts.push(format!("header {}", bytes(self.max_header_len)));
            parts.push(format!("flags {}", self.flags_text()));
        } else {
            parts.push(format!("modes {}", self.modes_text()));
        }
        parts.join(", ")
    }

    /// The property names comma-separated, or `--`.
    pub fn props_text(&self) -> String {
        if self.props.is_empty() {
            NONE.to_string()
        } else {
            self.props
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }
    }
}

/// The names of the bits set in `bits`, joined by `sep`; a bit without a
/// name as its hexadecimal value; `--` when absent.
fn bits_text(bits: Option<u32>, names: &[(u32, &str)], sep: &str) -> String {
    let Some(bits) = bits else {
        return NONE.to_string();
    };
    let mut out: Vec<String> = names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let unknown = names.iter().fold(bits, |rest, (b, _)| rest & !b);
    if unknown != 0 {
        out.push(format!("{unknown:#x}"));
    }
    out.join(sep)
}

/// A device (`LIST` or `CREATE` reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its name.
    pub name: String,
    /// The encapsulation plugin.
    pub encap: String,
    /// The lookup plugin.
    pub search: String,
    /// The virtual network id.
    pub vnetid: Option<u64>,
    /// `STATE_*`.
    pub state: Option<u32>,
    /// `STATUS_*`.
    pub status: Option<u32>,
    /// Why it is degraded (empty when ok).
    pub status_msg: String,
    /// Created with `create -t`: not kept across daemon restarts.
    pub temporary: bool,
}

impl Device {
    /// Reads a device.
    pub fn from_attrs(attrs: &[Attr]) -> Device {
        let text = |kind| attrs.get_str(kind).unwrap_or(NONE).to_string();
        Device {
            name: text(ov::ATTR_NAME),
            encap: text(ov::ATTR_ENCAP),
            search: text(ov::ATTR_SEARCH),
            vnetid: attrs.get_u64(ov::ATTR_VNETID),
            state: attrs.get_u32(ov::ATTR_STATE),
            status: attrs.get_u32(ov::ATTR_STATUS),
            status_msg: attrs.get_str(ov::ATTR_STATUS_MSG).unwrap_or("").to_string(),
            temporary: attrs.has(ov::ATTR_TEMPORARY),
        }
    }

    /// The virtual network id in decimal, or `--`.
    pub fn vnetid_text(&self) -> String {
        self.vnetid
            .map_or_else(|| NONE.to_string(), |v| v.to_string())
    }

    /// `created` or `active`, followed by `,temporary` for a device that
    /// is not kept across daemon restarts.
    pub fn state_text(&self) -> String {
        let state = match self.state {
            Some(ov::STATE_CREATED) => "created".into(),
            Some(ov::STATE_ACTIVE) => "active".into(),
            Some(n) => format!("unknown({n})"),
            None => NONE.into(),
        };
        if self.temporary {
            format!("{state},temporary")
        } else {
            state
        }
    }

    /// `ok` or `degraded`.
    pub fn status_text(&self) -> String {
        match self.status {
            Some(ov::STATUS_OK) => "ok".into(),
            Some(ov::STATUS_DEGRADED) => "degraded".into(),
            Some(n) => format!("unknown({n})"),
            None => NONE.into(),
        }
    }

    /// `ONLINE` or `DEGRADED` (the fault view's spelling).
    pub fn fault_status_text(&self) -> String {
        match self.status {
            Some(ov::STATUS_OK) => "ONLINE".into(),
            Some(ov::STATUS_DEGRADED) => "DEGRADED".into(),
            Some(n) => format!("UNKNOWN({n})"),
            None => NONE.into(),
        }
    }

    /// The degradation reason, or `--` when ok or empty.
    pub fn details_text(&self) -> String {
        if self.status == Some(ov::STATUS_OK) || self.status_msg.is_empty() {
            NONE.to_string()
        } else {
            self.status_msg.clone()
        }
    }
}

/// Named counters (a `STATS` attribute), in the daemon's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub Vec<(String, u64)>);

/// The prefix of the counters that count dropped packets, one per reason.
pub const DROP_PREFIX: &str = "drop_";

impl Counters {
    /// Reads the `STAT` entries of a `STATS` attribute's contents. An entry
    /// without a name or a value is skipped, and so is a name seen before
    /// (the first one counts), so that every name appears once.
    pub fn from_attrs(attrs: &[Attr]) -> Counters {
        Counters::read(
            attrs,
            [ov::ATTR_STAT, ov::ATTR_STAT_NAME, ov::ATTR_STAT_VALUE],
        )
    }

    /// Reads a `STATS` attribute's contents of the `overlay_target`
    /// family (`LOOKUP_STATS`), whose counters have the same shape under
    /// other attribute numbers, as [`Counters::from_attrs`] does.
    pub fn from_target_attrs(attrs: &[Attr]) -> Counters {
        Counters::read(
            attrs,
            [tg::ATTR_STAT, tg::ATTR_STAT_NAME, tg::ATTR_STAT_VALUE],
        )
    }

    /// Reads a nested list of `HANDLE_ATTR_STAT` entries of the
    /// `overlay_handle` family (`SERVER_STATS`).
    pub fn from_handle_attrs(attrs: &[Attr]) -> Counters {
        Counters::read(
            attrs,
            [
                handle::HANDLE_ATTR_STAT,
                handle::HANDLE_ATTR_STAT_NAME,
                handle::HANDLE_ATTR_STAT_VALUE,
            ],
        )
    }

    /// The counters under the attribute numbers of `STAT`, `STAT_NAME`
    /// and `STAT_VALUE`.
    fn read(attrs: &[Attr], [stat_id, name_id, value_id]: [u16; 3]) -> Counters {
        let mut list: Vec<(String, u64)> = Vec::new();
        for stat in attrs.all(stat_id) {
            let AttrValue::Nested(stat) = &stat.value else {
                continue;
            };
            let (Some(name), Some(value)) = (stat.get_str(name_id), stat.get_u64(value_id)) else {
                continue;
            };
            if !list.iter().any(|(n, _)| n == name) {
                list.push((name.to_string(), value));
            }
        }
        Counters(list)
    }

    /// A counter's value.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// A counter's value in decimal, or `--`.
    pub fn text(&self, name: &str) -> String {
        self.get(name)
            .map_or_else(|| NONE.to_string(), |v| v.to_string())
    }

    /// The sum of every `drop_*` counter, or `None` when there is none.
    pub fn drops(&self) -> Option<u64> {
        self.0
            .iter()
            .filter(|(n, _)| n.starts_with(DROP_PREFIX))
            .map(|(_, v)| *v)
            .reduce(u64::saturating_add)
    }

    /// [`Counters::drops`] in decimal, or `--`.
    pub fn drops_text(&self) -> String {
        self.drops()
            .map_or_else(|| NONE.to_string(), |v| v.to_string())
    }
}

/// The mux an active device sends and receives through (`MUX`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mux {
    /// Its underlay endpoint (`udp 10.0.0.1:4789`).
    pub endpoint: String,
    /// Its counters, shared by every device on it.
    pub counters: Counters,
}

/// A device's counters (`STATS` reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStats {
    /// The device's name.
    pub name: String,
    /// The device's own counters.
    pub counters: Counters,
    /// Its mux, when the device is active.
    pub mux: Option<Mux>,
}

impl DeviceStats {
    /// Reads a device's counters.
    pub fn from_attrs(attrs: &[Attr]) -> DeviceStats {
        let counters =
            |a: &[Attr]| Counters::from_attrs(a.get_nested(ov::ATTR_STATS).unwrap_or(&[]));
        DeviceStats {
            name: attrs.get_str(ov::ATTR_NAME).unwrap_or(NONE).to_string(),
            counters: counters(attrs),
            mux: attrs.get_nested(ov::ATTR_MUX).map(|m| Mux {
                endpoint: m.get_str(ov::ATTR_MUX_ENDPOINT).unwrap_or(NONE).to_string(),
                counters: counters(m),
            }),
        }
    }
}

/// The lookup service's counters over every device (`LOOKUP_STATS`
/// reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupStats {
    /// The counters (`requests`, `answers`, `timeouts`, `late`).
    pub counters: Counters,
    /// Requests waiting to be taken, when the daemon said.
    pub pending: Option<u32>,
}

impl LookupStats {
    /// Reads a `LOOKUP_STATS` reply.
    pub fn from_attrs(attrs: &[Attr]) -> LookupStats {
        LookupStats {
            counters: Counters::from_target_attrs(attrs.get_nested(tg::ATTR_STATS).unwrap_or(&[])),
            pending: attrs.get_u32(tg::ATTR_PENDING),
        }
    }
}

/// The daemon-wide figures of a `SERVER_STATS` reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStatus {
    /// Packet threads, when the daemon said.
    pub packet_threads: Option<u32>,
    /// Microseconds a packet thread polls after its last frame (0: off),
    /// when the daemon said.
    pub busy_poll: Option<u32>,
    /// Each offload of the packet path with 1 (in use) or 0.
    pub offloads: Counters,
    /// Handles (connections) open now.
    pub handles: Option<u32>,
    /// The control server's counters.
    pub counters: Counters,
}

impl ServerStatus {
    /// Reads a `SERVER_STATS` reply.
    pub fn from_attrs(attrs: &[Attr]) -> ServerStatus {
        let nested = |id| Counters::from_handle_attrs(attrs.get_nested(id).unwrap_or(&[]));
        ServerStatus {
            packet_threads: attrs.get_u32(handle::HANDLE_ATTR_PACKET_THREADS),
            busy_poll: attrs.get_u32(handle::HANDLE_ATTR_BUSY_POLL),
            offloads: nested(handle::HANDLE_ATTR_OFFLOADS),
            handles: attrs.get_u32(handle::HANDLE_ATTR_HANDLES),
            counters: nested(handle::HANDLE_ATTR_STATS),
        }
    }

    /// The offloads in use, comma-separated, or `none`.
    pub fn offloads_text(&self) -> String {
        let on: Vec<&str> = self
            .offloads
            .0
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(n, _)| n.as_str())
            .collect();
        if on.is_empty() {
            "none".to_string()
        } else {
            on.join(",")
        }
    }

    /// The busy-poll window: `off`, `250us`, `100ms`; `None` when the
    /// daemon did not say.
    pub fn busy_poll_text(&self) -> Option<String> {
        self.busy_poll.map(|us| match us {
            0 => "off".to_string(),
            us if us % 1000 == 0 => format!("{}ms", us / 1000),
            us => format!("{us}us"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn possible(values: &[&str]) -> Attr {
        Attr::nested(
            ov::ATTR_PROP_POSSIBLE,
            values
                .iter()
                .map(|v| Attr::str(ov::ATTR_POSSIBLE_VALUE, *v))
                .collect(),
        )
    }

    #[test]
    fn plugin_declarations_by_name_unknown_bits_in_hex() {
        let p = Plugin::from_attrs(&[
            Attr::u32(ov::ATTR_PLUGIN_KIND, ov::KIND_ENCAP),
            Attr::u32(ov::ATTR_PLUGIN_DEST, ov::DEST_ETHERNET | 0x10),
            Attr::u32(ov::ATTR_PLUGIN_ID_SIZE, 4),
            Attr::u32(ov::ATTR_PLUGIN_FLAGS, ov::FLAG_VLAN_TAG),
            Attr::u32(ov::ATTR_PLUGIN_MAX_HEADER_LEN, 12),
        ]);
        assert_eq!(
            p.declares_text(),
            "destination ethernet+0x10, id 4 bytes, header 12 bytes, flags vlan-tag"
        );
        // An older daemon that does not send the header length.
        let old = Plugin::from_attrs(&[Attr::u32(ov::ATTR_PLUGIN_KIND, ov::KIND_ENCAP)]);
        assert_eq!(
            old.declares_text(),
            "destination --, id --, header --, flags --"
        );
        // A daemon that sends none of them: nothing is made up.
        let q = Plugin::from_attrs(&[Attr::u32(ov::ATTR_PLUGIN_KIND, ov::KIND_LOOKUP)]);
        assert_eq!(q.declares_text(), "destination --, modes --");
        let both = Plugin::from_attrs(&[
            Attr::u32(ov::ATTR_PLUGIN_KIND, ov::KIND_LOOKUP),
            Attr::u32(ov::ATTR_PLUGIN_MODES, ov::MODE_POINT | ov::MODE_DYNAMIC),
        ]);
        assert_eq!(both.modes_text(), "point,dynamic");
    }

    #[test]
    fn prop_info_full() {
        let p = PropInfo::from_attrs(&[
            Attr::str(ov::ATTR_PROP_NAME, "mtu"),
            Attr::u32(ov::ATTR_PROP_TYPE, ov::PROP_TYPE_UINT),
            Attr::u32(
                ov::ATTR_PROP_PERM,
                ov::PERM_READ | ov::PERM_WRITE | ov::PERM_RUNTIME,
            ),
            Attr::bytes(ov::ATTR_PROP_DEFAULT, 1400u64.to_ne_bytes()),
            Attr::u64(ov::ATTR_PROP_RANGE_MIN, 576),
            Attr::u64(ov::ATTR_PROP_RANGE_MAX, 8900),
        ]);
        assert_eq!(p.name, "mtu");
        assert_eq!(p.ty, PropType::Uint);
        assert_eq!(p.perm_text(), "rw");
        assert_eq!(p.req_text(), "-");
        assert_eq!(p.default_text(), "1400");
        assert_eq!(p.possible_text(), "576-8900");
    }

    #[test]
    fn prop_info_possible_and_absent() {
        let p = PropInfo::from_attrs(&[
            Attr::str(ov::ATTR_PROP_NAME, "encap"),
            Attr::u32(ov::ATTR_PROP_TYPE, ov::PROP_TYPE_STRING),
            Attr::u32(ov::ATTR_PROP_PERM, ov::PERM_READ | ov::PERM_REQ),
            possible(&["vxlan", "geneve"]),
        ]);
        assert_eq!(p.perm_text(), "r-");
        assert_eq!(p.req_text(), "y");
        assert_eq!(p.default_text(), "--");
        assert_eq!(p.possible_text(), "vxlan,geneve");

        let p = PropInfo::from_attrs(&[Attr::str(ov::ATTR_PROP_NAME, "x")]);
        assert_eq!(p.ty, PropType::Unknown(0));
        assert_eq!(p.perm_text(), "--");
        assert_eq!(p.possible_text(), "--");
    }

    #[test]
    fn perms() {
        assert_eq!(perm_text(0), "--");
        assert_eq!(perm_text(ov::PERM_WRITE), "-w");
        assert_eq!(perm_text(ov::PERM_READ), "r-");
        assert_eq!(perm_text(0xf), "rw");
    }

    #[test]
    fn int_range_is_signed() {
        let p = PropInfo::from_attrs(&[
            Attr::u32(ov::ATTR_PROP_TYPE, ov::PROP_TYPE_INT),
            Attr::u64(ov::ATTR_PROP_RANGE_MIN, (-10i64) as u64),
            Attr::u64(ov::ATTR_PROP_RANGE_MAX, 10),
        ]);
        assert_eq!(p.possible_text(), "-10-10");
    }

    #[test]
    fn plugin() {
        let prop = |name: &str| {
            Attr::nested(
                ov::ATTR_PROP,
                vec![
                    Attr::str(ov::ATTR_PROP_NAME, name),
                    Attr::u32(ov::ATTR_PROP_TYPE, ov::PROP_TYPE_IP),
                ],
            )
        };
        let p = Plugin::from_attrs(&[
            Attr::str(ov::ATTR_PLUGIN_NAME, "vxlan"),
            Attr::u32(ov::ATTR_PLUGIN_KIND, ov::KIND_ENCAP),
            Attr::str(ov::ATTR_PLUGIN_VERSION, "1.0.0"),
            Attr::str(ov::ATTR_PLUGIN_FILE, "/x/liboverlay_vxlan.so"),
            Attr::nested(
                ov::ATTR_PROPS,
                vec![prop("vxlan/listen_ip"), prop("vxlan/x")],
            ),
        ]);
        assert_eq!(p.kind_text(), "encap");
        assert_eq!(p.props_text(), "vxlan/listen_ip,vxlan/x");
        assert_eq!(p.props[0].ty, PropType::Ip);
        let p = Plugin::from_attrs(&[Attr::u32(ov::ATTR_PLUGIN_KIND, ov::KIND_LOOKUP)]);
        assert_eq!(p.kind_text(), "lookup");
        assert_eq!(p.props_text(), "--");
        assert_eq!(p.name, "--");
    }

    #[test]
    fn device() {
        let d = Device::from_attrs(&[
            Attr::u32(ov::ATTR_LINKID, 1),
            Attr::str(ov::ATTR_NAME, "ov0"),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, 42),
            Attr::u32(ov::ATTR_STATE, ov::STATE_ACTIVE),
            Attr::u32(ov::ATTR_STATUS, ov::STATUS_DEGRADED),
            Attr::str(ov::ATTR_STATUS_MSG, "no route to 10.0.0.2"),
        ]);
        assert_eq!(d.vnetid_text(), "42");
        assert_eq!(d.state_text(), "active");
        assert_eq!(d.status_text(), "degraded");
        assert_eq!(d.fault_status_text(), "DEGRADED");
        assert_eq!(d.details_text(), "no route to 10.0.0.2");

        let mut attrs = vec![
            Attr::u32(ov::ATTR_STATE, ov::STATE_CREATED),
            Attr::u32(ov::ATTR_STATUS, ov::STATUS_OK),
            Attr::str(ov::ATTR_STATUS_MSG, ""),
        ];
        let d = Device::from_attrs(&attrs);
        assert_eq!(d.state_text(), "created");
        attrs.push(Attr::flag(ov::ATTR_TEMPORARY));
        assert_eq!(Device::from_attrs(&attrs).state_text(), "created,temporary");
        assert_eq!(d.status_text(), "ok");
        assert_eq!(d.fault_status_text(), "ONLINE");
        assert_eq!(d.details_text(), "--");
        assert_eq!(d.vnetid_text(), "--");
        let d = Device::from_attrs(&[
            Attr::u32(ov::ATTR_STATE, 9),
            Attr::u32(ov::ATTR_STATUS, ov::STATUS_DEGRADED),
        ]);
        assert_eq!(d.state_text(), "unknown(9)");
        assert_eq!(d.details_text(), "--");
    }

    fn stat(name: &str, value: u64) -> Attr {
        Attr::nested(
            ov::ATTR_STAT,
            vec![
                Attr::str(ov::ATTR_STAT_NAME, name),
                Attr::u64(ov::ATTR_STAT_VALUE, value),
            ],
        )
    }

    #[test]
    fn device_stats_with_mux() {
        let s = DeviceStats::from_attrs(&[
            Attr::u32(ov::ATTR_LINKID, 3),
            Attr::str(ov::ATTR_NAME, "ov0"),
            Attr::nested(
                ov::ATTR_STATS,
                vec![
                    stat("rx_packets", 5),
                    stat("drop_mtu", 2),
                    stat("dropped_not_a_reason", 100),
                    stat("drop_send", 3),
                    // Malformed and repeated entries are skipped.
                    Attr::nested(ov::ATTR_STAT, vec![Attr::str(ov::ATTR_STAT_NAME, "x")]),
                    Attr::u64(ov::ATTR_STAT, 1),
                    stat("rx_packets", 9),
                ],
            ),
            Attr::nested(
                ov::ATTR_MUX,
                vec![
                    Attr::str(ov::ATTR_MUX_ENDPOINT, "udp 10.0.0.1:4789"),
                    Attr::nested(ov::ATTR_STATS, vec![stat("drop_short", 7)]),
                ],
            ),
        ]);
        assert_eq!(s.name, "ov0");
        assert_eq!(
            s.counters.0,
            [
                ("rx_packets".to_string(), 5),
                ("drop_mtu".to_string(), 2),
                ("dropped_not_a_reason".to_string(), 100),
                ("drop_send".to_string(), 3),
            ]
        );
        assert_eq!(s.counters.text("rx_packets"), "5");
        assert_eq!(s.counters.text("tx_packets"), "--");
        assert_eq!(s.counters.drops(), Some(5));
        let mux = s.mux.unwrap();
        assert_eq!(mux.endpoint, "udp 10.0.0.1:4789");
        assert_eq!(mux.counters.get("drop_short"), Some(7));
    }

    #[test]
    fn device_stats_sparse() {
        let s = DeviceStats::from_attrs(&[Attr::str(ov::ATTR_NAME, "ov1")]);
        assert!(s.counters.0.is_empty());
        assert_eq!(s.counters.drops_text(), "--");
        assert_eq!(s.mux, None);
        let c = Counters(vec![("rx_bytes".into(), 1)]);
        assert_eq!(c.drops(), None);
        let c = Counters(vec![("drop_a".into(), u64::MAX), ("drop_b".into(), 1)]);
        assert_eq!(c.drops(), Some(u64::MAX), "saturates");
        let s = DeviceStats::from_attrs(&[Attr::nested(ov::ATTR_MUX, vec![])]);
        assert_eq!(s.name, "--");
        assert_eq!(
            s.mux,
            Some(Mux {
                endpoint: "--".into(),
                counters: Counters::default()
            })
        );
    }
}
