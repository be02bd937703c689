//! overlay (33): devices, properties, plugins.
//!
//! One attribute numbering serves the whole family; the nested lists
//! (`PROPS`, `PROP`, `PROP_POSSIBLE`) reuse it.

use super::{
    AttrKind, AttrSpec, CommandSpec, FamilySpec, Handling, McastGroupSpec, NotifySpec, OpSet,
    Privilege,
};

/// The family's name.
pub const NAME: &str = "overlay";
/// The family's fixed id.
pub const ID: u16 = 33;
/// The family's version.
pub const VERSION: u8 = 1;

/// `CREATE`: create a device.
pub const CMD_CREATE: u8 = 1;
/// `DELETE`: delete a device (deactivating it first).
pub const CMD_DELETE: u8 = 2;
/// `ACTIVATE`: activate a device.
pub const CMD_ACTIVATE: u8 = 3;
/// `PROPINFO`: describe a device's properties.
pub const CMD_PROPINFO: u8 = 4;
/// `GETPROP`: read a property's value.
pub const CMD_GETPROP: u8 = 5;
/// `SETPROP`: set a property's value.
pub const CMD_SETPROP: u8 = 6;
/// `STATUS`: a device's status.
pub const CMD_STATUS: u8 = 7;
/// `LIST`: one device, or all of them as a dump.
pub const CMD_LIST: u8 = 8;
/// `PLUGINS`: one loaded plugin, or all of them as a dump.
pub const CMD_PLUGINS: u8 = 9;
/// Counters of a device and of its mux.
pub const CMD_STATS: u8 = 10;
/// `DEACTIVATED` (notification only): a device stopped being active.
pub const CMD_DEACTIVATED: u8 = 11;
/// `STATUS_CHANGED` (notification only): a device became degraded or was
/// restored.
pub const CMD_STATUS_CHANGED: u8 = 12;

/// Multicast group `config`: device created, activated, deactivated,
/// deleted, property changed.
pub const GROUP_CONFIG: u32 = 1;
/// Multicast group `status`: device degraded or restored.
pub const GROUP_STATUS: u32 = 2;
/// Name of [`GROUP_CONFIG`].
pub const GROUP_CONFIG_NAME: &str = "config";
/// Name of [`GROUP_STATUS`].
pub const GROUP_STATUS_NAME: &str = "status";

/// `LINKID` (u32).
pub const ATTR_LINKID: u16 = 1;
/// `NAME` (string).
pub const ATTR_NAME: u16 = 2;
/// `ENCAP` (string).
pub const ATTR_ENCAP: u16 = 3;
/// `SEARCH` (string).
pub const ATTR_SEARCH: u16 = 4;
/// `VNETID` (u64).
pub const ATTR_VNETID: u16 = 5;
/// `STATE` (u32, `STATE_*`).
pub const ATTR_STATE: u16 = 6;
/// `STATUS` (u32, `STATUS_*`).
pub const ATTR_STATUS: u16 = 7;
/// `STATUS_MSG` (string).
pub const ATTR_STATUS_MSG: u16 = 8;
/// `PROP_NAME` (string).
pub const ATTR_PROP_NAME: u16 = 9;
/// `PROP_ID` (u32).
pub const ATTR_PROP_ID: u16 = 10;
/// `PROP_TYPE` (u32, `PROP_TYPE_*`).
pub const ATTR_PROP_TYPE: u16 = 11;
/// `PROP_PERM` (u32, `PERM_*` bits).
pub const ATTR_PROP_PERM: u16 = 12;
/// `PROP_VALUE` (binary).
pub const ATTR_PROP_VALUE: u16 = 13;
/// `PROP_DEFAULT` (binary).
pub const ATTR_PROP_DEFAULT: u16 = 14;
/// `PROP_RANGE_MIN` (u64).
pub const ATTR_PROP_RANGE_MIN: u16 = 15;
/// `PROP_RANGE_MAX` (u64).
pub const ATTR_PROP_RANGE_MAX: u16 = 16;
/// `PROP_POSSIBLE` (nested: repeated `POSSIBLE_VALUE`).
pub const ATTR_PROP_POSSIBLE: u16 = 17;
/// `PROPS` (nested: repeated `PROP`).
pub const ATTR_PROPS: u16 = 18;
/// `PROP` (nested: one property).
pub const ATTR_PROP: u16 = 19;
/// `PLUGIN_NAME` (string).
pub const ATTR_PLUGIN_NAME: u16 = 20;
/// `PLUGIN_KIND` (u32, `KIND_*`).
pub const ATTR_PLUGIN_KIND: u16 = 21;
/// `PLUGIN_VERSION` (string).
pub const ATTR_PLUGIN_VERSION: u16 = 22;
/// `PLUGIN_FILE` (string).
pub const ATTR_PLUGIN_FILE: u16 = 23;
/// `PLUGIN_ID_SIZE` (u32).
pub const ATTR_PLUGIN_ID_SIZE: u16 = 24;
/// `PLUGIN_DEST` (u32, `DEST_*` bits).
pub const ATTR_PLUGIN_DEST: u16 = 25;
/// `PLUGIN_FLAGS` (u32, `FLAG_*` bits).
pub const ATTR_PLUGIN_FLAGS: u16 = 26;
/// `PLUGIN_MODES` (u32, `MODE_*` bits).
pub const ATTR_PLUGIN_MODES: u16 = 27;
/// `POSSIBLE_VALUE` (string).
pub const ATTR_POSSIBLE_VALUE: u16 = 28;
/// `ABI_VERSION` (string).
pub const ATTR_ABI_VERSION: u16 = 29;

