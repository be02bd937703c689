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

/// `HANDLE_ATTR_PID` (u32): the PID of the handle.
pub const HANDLE_ATTR_PID: u16 = 1;
/// `HANDLE_ATTR_MCAST_GROUP` (u32): a multicast group id, as nlctrl lists
/// it in `CTRL_ATTR_MCAST_GRP_ID`.
pub const HANDLE_ATTR_MCAST_GROUP: u16 = 2;
/// Highest attribute number (3..9 are reserved for later handle
/// attributes).
pub const MAXATTR: u16 = HANDLE_ATTR_MCAST_GROUP;

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
    },
    CommandSpec {
        id: CMD_JOIN_GROUP,
        name: "JOIN_GROUP",
        ops: OpSet::WRITE,
        min_version: 1,
        privilege: Privilege::ReadOnly,
        required: &[HANDLE_ATTR_MCAST_GROUP],
        doc: "subscribe this connection to a multicast group (joining twice is not an error)",
    },
    CommandSpec {
        id: CMD_LEAVE_GROUP,
        name: "LEAVE_GROUP",
        ops: OpSet::WRITE,
        min_version: 1,
        privilege: Privilege::ReadOnly,
        required: &[HANDLE_ATTR_MCAST_GROUP],
        doc: "unsubscribe this connection from a multicast group (leaving a group not joined is not an error)",
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
    doc: "The connection itself: every connection is a handle with a PID that the daemon puts in nlmsg_pid of everything it sends on it, and the multicast groups it has joined.",
};
