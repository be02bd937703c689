//! nlctrl (`GENL_ID_CTRL`, 16): resolves families by name.
//!
//! The numbers are Linux's; the ones netlink-packet-generic already names are
//! re-exported from it.

use super::{AttrKind, AttrSpec, CommandSpec, FamilySpec, OpSet, Privilege};

pub use netlink_packet_generic::constants::{
    CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_HDRSIZE, CTRL_ATTR_MAXATTR,
    CTRL_ATTR_MCAST_GROUPS, CTRL_ATTR_MCAST_GRP_ID, CTRL_ATTR_MCAST_GRP_NAME, CTRL_ATTR_OPS,
    CTRL_ATTR_OP_FLAGS, CTRL_ATTR_OP_ID, CTRL_ATTR_VERSION, CTRL_CMD_GETFAMILY, CTRL_CMD_NEWFAMILY,
    GENL_ID_CTRL,
};

/// The family's name.
pub const NAME: &str = "nlctrl";
/// The family's version.
pub const VERSION: u8 = 2;
/// The highest attribute number nlctrl reserves (`CTRL_ATTR_OP`).
pub const MAXATTR: u16 = 10;
/// Longest family or group name, not counting the NUL (`GENL_NAMSIZ - 1`).
pub const GENL_NAMSIZ_MAX: usize = 15;

/// Op flag: the command needs the admin privilege.
pub const GENL_ADMIN_PERM: u32 = 0x1;
/// Op flag: the command accepts requests without `NLM_F_DUMP`.
pub const GENL_CMD_CAP_DO: u32 = 0x2;
/// Op flag: the command accepts dump requests.
pub const GENL_CMD_CAP_DUMP: u32 = 0x4;
/// Op flag: the command validates its attributes against a policy.
pub const GENL_CMD_CAP_HASPOL: u32 = 0x8;

const OP_POLICY: &[AttrSpec] = &[
    AttrSpec::new(
        CTRL_ATTR_OP_ID,
        "CTRL_ATTR_OP_ID",
        AttrKind::U32,
        "command number",
    ),
    AttrSpec::new(
        CTRL_ATTR_OP_FLAGS,
        "CTRL_ATTR_OP_FLAGS",
        AttrKind::U32,
        "GENL_ADMIN_PERM 0x1, GENL_CMD_CAP_DO 0x2, GENL_CMD_CAP_DUMP 0x4, GENL_CMD_CAP_HASPOL 0x8",
    ),
];

const MCAST_POLICY: &[AttrSpec] = &[
    AttrSpec::new(
        CTRL_ATTR_MCAST_GRP_NAME,
        "CTRL_ATTR_MCAST_GRP_NAME",
        AttrKind::Str {
            max: GENL_NAMSIZ_MAX,
        },
        "group name",
    ),
    AttrSpec::new(
        CTRL_ATTR_MCAST_GRP_ID,
        "CTRL_ATTR_MCAST_GRP_ID",
        AttrKind::U32,
        "group id",
    ),
];

/// nlctrl's attribute policy.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::new(
        CTRL_ATTR_FAMILY_ID,
        "CTRL_ATTR_FAMILY_ID",
        AttrKind::U16,
        "family id",
    ),
    AttrSpec::new(
        CTRL_ATTR_FAMILY_NAME,
        "CTRL_ATTR_FAMILY_NAME",
        AttrKind::Str {
            max: GENL_NAMSIZ_MAX,
        },
        "family name",
    ),
    AttrSpec::new(
        CTRL_ATTR_VERSION,
        "CTRL_ATTR_VERSION",
        AttrKind::U32,
        "family version",
    ),
    AttrSpec::new(
        CTRL_ATTR_HDRSIZE,
        "CTRL_ATTR_HDRSIZE",
        AttrKind::U32,
        "size of the family header after the genetlink header",
    ),
    AttrSpec::new(
        CTRL_ATTR_MAXATTR,
        "CTRL_ATTR_MAXATTR",
        AttrKind::U32,
        "highest attribute number",
    ),
    AttrSpec::new(
        CTRL_ATTR_OPS,
        "CTRL_ATTR_OPS",
        AttrKind::NestedIndexed(OP_POLICY),
        "the commands: entries numbered 1..n",
    ),
    AttrSpec::new(
        CTRL_ATTR_MCAST_GROUPS,
        "CTRL_ATTR_MCAST_GROUPS",
        AttrKind::NestedIndexed(MCAST_POLICY),
        "the multicast groups: entries numbered 1..n; absent when there are none",
    ),
];

/// nlctrl's commands.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    id: CTRL_CMD_GETFAMILY,
    name: "CTRL_CMD_GETFAMILY",
    ops: OpSet::TRANSACTION.union(OpSet::DUMP),
    min_version: 1,
    privilege: Privilege::ReadOnly,
    required: &[],
    doc: "describe one family (by name or id) or, as a dump, every family; replies are CTRL_CMD_NEWFAMILY",
    handling: super::Handling::PLAIN,
}];

/// The nlctrl family.
pub static FAMILY: FamilySpec = FamilySpec {
    name: NAME,
    id: GENL_ID_CTRL,
    version: VERSION,
    hdrsize: 0,
    maxattr: MAXATTR,
    attrs: ATTRS,
    commands: COMMANDS,
    mcast_groups: &[],
    notifications: &[],
    doc: "The generic-netlink controller: resolves a family name to its id, version, commands and multicast groups.",
};
