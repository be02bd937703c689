//! overlay_target (34): the target cache of each device and the lookup
//! requests it raises, for administrators and for lookup servers outside
//! the daemon.
//!
//! A device in dynamic mode asks "where does this destination MAC go?"
//! whenever a frame misses its cache. The daemon's lookup service answers
//! with the device's lookup plugin, unless the device has been handed to an
//! external server with `ASSOCIATE`: its requests are then taken by
//! target-family handles with `LOOKUP` and answered with `RESPOND` or
//! `DROP` (helped by `PKT`, `INJECT` and `RESEND`). A request is bound to
//! the handle that took it; when that handle closes, or does not answer
//! within the device's `lookup_timeout`, the request goes back to the
//! queue for another handle.

use super::{
    AttrKind, AttrSpec, CommandSpec, FamilySpec, Handling, McastGroupSpec, NotifySpec, OpSet,
    Privilege,
};

/// The family's name.
pub const NAME: &str = "overlay_target";
/// The family's fixed id.
pub const ID: u16 = 34;
/// The family's version.
pub const VERSION: u8 = 1;

/// `INFO`: what a device needs from a lookup and its state.
pub const CMD_INFO: u8 = 1;
/// `ASSOCIATE`: hand a device's lookups to external servers.
pub const CMD_ASSOCIATE: u8 = 2;
/// `DISASSOCIATE`: give a device's lookups back to its lookup plugin.
pub const CMD_DISASSOCIATE: u8 = 3;
/// `DEGRADE`: mark a device degraded with a message.
pub const CMD_DEGRADE: u8 = 4;
/// `RESTORE`: clear a degraded device.
pub const CMD_RESTORE: u8 = 5;
/// `LOOKUP`: take the next lookup request of an associated device.
pub const CMD_LOOKUP: u8 = 6;
/// `RESPOND`: answer a request with a destination.
pub const CMD_RESPOND: u8 = 7;
/// `DROP`: answer a request by dropping the frame it is about.
pub const CMD_DROP: u8 = 8;
/// `PKT`: the frame a request is about.
pub const CMD_PKT: u8 = 9;
/// `INJECT`: deliver a frame to the hosts of a device.
pub const CMD_INJECT: u8 = 10;
/// `RESEND`: send a frame down a device's transmit path.
pub const CMD_RESEND: u8 = 11;
/// `CACHE_GET`: one cache entry.
pub const CMD_CACHE_GET: u8 = 12;
/// `CACHE_SET`: set a cache entry to a destination or to drop.
pub const CMD_CACHE_SET: u8 = 13;
/// `CACHE_REMOVE`: clear a cache entry's answer.
pub const CMD_CACHE_REMOVE: u8 = 14;
/// `CACHE_FLUSH`: clear every answer of a device's cache.
pub const CMD_CACHE_FLUSH: u8 = 15;
/// `CACHE_LIST`: the answered entries of one device, or of every device,
/// as a dump.
pub const CMD_CACHE_LIST: u8 = 16;
/// `LOOKUP_STATS`: the lookup service's counters, over every device.
pub const CMD_LOOKUP_STATS: u8 = 17;

/// Multicast group `target`: cache entries set, removed or flushed by an
/// administrator, and entries a lookup plugin invalidated.
pub const GROUP_TARGET: u32 = 3;
/// Name of [`GROUP_TARGET`].
pub const GROUP_TARGET_NAME: &str = "target";