/// The highest attribute number of the family.
/// Counters: repeated `STAT`.
pub const ATTR_STATS: u16 = 30;
/// One counter: `STAT_NAME` and `STAT_VALUE`.
pub const ATTR_STAT: u16 = 31;
/// A counter's name (`rx_packets`, `drop_mtu`, ...).
pub const ATTR_STAT_NAME: u16 = 32;
/// A counter's value.
pub const ATTR_STAT_VALUE: u16 = 33;
/// The mux a device is attached to: `MUX_ENDPOINT` and `STATS`.
pub const ATTR_MUX: u16 = 34;
/// The mux's underlay endpoint (`udp 10.0.0.1:4789`).
pub const ATTR_MUX_ENDPOINT: u16 = 35;
/// `TEMPORARY` (flag): on CREATE, the device is not persisted across
/// daemon restarts; in LIST replies, present when the device is temporary.
pub const ATTR_TEMPORARY: u16 = 36;
/// `CACHE_ENTRIES` (u64): in STATS replies of an active dynamic-mode
/// device, the entries of its target cache now.
pub const ATTR_CACHE_ENTRIES: u16 = 37;
/// `PLUGIN_MAX_HEADER_LEN` (u32): in PLUGINS replies of an encapsulation
/// plugin, the longest header it writes in front of a frame, in bytes.
pub const ATTR_PLUGIN_MAX_HEADER_LEN: u16 = 38;
/// Highest attribute number.
pub const MAXATTR: u16 = ATTR_PLUGIN_MAX_HEADER_LEN;

/// Longest device name, not counting the NUL.
pub const NAME_MAX: usize = 31;
/// Longest property value or default, in bytes.
pub const PROP_VALUE_MAX: usize = 256;

/// `STATE`: created, not active.
pub const STATE_CREATED: u32 = 1;
/// `STATE`: active.
pub const STATE_ACTIVE: u32 = 2;

/// `STATUS`: ok.
pub const STATUS_OK: u32 = 0;
/// `STATUS`: degraded (`STATUS_MSG` says why).
pub const STATUS_DEGRADED: u32 = 1;

/// `PROP_TYPE`: signed integer, 8-byte i64.
pub const PROP_TYPE_INT: u32 = 1;
/// `PROP_TYPE`: unsigned integer, 8-byte u64.
pub const PROP_TYPE_UINT: u32 = 2;
/// `PROP_TYPE`: IP address, 16-byte in6_addr (IPv4 as ::ffff:a.b.c.d).
pub const PROP_TYPE_IP: u32 = 3;
/// `PROP_TYPE`: NUL-terminated string; the size counts the NUL.
pub const PROP_TYPE_STRING: u32 = 4;

/// The generic properties every device has, whatever its plugins, with
/// their `PROP_TYPE`, in the order `PROPINFO` lists them (before the
/// plugins' own). A client needs their types to encode values for
/// `CREATE`, before there is a device to ask.
pub const GENERIC_PROPS: &[(&str, u32)] = &[
    ("mtu", PROP_TYPE_UINT),
    ("vnetid", PROP_TYPE_UINT),
    ("encap", PROP_TYPE_STRING),
    ("search", PROP_TYPE_STRING),
    ("backend", PROP_TYPE_STRING),
    ("ifname", PROP_TYPE_STRING),
    ("srcport_min", PROP_TYPE_UINT),
    ("srcport_max", PROP_TYPE_UINT),
    ("flood", PROP_TYPE_UINT),
    ("lookup_timeout", PROP_TYPE_UINT),
    ("cache_entry_bytes", PROP_TYPE_UINT),
    ("cache_device_bytes", PROP_TYPE_UINT),
    ("cache_ttl", PROP_TYPE_UINT),
    ("cache_max_entries", PROP_TYPE_UINT),
];

