//! overlay_handle (32): the connection ("open instance") family.

use super::{AttrKind, AttrSpec, CommandSpec, FamilySpec, OpSet, Privilege};

/// The family's name.
pub const NAME: &str = "overlay_handle";
/// The family's fixed id.
pub const ID: u16 = 32;
/// The family's version.
pub const VERSION: u8 = 1;

/// `GET_PID`: the handle's PID.
pub const CMD_GET_PID: u8 = 1;
/// `JOIN_GROUP`: subscribe the handle to a multicast group.
pub const CMD_JOIN_GROUP: u8 = 2;
/// `LEAVE_GROUP`: unsubscribe the handle from a multicast group.
pub const CMD_LEAVE_GROUP: u8 = 3;
/// `SERVER_STATS`: the control server's counters.
pub const CMD_SERVER_STATS: u8 = 4;

/// `HANDLE_ATTR_PID` (u32): the PID of the handle.
pub const HANDLE_ATTR_PID: u16 = 1;
/// `HANDLE_ATTR_MCAST_GROUP` (u32): a multicast group id, as nlctrl lists
/// it in `CTRL_ATTR_MCAST_GRP_ID`.
pub const HANDLE_ATTR_MCAST_GROUP: u16 = 2;
/// `HANDLE_ATTR_HANDLES` (u32): handles open now.
pub const HANDLE_ATTR_HANDLES: u16 = 3;
/// `HANDLE_ATTR_STATS` (nested): repeated `HANDLE_ATTR_STAT`.
pub const HANDLE_ATTR_STATS: u16 = 4;
/// `HANDLE_ATTR_STAT` (nested): `HANDLE_ATTR_STAT_NAME` and
/// `HANDLE_ATTR_STAT_VALUE`.
pub const HANDLE_ATTR_STAT: u16 = 5;
/// `HANDLE_ATTR_STAT_NAME` (string): a counter's name.
pub const HANDLE_ATTR_STAT_NAME: u16 = 6;
/// `HANDLE_ATTR_STAT_VALUE` (u64): a counter's value.
pub const HANDLE_ATTR_STAT_VALUE: u16 = 7;
/// `HANDLE_ATTR_PACKET_THREADS` (u32): the daemon's packet threads.
pub const HANDLE_ATTR_PACKET_THREADS: u16 = 8;
/// `HANDLE_ATTR_OFFLOADS` (nested): repeated `HANDLE_ATTR_STAT`, one per
/// offload of the packet path, valued 1 when in use and 0 when not (not
/// supported by the kernel, or turned off with `--disable-offload`).
pub const HANDLE_ATTR_OFFLOADS: u16 = 9;
/// `HANDLE_ATTR_BUSY_POLL` (u32): how long, in microseconds, a packet
/// thread keeps polling after its last frame before it sleeps; 0 when it
/// sleeps at once.
pub const HANDLE_ATTR_BUSY_POLL: u16 = 10;
/// Highest attribute number.
pub const MAXATTR: u16 = HANDLE_ATTR_BUSY_POLL;

const STAT_POLICY: &[AttrSpec] = &[
    AttrSpec::new(
        HANDLE_ATTR_STAT_NAME,
        "HANDLE_ATTR_STAT_NAME",
        AttrKind::Str { max: 63 },
        "counter name",
    ),
    AttrSpec::new(
        HANDLE_ATTR_STAT_VALUE,
        "HANDLE_ATTR_STAT_VALUE",
        AttrKind::U64,
        "counter value",
    ),
];
const STAT: AttrSpec = AttrSpec::new(
    HANDLE_ATTR_STAT,
    "HANDLE_ATTR_STAT",
    AttrKind::Nested(STAT_POLICY),
    "one counter: HANDLE_ATTR_STAT_NAME and HANDLE_ATTR_STAT_VALUE",
);
const STATS_POLICY: &[AttrSpec] = &[STAT.repeated()];

