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

/// `HANDLE_ATTR_PID` (u32): the PID of the handle.
pub const HANDLE_ATTR_PID: u16 = 1;

/// The family's attribute policy.
pub const ATTRS: &[AttrSpec] = &[AttrSpec::new(
    HANDLE_ATTR_PID,
    "HANDLE_ATTR_PID",
    AttrKind::U32,
    "the handle's PID: non-zero, unique while the daemon runs",
)];

/// The family's commands. Numbers 2 and 3 are reserved for JOIN_GROUP and
/// LEAVE_GROUP.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    id: CMD_GET_PID,
    name: "GET_PID",
    ops: OpSet::TRANSACTION,
    min_version: 1,
    privilege: Privilege::ReadOnly,
    required: &[],
    doc: "the PID the daemon assigned to this connection",
}];

/// The overlay_handle family.
pub static FAMILY: FamilySpec = FamilySpec {
    name: NAME,
    id: ID,
    version: VERSION,
    hdrsize: 0,
    maxattr: HANDLE_ATTR_PID,
    attrs: ATTRS,
    commands: COMMANDS,
    mcast_groups: &[],
    doc: "The connection itself: every connection is a handle with a PID that the daemon puts in nlmsg_pid of everything it sends on it.",
};