/// `PROP_PERM` bit: the property must have a value before activation.
pub const PERM_REQ: u32 = 0x1;
/// `PROP_PERM` bit: readable.
pub const PERM_READ: u32 = 0x2;
/// `PROP_PERM` bit: writable.
pub const PERM_WRITE: u32 = 0x4;
/// `PROP_PERM` bit: writable while the device is active.
pub const PERM_RUNTIME: u32 = 0x8;

/// `PLUGIN_KIND`: encapsulation plugin.
pub const KIND_ENCAP: u32 = 1;
/// `PLUGIN_KIND`: lookup plugin.
pub const KIND_LOOKUP: u32 = 2;

/// `PLUGIN_DEST` bit: Ethernet destinations.
pub const DEST_ETHERNET: u32 = 0x1;
/// `PLUGIN_DEST` bit: IP destinations.
pub const DEST_IP: u32 = 0x2;
/// `PLUGIN_DEST` bit: port destinations.
pub const DEST_PORT: u32 = 0x4;

/// `PLUGIN_FLAGS` bit (encap): frames carry a VLAN tag.
pub const FLAG_VLAN_TAG: u32 = 0x1;

/// `PLUGIN_MODES` bit (lookup): point mode, a single destination.
pub const MODE_POINT: u32 = 0x1;
/// `PLUGIN_MODES` bit (lookup): dynamic mode, a MAC-keyed target cache.
pub const MODE_DYNAMIC: u32 = 0x2;

const fn s(max: usize) -> AttrKind {
    AttrKind::Str { max }
}

const LINKID: AttrSpec = AttrSpec::new(
    ATTR_LINKID,
    "LINKID",
    AttrKind::U32,
    "daemon-assigned link id (first 1, increasing, never reused)",
);
const NAME_A: AttrSpec = AttrSpec::new(
    ATTR_NAME,
    "NAME",
    s(NAME_MAX),
    "link name, 1..31 bytes plus NUL",
);
const ENCAP: AttrSpec = AttrSpec::new(ATTR_ENCAP, "ENCAP", s(31), "encapsulation plugin name");
const SEARCH: AttrSpec = AttrSpec::new(ATTR_SEARCH, "SEARCH", s(31), "lookup plugin name");
const VNETID: AttrSpec = AttrSpec::new(ATTR_VNETID, "VNETID", AttrKind::U64, "virtual network id");
const STATE: AttrSpec = AttrSpec::new(
    ATTR_STATE,
    "STATE",
    AttrKind::U32,
    "1 = created (not active), 2 = active",
);
const STATUS: AttrSpec =
    AttrSpec::new(ATTR_STATUS, "STATUS", AttrKind::U32, "0 = ok, 1 = degraded");