/// `LINKID` (u32).
pub const ATTR_LINKID: u16 = 1;
/// `NAME` (string): the link name, instead of `LINKID`.
pub const ATTR_NAME: u16 = 2;
/// `NEEDS` (u32, `DEST_*` bits of the overlay family).
pub const ATTR_NEEDS: u16 = 3;
/// `FLAGS` (u32): `INFO_*` bits in INFO replies, `ENTRY_*` bits for
/// cache entries.
pub const ATTR_FLAGS: u16 = 4;
/// `VNETID` (u64).
pub const ATTR_VNETID: u16 = 5;
/// `MODE` (u32, `MODE_*` of the overlay family).
pub const ATTR_MODE: u16 = 6;
/// `REQID` (u64).
pub const ATTR_REQID: u16 = 7;
/// `TIMEOUT_MS` (u32).
pub const ATTR_TIMEOUT_MS: u16 = 8;
/// `SRC_MAC` (6 bytes).
pub const ATTR_SRC_MAC: u16 = 9;
/// `DST_MAC` (6 bytes).
pub const ATTR_DST_MAC: u16 = 10;
/// `ETHERTYPE` (u16).
pub const ATTR_ETHERTYPE: u16 = 11;
/// `VLAN` (u16).
pub const ATTR_VLAN: u16 = 12;
/// `HDR_LEN` (u32).
pub const ATTR_HDR_LEN: u16 = 13;
/// `PKT_LEN` (u32).
pub const ATTR_PKT_LEN: u16 = 14;
/// `DST_TYPE` (u32, `DST_*`).
pub const ATTR_DST_TYPE: u16 = 15;
/// `MAC` (6 bytes): a cache entry's key.
pub const ATTR_MAC: u16 = 16;
/// `DEST_IP` (16-byte `in6_addr`, IPv4 v4-mapped).
pub const ATTR_DEST_IP: u16 = 17;
/// `DEST_PORT` (u16).
pub const ATTR_DEST_PORT: u16 = 18;
/// `DEST_MAC` (6 bytes).
pub const ATTR_DEST_MAC: u16 = 19;
/// `FRAME` (binary): a whole Ethernet frame.
pub const ATTR_FRAME: u16 = 20;
/// `STATUS_MSG` (string).
pub const ATTR_STATUS_MSG: u16 = 21;
/// `PENDING` (u32): requests waiting to be taken, of the device in INFO
/// replies, of every device in LOOKUP_STATS replies.
pub const ATTR_PENDING: u16 = 22;
/// `STATS` (nested): counters, repeated `STAT`, as in the overlay family.
pub const ATTR_STATS: u16 = 23;
/// `STAT` (nested): one counter, `STAT_NAME` and `STAT_VALUE`.
pub const ATTR_STAT: u16 = 24;
/// `STAT_NAME` (string): a counter's name (`requests`, `answers`, ...).
pub const ATTR_STAT_NAME: u16 = 25;
/// `STAT_VALUE` (u64): a counter's value.
pub const ATTR_STAT_VALUE: u16 = 26;
/// Highest attribute number.
pub const MAXATTR: u16 = ATTR_STAT_VALUE;

/// `FLAGS` bit in INFO: the device is active.
pub const INFO_ACTIVE: u32 = 0x1;
/// `FLAGS` bit in INFO: the device is degraded.
pub const INFO_DEGRADED: u32 = 0x2;
/// `FLAGS` bit in INFO: the device's lookups are served by external
/// servers (`ASSOCIATE`).
pub const INFO_ASSOCIATED: u32 = 0x4;

/// `FLAGS` bit of a cache entry: frames to this MAC are dropped.
pub const ENTRY_DROP: u32 = 0x1;

/// `DST_TYPE`: a unicast destination MAC.
pub const DST_UNICAST: u32 = 0;
/// `DST_TYPE`: a multicast destination MAC.
pub const DST_MULTICAST: u32 = 1;
/// `DST_TYPE`: the broadcast MAC.
pub const DST_BROADCAST: u32 = 2;

/// Default wait of `LOOKUP` without `TIMEOUT_MS`, in milliseconds.
pub const LOOKUP_TIMEOUT_DEFAULT_MS: u32 = 1000;
/// Longest wait `LOOKUP` accepts, in milliseconds.
pub const LOOKUP_TIMEOUT_MAX_MS: u32 = 60_000;
/// Largest frame `INJECT` and `RESEND` accept: the largest MTU, an
/// Ethernet header and a VLAN tag.
pub const FRAME_MAX: usize = 8900 + 18;

const fn a(id: u16, name: &'static str, kind: AttrKind, doc: &'static str) -> AttrSpec {
    AttrSpec::new(id, name, kind, doc)
}

const MAC6: AttrKind = AttrKind::Binary { max: 6 };

const STAT_POLICY: &[AttrSpec] = &[
    a(
        ATTR_STAT_NAME,
        "STAT_NAME",
        AttrKind::Str { max: 63 },
        "counter name",
    ),
    a(
        ATTR_STAT_VALUE,
        "STAT_VALUE",
        AttrKind::U64,
        "counter value",
    ),
];
const STATS_POLICY: &[AttrSpec] = &[a(
    ATTR_STAT,
    "STAT",
    AttrKind::Nested(STAT_POLICY),
    "one counter: STAT_NAME and STAT_VALUE",
)
.repeated()];