/// The family's attribute policy.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::new(
        HANDLE_ATTR_PID,
        "HANDLE_ATTR_PID",
        AttrKind::U32,
        "the handle's PID: non-zero, unique while the daemon runs",
    ),
    AttrSpec::new(
        HANDLE_ATTR_MCAST_GROUP,
        "HANDLE_ATTR_MCAST_GROUP",
        AttrKind::U32,
        "a multicast group id, as nlctrl lists it (CTRL_ATTR_MCAST_GRP_ID)",
    ),
    AttrSpec::new(
        HANDLE_ATTR_HANDLES,
        "HANDLE_ATTR_HANDLES",
        AttrKind::U32,
        "handles (connections) open now, the asking one included",
    ),
    AttrSpec::new(
        HANDLE_ATTR_STATS,
        "HANDLE_ATTR_STATS",
        AttrKind::Nested(STATS_POLICY),
        "the control server's counters: repeated HANDLE_ATTR_STAT",
    ),
    STAT,
    STAT_POLICY[0],
    STAT_POLICY[1],
    AttrSpec::new(
        HANDLE_ATTR_PACKET_THREADS,
        "HANDLE_ATTR_PACKET_THREADS",
        AttrKind::U32,
        "the daemon's packet threads, which serve every active device",
    ),
    AttrSpec::new(
        HANDLE_ATTR_OFFLOADS,
        "HANDLE_ATTR_OFFLOADS",
        AttrKind::Nested(STATS_POLICY),
        "the packet path's offloads (tso, udp-gso, udp-gro, coalesce): repeated HANDLE_ATTR_STAT, 1 when in use, 0 when unsupported or turned off",
    ),
    AttrSpec::new(
        HANDLE_ATTR_BUSY_POLL,
        "HANDLE_ATTR_BUSY_POLL",
        AttrKind::U32,
        "microseconds a packet thread keeps polling after its last frame before it sleeps (overlayd --busy-poll); 0: it sleeps at once",
    ),
];

/// The family's commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        id: CMD_GET_PID,
        name: "GET_PID",
        ops: OpSet::TRANSACTION,
        min_version: 1,
        privilege: Privilege::ReadOnly,
        required: &[],
        doc: "the PID the daemon assigned to this connection",
        handling: super::Handling::PLAIN,
    },
    CommandSpec {
        id: CMD_JOIN_GROUP,
        name: "JOIN_GROUP",
        ops: OpSet::WRITE,
        min_version: 1,
        privilege: Privilege::ReadOnly,
        required: &[HANDLE_ATTR_MCAST_GROUP],
        doc: "subscribe this connection to a multicast group (joining twice is not an error)",
        handling: super::Handling::PLAIN,
    },
    CommandSpec {
        id: CMD_LEAVE_GROUP,
        name: "LEAVE_GROUP",
        ops: OpSet::WRITE,
        min_version: 1,
        privilege: Privilege::ReadOnly,
        required: &[HANDLE_ATTR_MCAST_GROUP],
        doc: "unsubscribe this connection from a multicast group (leaving a group not joined is not an error)",
        handling: super::Handling::PLAIN,
    },
    CommandSpec {
        id: CMD_SERVER_STATS,
        name: "SERVER_STATS",
        ops: OpSet::TRANSACTION,
        min_version: 1,
        privilege: Privilege::ReadOnly,
        required: &[],
        doc: "the control server's counters since the daemon started, the handles open now, and the packet path's threads, offloads and busy polling",
        handling: super::Handling::PLAIN,
    },
];

/// The overlay_handle family.
pub static FAMILY: FamilySpec = FamilySpec {
    name: NAME,
    id: ID,
    version: VERSION,
    hdrsize: 0,
    maxattr: MAXATTR,
    attrs: ATTRS,
    commands: COMMANDS,
    mcast_groups: &[],
    notifications: &[],
    doc: "The connection itself: every connection is a handle with a PID that the daemon puts in nlmsg_pid of everything it sends on it, and the multicast groups it has joined; and the counters of the server that serves every handle.",
};