const STATUS_MSG: AttrSpec = AttrSpec::new(
    ATTR_STATUS_MSG,
    "STATUS_MSG",
    s(255),
    "why the device is degraded (empty when ok)",
);
const PROP_NAME: AttrSpec = AttrSpec::new(ATTR_PROP_NAME, "PROP_NAME", s(63), "property name");
const PROP_ID: AttrSpec = AttrSpec::new(
    ATTR_PROP_ID,
    "PROP_ID",
    AttrKind::U32,
    "position of the property in the device's property listing, counting from 0",
);
const PROP_TYPE: AttrSpec = AttrSpec::new(
    ATTR_PROP_TYPE,
    "PROP_TYPE",
    AttrKind::U32,
    "1 INT (8-byte i64), 2 UINT (8-byte u64), 3 IP (16-byte in6_addr), 4 STRING (NUL-terminated, size counts the NUL)",
);
const PROP_PERM: AttrSpec = AttrSpec::new(
    ATTR_PROP_PERM,
    "PROP_PERM",
    AttrKind::U32,
    "bits: REQ 0x1, READ 0x2, WRITE 0x4, RUNTIME 0x8 (writable while the device is active)",
);
const PROP_VALUE: AttrSpec = AttrSpec::new(
    ATTR_PROP_VALUE,
    "PROP_VALUE",
    AttrKind::Binary {
        max: PROP_VALUE_MAX,
    },
    "property value, encoded as PROP_TYPE says; absent = unset",
);
const PROP_DEFAULT: AttrSpec = AttrSpec::new(
    ATTR_PROP_DEFAULT,
    "PROP_DEFAULT",
    AttrKind::Binary {
        max: PROP_VALUE_MAX,
    },
    "default value; absent = no default",
);
const PROP_RANGE_MIN: AttrSpec = AttrSpec::new(
    ATTR_PROP_RANGE_MIN,
    "PROP_RANGE_MIN",
    AttrKind::U64,
    "lower bound of an INT/UINT property (inclusive; an INT's bound is an i64 in the same 8 bytes)",
);
const PROP_RANGE_MAX: AttrSpec = AttrSpec::new(
    ATTR_PROP_RANGE_MAX,
    "PROP_RANGE_MAX",
    AttrKind::U64,
    "upper bound of an INT/UINT property (inclusive)",
);
const POSSIBLE_VALUE: AttrSpec = AttrSpec::new(
    ATTR_POSSIBLE_VALUE,
    "POSSIBLE_VALUE",
    s(255),
    "one allowed value of a STRING property",
);
const POSSIBLE_POLICY: &[AttrSpec] = &[POSSIBLE_VALUE.repeated()];
const PROP_POSSIBLE: AttrSpec = AttrSpec::new(
    ATTR_PROP_POSSIBLE,
    "PROP_POSSIBLE",
    AttrKind::Nested(POSSIBLE_POLICY),
    "the allowed string values: repeated POSSIBLE_VALUE",
);
const PROP_POLICY: &[AttrSpec] = &[
    PROP_NAME,
    PROP_ID,
    PROP_TYPE,
    PROP_PERM,
    PROP_VALUE,
    PROP_DEFAULT,
    PROP_RANGE_MIN,
    PROP_RANGE_MAX,
    PROP_POSSIBLE,
];
const STAT_NAME: AttrSpec = AttrSpec::new(ATTR_STAT_NAME, "STAT_NAME", s(63), "counter name");
const STAT_VALUE: AttrSpec = AttrSpec::new(
    ATTR_STAT_VALUE,
    "STAT_VALUE",
    AttrKind::U64,
    "counter value",
);
const STAT_POLICY: &[AttrSpec] = &[STAT_NAME, STAT_VALUE];
const STAT: AttrSpec = AttrSpec::new(
    ATTR_STAT,
    "STAT",
    AttrKind::Nested(STAT_POLICY),
    "one counter: STAT_NAME and STAT_VALUE",
);
const STATS_POLICY: &[AttrSpec] = &[STAT.repeated()];
const STATS: AttrSpec = AttrSpec::new(
    ATTR_STATS,
    "STATS",
    AttrKind::Nested(STATS_POLICY),
    "counters: repeated STAT",
);
const MUX_ENDPOINT: AttrSpec = AttrSpec::new(
    ATTR_MUX_ENDPOINT,
    "MUX_ENDPOINT",
    s(127),
    "the mux's underlay endpoint, e.g. `udp 10.0.0.1:4789`",
);
const MUX_POLICY: &[AttrSpec] = &[MUX_ENDPOINT, STATS];
const MUX: AttrSpec = AttrSpec::new(
    ATTR_MUX,
    "MUX",
    AttrKind::Nested(MUX_POLICY),
    "the mux of an active device: MUX_ENDPOINT and its STATS",
);
const PROP: AttrSpec = AttrSpec::new(
    ATTR_PROP,
    "PROP",
    AttrKind::Nested(PROP_POLICY),
    "one property: PROP_NAME and PROP_VALUE (CREATE), or the PROPINFO set (PLUGINS)",
);
const PROPS_POLICY: &[AttrSpec] = &[PROP.repeated()];
const PROPS: AttrSpec = AttrSpec::new(
    ATTR_PROPS,
    "PROPS",
    AttrKind::Nested(PROPS_POLICY),
    "list of properties: repeated PROP",
);