/// The family's attribute policy.
pub const ATTRS: &[AttrSpec] = &[
    a(ATTR_LINKID, "LINKID", AttrKind::U32, "the device's link id"),
    a(
        ATTR_NAME,
        "NAME",
        AttrKind::Str { max: 31 },
        "the device's link name, accepted instead of LINKID",
    ),
    a(
        ATTR_NEEDS,
        "NEEDS",
        AttrKind::U32,
        "destination kinds the device's encapsulation needs: ETHERNET 0x1, IP 0x2, PORT 0x4",
    ),
    a(
        ATTR_FLAGS,
        "FLAGS",
        AttrKind::U32,
        "INFO: ACTIVE 0x1, DEGRADED 0x2, ASSOCIATED 0x4; a cache entry: DROP 0x1",
    ),
    a(ATTR_VNETID, "VNETID", AttrKind::U64, "virtual network id"),
    a(
        ATTR_MODE,
        "MODE",
        AttrKind::U32,
        "the lookup mode: 1 point, 2 dynamic",
    ),
    a(
        ATTR_REQID,
        "REQID",
        AttrKind::U64,
        "a lookup request's id, unique while the daemon runs",
    ),
    a(
        ATTR_TIMEOUT_MS,
        "TIMEOUT_MS",
        AttrKind::U32,
        "LOOKUP: how long to wait for a request (default 1000, at most 60000)",
    ),
    a(ATTR_SRC_MAC, "SRC_MAC", MAC6, "the frame's Ethernet source"),
    a(
        ATTR_DST_MAC,
        "DST_MAC",
        MAC6,
        "the frame's Ethernet destination: the MAC being looked up",
    ),
    a(
        ATTR_ETHERTYPE,
        "ETHERTYPE",
        AttrKind::U16,
        "the frame's ethertype, after a VLAN tag",
    ),
    a(
        ATTR_VLAN,
        "VLAN",
        AttrKind::U16,
        "the VLAN id; 0 when untagged",
    ),
    a(
        ATTR_HDR_LEN,
        "HDR_LEN",
        AttrKind::U32,
        "Ethernet header length: 14, or 18 with a VLAN tag",
    ),
    a(
        ATTR_PKT_LEN,
        "PKT_LEN",
        AttrKind::U32,
        "the frame's length after the Ethernet header",
    ),
    a(
        ATTR_DST_TYPE,
        "DST_TYPE",
        AttrKind::U32,
        "0 unicast, 1 multicast, 2 broadcast",
    ),
    a(ATTR_MAC, "MAC", MAC6, "a cache entry's destination MAC"),
    a(
        ATTR_DEST_IP,
        "DEST_IP",
        AttrKind::Binary { max: 16 },
        "underlay IP of a destination, 16-byte in6_addr (IPv4 as ::ffff:a.b.c.d)",
    ),
    a(
        ATTR_DEST_PORT,
        "DEST_PORT",
        AttrKind::U16,
        "underlay UDP port of a destination",
    ),
    a(
        ATTR_DEST_MAC,
        "DEST_MAC",
        MAC6,
        "underlay Ethernet address of a destination",
    ),
    a(
        ATTR_FRAME,
        "FRAME",
        AttrKind::Binary { max: FRAME_MAX },
        "a whole Ethernet frame, header included",
    ),
    a(
        ATTR_STATUS_MSG,
        "STATUS_MSG",
        AttrKind::Str { max: 255 },
        "DEGRADE: why; INFO: the current message when degraded",
    ),
    a(
        ATTR_PENDING,
        "PENDING",
        AttrKind::U32,
        "lookup requests waiting to be taken: INFO, of the device; LOOKUP_STATS, of every device",
    ),
    a(
        ATTR_STATS,
        "STATS",
        AttrKind::Nested(STATS_POLICY),
        "LOOKUP_STATS: the lookup service's counters, repeated STAT",
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
const W: OpSet = OpSet::WRITE;
const D: OpSet = OpSet::DUMP;
const A: Privilege = Privilege::Admin;
const R: Privilege = Privilege::ReadOnly;

/// The family's commands. Every command names its device with `LINKID`
/// or `NAME`, except those that name a request with `REQID`.
pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        CMD_INFO,
        "INFO",
        T,
        R,
        &[],
        "a device's needs (NEEDS), mode, vnetid, flags and waiting requests",
    ),
    cmd(
        CMD_ASSOCIATE,
        "ASSOCIATE",
        W,
        A,
        &[],
        "hand a dynamic device's lookups to external servers (EEXIST if already associated)",
    ).saves(),
    cmd(
        CMD_DISASSOCIATE,
        "DISASSOCIATE",
        W,
        A,
        &[],
        "give a device's lookups back to its lookup plugin (EINVAL if not associated)",
    ).saves(),
    cmd(
        CMD_DEGRADE,
        "DEGRADE",
        W,
        A,
        &[ATTR_STATUS_MSG],
        "mark a device degraded with STATUS_MSG",
    ),
    cmd(
        CMD_RESTORE,
        "RESTORE",
        W,
        A,
        &[],
        "clear a device's degraded status",
    ),
    cmd(
        CMD_LOOKUP,
        "LOOKUP",
        T,
        A,
        &[],
        "take the next request of an associated device, waiting up to TIMEOUT_MS (ETIME when none came)",
    ).waits(),
    cmd(
        CMD_RESPOND,
        "RESPOND",
        W,
        A,
        &[ATTR_REQID],
        "answer a request this handle took with a destination (DEST_IP, DEST_PORT, DEST_MAC as the device needs)",
    ),
    cmd(
        CMD_DROP,
        "DROP",
        W,
        A,
        &[ATTR_REQID],
        "answer a request this handle took by dropping its frame",
    ),
    cmd(
        CMD_PKT,
        "PKT",
        T,
        A,
        &[ATTR_REQID],
        "the frame a request this handle took is about",
    ),
    cmd(
        CMD_INJECT,
        "INJECT",
        W,
        A,
        &[ATTR_FRAME],
        "deliver FRAME to the hosts of a device (named by LINKID, NAME or a REQID this handle holds)",
    ),
    cmd(
        CMD_RESEND,
        "RESEND",
        W,
        A,
        &[ATTR_FRAME],
        "send FRAME down a device's transmit path, through its cache (device as for INJECT)",
    ),
    cmd(
        CMD_CACHE_GET,
        "CACHE_GET",
        T,
        R,
        &[ATTR_MAC],
        "the answer cached for MAC",
    ),
    cmd(
        CMD_CACHE_SET,
        "CACHE_SET",
        W,
        A,
        &[ATTR_MAC],
        "set MAC's entry to a destination, or to drop with FLAGS DROP",
    ),
    cmd(
        CMD_CACHE_REMOVE,
        "CACHE_REMOVE",
        W,
        A,
        &[ATTR_MAC],
        "clear MAC's answer (the next frame asks again)",
    ),
    cmd(
        CMD_CACHE_FLUSH,
        "CACHE_FLUSH",
        W,
        A,
        &[],
        "clear every answer of a device's cache",
    ),
    cmd(
        CMD_CACHE_LIST,
        "CACHE_LIST",
        D,
        R,
        &[],
        "the answered entries of one device (LINKID or NAME), or of every active device, in MAC order",
    ).paced(),
    cmd(
        CMD_LOOKUP_STATS,
        "LOOKUP_STATS",
        T,
        R,
        &[],
        "the lookup service's counters over every device (STATS) and the requests waiting (PENDING)",
    ),
];