/// The family's attribute policy.
pub const ATTRS: &[AttrSpec] = &[
    LINKID,
    NAME_A,
    ENCAP,
    SEARCH,
    VNETID,
    STATE,
    STATUS,
    STATUS_MSG,
    PROP_NAME,
    PROP_ID,
    PROP_TYPE,
    PROP_PERM,
    PROP_VALUE,
    PROP_DEFAULT,
    PROP_RANGE_MIN,
    PROP_RANGE_MAX,
    PROP_POSSIBLE,
    PROPS,
    PROP,
    AttrSpec::new(ATTR_PLUGIN_NAME, "PLUGIN_NAME", s(31), "plugin name"),
    AttrSpec::new(
        ATTR_PLUGIN_KIND,
        "PLUGIN_KIND",
        AttrKind::U32,
        "1 encap, 2 lookup",
    ),
    AttrSpec::new(
        ATTR_PLUGIN_VERSION,
        "PLUGIN_VERSION",
        s(63),
        "plugin version",
    ),
    AttrSpec::new(
        ATTR_PLUGIN_FILE,
        "PLUGIN_FILE",
        s(4095),
        "absolute path of the plugin's .so",
    ),
    AttrSpec::new(
        ATTR_PLUGIN_ID_SIZE,
        "PLUGIN_ID_SIZE",
        AttrKind::U32,
        "encap: bytes of virtual network id (1..8)",
    ),
    AttrSpec::new(
        ATTR_PLUGIN_DEST,
        "PLUGIN_DEST",
        AttrKind::U32,
        "destination kinds, bits: ETHERNET 0x1, IP 0x2, PORT 0x4",
    ),
    AttrSpec::new(
        ATTR_PLUGIN_FLAGS,
        "PLUGIN_FLAGS",
        AttrKind::U32,
        "encap flags: VLAN_TAG 0x1",
    ),
    AttrSpec::new(
        ATTR_PLUGIN_MODES,
        "PLUGIN_MODES",
        AttrKind::U32,
        "lookup modes, bits: POINT 0x1, DYNAMIC 0x2",
    ),
    POSSIBLE_VALUE,
    AttrSpec::new(
        ATTR_ABI_VERSION,
        "ABI_VERSION",
        s(31),
        "the plugin-abi version the plugin was built against",
    ),
    STATS,
    STAT,
    STAT_NAME,
    STAT_VALUE,
    MUX,
    MUX_ENDPOINT,
    AttrSpec::new(
        ATTR_TEMPORARY,
        "TEMPORARY",
        AttrKind::Flag,
        "CREATE: do not persist the device across daemon restarts; LIST: present when the device is temporary",
    ),
    AttrSpec::new(
        ATTR_CACHE_ENTRIES,
        "CACHE_ENTRIES",
        AttrKind::U64,
        "STATS of an active dynamic-mode device: the entries of its target cache now (pending, valid and drop)",
    ),
    AttrSpec::new(
        ATTR_PLUGIN_MAX_HEADER_LEN,
        "PLUGIN_MAX_HEADER_LEN",
        AttrKind::U32,
        "encap: the longest header the plugin writes in front of a frame, in bytes (the outer IP and UDP headers not counted)",
    ),
];

const fn cmd(
    id: u8,
    name: &'static str,
    ops: OpSet,
    privilege: Privilege,
    required: &'static [u16],
    doc: &'static str,
) -> CommandSpec {
    CommandSpec {
        id,
        name,
        ops,
        min_version: 1,
        privilege,
        required,
        doc,
        handling: Handling::PLAIN,
    }
}

const T: OpSet = OpSet::TRANSACTION;
const TD: OpSet = OpSet::TRANSACTION.union(OpSet::DUMP);
const W: OpSet = OpSet::WRITE;

/// The family's commands. Numbers 11 and 12 are notifications (see
/// [`NOTIFICATIONS`]); 13 and up are reserved for later commands.
pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        CMD_CREATE,
        "CREATE",
        T,
        Privilege::Admin,
        &[ATTR_NAME, ATTR_ENCAP, ATTR_SEARCH, ATTR_VNETID],
        "create a device, optionally with initial property values (PROPS); TEMPORARY keeps it out of the state file",
    ).saves(),
    cmd(
        CMD_DELETE,
        "DELETE",
        W,
        Privilege::Admin,
        &[],
        "delete a device, deactivating it first",
    ).saves(),
    cmd(
        CMD_ACTIVATE,
        "ACTIVATE",
        W,
        Privilege::Admin,
        &[],
        "activate a device",
    ).saves(),
    cmd(
        CMD_PROPINFO,
        "PROPINFO",
        TD,
        Privilege::ReadOnly,
        &[ATTR_PROP_NAME],
        "describe one property of a device, or all of them as a dump",
    ),
    cmd(
        CMD_GETPROP,
        "GETPROP",
        T,
        Privilege::ReadOnly,
        &[ATTR_PROP_NAME],
        "read a property's value",
    ),
    cmd(
        CMD_SETPROP,
        "SETPROP",
        W,
        Privilege::Admin,
        &[ATTR_PROP_NAME, ATTR_PROP_VALUE],
        "set a property's value",
    ).saves(),
    cmd(
        CMD_STATUS,
        "STATUS",
        T,
        Privilege::ReadOnly,
        &[],
        "a device's status",
    ),
    cmd(
        CMD_LIST,
        "LIST",
        TD,
        Privilege::ReadOnly,
        &[],
        "one device, or every device as a dump",
    ).paced(),
    cmd(
        CMD_PLUGINS,
        "PLUGINS",
        TD,
        Privilege::ReadOnly,
        &[ATTR_PLUGIN_NAME],
        "one loaded plugin, or every plugin as a dump",
    ),
    cmd(
        CMD_STATS,
        "STATS",
        TD,
        Privilege::ReadOnly,
        &[],
        "counters of one device and its mux, or of every device as a dump",
    ).paced(),
];

/// The family's multicast groups. Ids are unique across families.
pub const MCAST_GROUPS: &[McastGroupSpec] = &[
    McastGroupSpec {
        name: GROUP_CONFIG_NAME,
        id: GROUP_CONFIG,
        doc: "device created, activated, deactivated, deleted; property changed",
    },
    McastGroupSpec {
        name: GROUP_STATUS_NAME,
        id: GROUP_STATUS,
        doc: "device degraded or restored",
    },
];

const DEV: &[u16] = &[ATTR_LINKID, ATTR_NAME];

/// The notifications of the family, in the order a device can cause them.
pub const NOTIFICATIONS: &[NotifySpec] = &[
    NotifySpec {
        cmd: CMD_CREATE,
        name: "CREATE",
        group: GROUP_CONFIG_NAME,
        attrs: &[
            ATTR_LINKID,
            ATTR_NAME,
            ATTR_ENCAP,
            ATTR_SEARCH,
            ATTR_VNETID,
            ATTR_STATE,
            ATTR_STATUS,
            ATTR_STATUS_MSG,
        ],
        doc: "a device was created (the attributes of the CREATE reply but TEMPORARY)",
    },
    NotifySpec {
        cmd: CMD_SETPROP,
        name: "SETPROP",
        group: GROUP_CONFIG_NAME,
        attrs: &[
            ATTR_LINKID,
            ATTR_NAME,
            ATTR_PROP_NAME,
            ATTR_PROP_TYPE,
            ATTR_PROP_VALUE,
        ],
        doc: "a property was set by SETPROP; PROP_VALUE is the value set",
    },
    NotifySpec {
        cmd: CMD_ACTIVATE,
        name: "ACTIVATE",
        group: GROUP_CONFIG_NAME,
        attrs: &[ATTR_LINKID, ATTR_NAME, ATTR_STATE],
        doc: "a device was activated (STATE 2)",
    },
    NotifySpec {
        cmd: CMD_DEACTIVATED,
        name: "DEACTIVATED",
        group: GROUP_CONFIG_NAME,
        attrs: &[ATTR_LINKID, ATTR_NAME, ATTR_STATE],
        doc: "an active device was deactivated (STATE 1): by DELETE, before its DELETE notification, or at daemon exit",
    },
    NotifySpec {
        cmd: CMD_DELETE,
        name: "DELETE",
        group: GROUP_CONFIG_NAME,
        attrs: DEV,
        doc: "a device was deleted",
    },
    NotifySpec {
        cmd: CMD_STATUS_CHANGED,
        name: "STATUS_CHANGED",
        group: GROUP_STATUS_NAME,
        attrs: &[ATTR_LINKID, ATTR_NAME, ATTR_STATUS, ATTR_STATUS_MSG],
        doc: "a device became degraded (STATUS 1, STATUS_MSG says why) or was restored (STATUS 0)",
    },
];

/// The overlay family.
pub static FAMILY: FamilySpec = FamilySpec {
    name: NAME,
    id: ID,
    version: VERSION,
    hdrsize: 0,
    maxattr: MAXATTR,
    attrs: ATTRS,
    commands: COMMANDS,
    mcast_groups: MCAST_GROUPS,
    notifications: NOTIFICATIONS,
    doc: "Overlay devices, their properties, and the loaded plugins.",
};