/// The family's multicast groups. Ids are unique across families.
pub const MCAST_GROUPS: &[McastGroupSpec] = &[McastGroupSpec {
    name: GROUP_TARGET_NAME,
    id: GROUP_TARGET,
    doc: "target cache entries set, removed or flushed with CACHE_SET, CACHE_REMOVE, CACHE_FLUSH; entries a lookup plugin invalidated (take_stale), as CACHE_REMOVE",
}];

const ENTRY: &[u16] = &[
    ATTR_LINKID,
    ATTR_NAME,
    ATTR_MAC,
    ATTR_FLAGS,
    ATTR_DEST_IP,
    ATTR_DEST_PORT,
    ATTR_DEST_MAC,
];

/// The notifications of the family.
pub const NOTIFICATIONS: &[NotifySpec] = &[
    NotifySpec {
        cmd: CMD_CACHE_SET,
        name: "CACHE_SET",
        group: GROUP_TARGET_NAME,
        attrs: ENTRY,
        doc: "an entry was set: FLAGS DROP, or the destination attributes the device needs",
    },
    NotifySpec {
        cmd: CMD_CACHE_REMOVE,
        name: "CACHE_REMOVE",
        group: GROUP_TARGET_NAME,
        attrs: &[ATTR_LINKID, ATTR_NAME, ATTR_MAC],
        doc: "an entry's answer was cleared: by CACHE_REMOVE, or because the device's lookup plugin reported it changed (take_stale)",
    },
    NotifySpec {
        cmd: CMD_CACHE_FLUSH,
        name: "CACHE_FLUSH",
        group: GROUP_TARGET_NAME,
        attrs: &[ATTR_LINKID, ATTR_NAME],
        doc: "every answer of the device's cache was cleared",
    },
];

/// The overlay_target family.
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
    doc: "The target cache of each device and its lookup requests: administration of the cache, and the interface of lookup servers outside the daemon.",
};
