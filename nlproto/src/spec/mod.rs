//! The families, declared once as data.
//!
//! Every number of the protocol lives here: family ids, command numbers,
//! attribute numbers and policies, operation kinds, privileges. The
//! dispatcher ([`crate::server`]), the nlctrl handler, the client and the
//! Markdown tables of `docs/protocol.md` ([`render_family_markdown`]) all read
//! these tables, so none of them can disagree with another.
//!
//! A family is a [`FamilySpec`]; its attributes are a policy
//! (`&[AttrSpec]`) and its commands a table (`&[CommandSpec]`). Nested
//! attributes carry the policy of their contents in their [`AttrKind`].

pub mod ctrl;
pub mod handle;
pub mod overlay;
mod render;
pub mod target;

pub use render::render_family_markdown;

/// The set of operation kinds a command accepts.
///
/// A request without `NLM_F_DUMP` is a "do" request and needs one of
/// [`TRANSACTION`](OpSet::TRANSACTION), [`WRITE`](OpSet::WRITE) or
/// [`READ`](OpSet::READ); a request with `NLM_F_DUMP` needs
/// [`DUMP`](OpSet::DUMP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpSet(u8);

impl OpSet {
    /// A request answered by exactly one reply message carrying data.
    pub const TRANSACTION: OpSet = OpSet(0x1);
    /// A request that changes state and is answered only by an ack or an error.
    pub const WRITE: OpSet = OpSet(0x2);
    /// A request with `NLM_F_DUMP`: multi-part replies closed by `NLMSG_DONE`.
    pub const DUMP: OpSet = OpSet(0x4);
    /// Taking an item queued for the handle (no command of version 1 uses it).
    pub const READ: OpSet = OpSet(0x8);

    const NAMES: [(OpSet, &'static str); 4] = [
        (OpSet::TRANSACTION, "transaction"),
        (OpSet::WRITE, "write"),
        (OpSet::DUMP, "dump"),
        (OpSet::READ, "read"),
    ];

    /// Both sets together (usable in constants, unlike `|`).
    pub const fn union(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }

    /// Whether every kind of `other` is in `self`.
    pub const fn contains(self, other: OpSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// The raw bits (TRANSACTION 0x1, WRITE 0x2, DUMP 0x4, READ 0x8).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether a request with `NLM_F_DUMP` is accepted.
    pub const fn allows_dump(self) -> bool {
        self.contains(OpSet::DUMP)
    }

    /// Whether a request without `NLM_F_DUMP` is accepted.
    pub const fn allows_do(self) -> bool {
        self.0 & (OpSet::TRANSACTION.0 | OpSet::WRITE.0 | OpSet::READ.0) != 0
    }

    /// The names of the kinds in the set, in the order transaction, write,
    /// dump, read.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        OpSet::NAMES
            .into_iter()
            .filter(move |(k, _)| self.contains(*k))
            .map(|(_, n)| n)
    }
}

impl std::ops::BitOr for OpSet {
    type Output = OpSet;
    fn bitor(self, rhs: OpSet) -> OpSet {
        self.union(rhs)
    }
}

/// Who may run a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Privilege {
    /// Anyone who can open the socket.
    ReadOnly,
    /// Root or `CAP_NET_ADMIN`; reported by nlctrl as `GENL_ADMIN_PERM`.
    Admin,
}

impl Privilege {
    /// The lower-case name used in the documentation.
    pub const fn name(self) -> &'static str {
        match self {
            Privilege::ReadOnly => "read-only",
            Privilege::Admin => "admin",
        }
    }
}

/// The type of an attribute's value, with its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    /// Exactly 1 byte.
    U8,
    /// Exactly 2 bytes, native byte order.
    U16,
    /// Exactly 4 bytes, native byte order.
    U32,
    /// Exactly 8 bytes, native byte order.
    U64,
    /// A NUL-terminated UTF-8 string of at most `max` bytes before the NUL.
    Str {
        /// Longest accepted string, not counting the NUL.
        max: usize,
    },
    /// Opaque bytes, at most `max` of them.
    Binary {
        /// Longest accepted value.
        max: usize,
    },
    /// No value: presence is the information.
    Flag,
    /// Attributes described by the given policy.
    Nested(&'static [AttrSpec]),
    /// An nlctrl-style array: entries numbered 1..n, each a nested attribute
    /// described by the given policy. Entry numbers may repeat.
    NestedIndexed(&'static [AttrSpec]),
}

impl AttrKind {
    /// Whether the value holds attributes (and so carries `NLA_F_NESTED`).
    pub const fn is_nested(self) -> bool {
        matches!(self, AttrKind::Nested(_) | AttrKind::NestedIndexed(_))
    }

    /// A short name of the type as used in messages and documentation
    /// (`u32`, `string`, `nested`, ...).
    pub const fn type_name(self) -> &'static str {
        match self {
            AttrKind::U8 => "u8",
            AttrKind::U16 => "u16",
            AttrKind::U32 => "u32",
            AttrKind::U64 => "u64",
            AttrKind::Str { .. } => "string",
            AttrKind::Binary { .. } => "binary",
            AttrKind::Flag => "flag",
            AttrKind::Nested(_) => "nested",
            AttrKind::NestedIndexed(_) => "nested array",
        }
    }
}

/// One attribute of a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttrSpec {
    /// The attribute type number (`nla_type` without flags).
    pub id: u16,
    /// The protocol's name of the attribute (`PROP_NAME`).
    pub name: &'static str,
    /// The value's type and limits.
    pub kind: AttrKind,
    /// Whether the attribute may appear several times at this level (a list
    /// entry such as `PROP` inside `PROPS`). Elsewhere a repeat is refused.
    pub repeat: bool,
    /// One line of documentation.
    pub doc: &'static str,
}

impl AttrSpec {
    /// An attribute that may appear at most once per level.
    pub const fn new(id: u16, name: &'static str, kind: AttrKind, doc: &'static str) -> AttrSpec {
        AttrSpec {
            id,
            name,
            kind,
            repeat: false,
            doc,
        }
    }

    /// The same attribute, allowed to repeat (for list containers).
    pub const fn repeated(self) -> AttrSpec {
        AttrSpec {
            repeat: true,
            ..self
        }
    }
}

/// Finds the attribute numbered `id` in a policy.
pub fn find_attr(policy: &'static [AttrSpec], id: u16) -> Option<&'static AttrSpec> {
    policy.iter().find(|a| a.id == id)
}

/// One command of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// The genetlink command number.
    pub id: u8,
    /// The protocol's name of the command (`CREATE`).
    pub name: &'static str,
    /// The operation kinds the command accepts.
    pub ops: OpSet,
    /// The lowest genetlink version the command accepts (the highest is the
    /// family's version).
    pub min_version: u8,
    /// Who may run it.
    pub privilege: Privilege,
    /// Attributes that a request without `NLM_F_DUMP` must carry. Dump
    /// requests carry filters only and have no required attributes.
    pub required: &'static [u16],
    /// One line of documentation.
    pub doc: &'static str,
    /// What the daemon does with the request besides answering it.
    pub handling: Handling,
}

impl CommandSpec {
    /// The same command, its dumps produced a part at a time.
    pub const fn paced(self) -> CommandSpec {
        self.with(Handling {
            paced: true,
            ..self.handling
        })
    }

    /// The same command, its requests waiting for what they ask for.
    pub const fn waits(self) -> CommandSpec {
        self.with(Handling {
            waits: true,
            ..self.handling
        })
    }

    /// The same command, its successful requests saved in the state file.
    pub const fn saves(self) -> CommandSpec {
        self.with(Handling {
            saves: true,
            ..self.handling
        })
    }

    const fn with(self, handling: Handling) -> CommandSpec {
        CommandSpec { handling, ..self }
    }
}

/// What the daemon does with a command's requests besides answering them,
/// declared with the command so that one dispatcher acts on it (and no
/// handler decides it by the command's number). Notifications are declared
/// apart, per family ([`NotifySpec`]): every change a request makes is
/// notified, whatever the command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handling {
    /// A dump request is answered a part at a time, each part produced
    /// while the client has read all but a few (a table that may be
    /// large: it is never built whole in the daemon's memory). The
    /// connection's later requests wait for the dump's `NLMSG_DONE`.
    pub paced: bool,
    /// The request may wait before its answer (for a lookup request to
    /// arrive, up to a timeout); the connection's later requests wait
    /// with it.
    pub waits: bool,
    /// A request that succeeds changes what the state file records; the
    /// file is written before the reply is sent.
    pub saves: bool,
}

impl Handling {
    /// Answered at once, nothing saved.
    pub const PLAIN: Handling = Handling {
        paced: false,
        waits: false,
        saves: false,
    };
}

/// A multicast group of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct McastGroupSpec {
    /// The group's name.
    pub name: &'static str,
    /// The group's id, unique across families.
    pub id: u32,
    /// One line of documentation: what the group carries.
    pub doc: &'static str,
}

/// A notification a family sends to a multicast group.
///
/// Its genetlink command is the request command that caused it (`CREATE`,
/// `SETPROP`, ...) or a command number of its own that no request uses
/// (then it is not in the family's command table, as Linux lists only
/// requestable commands in `CTRL_ATTR_OPS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifySpec {
    /// The genetlink command of the notification message.
    pub cmd: u8,
    /// The protocol's name of the notification.
    pub name: &'static str,
    /// The name of the multicast group it is sent to.
    pub group: &'static str,
    /// The attributes it carries, in order.
    pub attrs: &'static [u16],
    /// One line of documentation: what caused it.
    pub doc: &'static str,
}

/// A generic-netlink family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilySpec {
    /// The name clients resolve with nlctrl.
    pub name: &'static str,
    /// The family id (`nlmsg_type` of its messages).
    pub id: u16,
    /// The current genetlink version.
    pub version: u8,
    /// Size of the family's fixed header after the genetlink header.
    pub hdrsize: u32,
    /// The highest attribute number the family reserves (reported by nlctrl).
    pub maxattr: u16,
    /// The family's attribute policy for requests and replies.
    pub attrs: &'static [AttrSpec],
    /// The family's commands.
    pub commands: &'static [CommandSpec],
    /// The family's multicast groups.
    pub mcast_groups: &'static [McastGroupSpec],
    /// The notifications the family sends to its groups.
    pub notifications: &'static [NotifySpec],
    /// One paragraph of documentation.
    pub doc: &'static str,
}

impl FamilySpec {
    /// The command numbered `id`.
    pub fn command(&self, id: u8) -> Option<&'static CommandSpec> {
        self.commands.iter().find(|c| c.id == id)
    }

    /// The command called `name`.
    pub fn command_by_name(&self, name: &str) -> Option<&'static CommandSpec> {
        self.commands.iter().find(|c| c.name == name)
    }

    /// The multicast group called `name`.
    pub fn mcast_group(&self, name: &str) -> Option<&'static McastGroupSpec> {
        self.mcast_groups.iter().find(|g| g.name == name)
    }

    /// The name of the command or notification numbered `cmd` (a
    /// notification's name when it has a number of its own).
    pub fn command_name(&self, cmd: u8) -> Option<&'static str> {
        self.command(cmd).map(|c| c.name).or_else(|| {
            self.notifications
                .iter()
                .find(|n| n.cmd == cmd)
                .map(|n| n.name)
        })
    }

    /// The top-level attribute numbered `id`.
    pub fn attr(&self, id: u16) -> Option<&'static AttrSpec> {
        find_attr(self.attrs, id)
    }

    /// The top-level attribute called `name`.
    pub fn attr_by_name(&self, name: &str) -> Option<&'static AttrSpec> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// The attribute's name followed by its number, `PROP_NAME (9)`, or the
    /// bare number when the family has no such attribute.
    pub fn attr_label(&self, id: u16) -> String {
        match self.attr(id) {
            Some(a) => format!("{} ({})", a.name, a.id),
            None => format!("attribute {id}"),
        }
    }
}

/// Every family the daemon serves, in id order.
pub static FAMILIES: &[&FamilySpec] = &[
    &ctrl::FAMILY,
    &handle::FAMILY,
    &overlay::FAMILY,
    &target::FAMILY,
];

/// The family with the given id.
pub fn family_by_id(id: u16) -> Option<&'static FamilySpec> {
    FAMILIES.iter().copied().find(|f| f.id == id)
}

/// The family with the given name.
pub fn family_by_name(name: &str) -> Option<&'static FamilySpec> {
    FAMILIES.iter().copied().find(|f| f.name == name)
}

/// The multicast group with the given id, and the family declaring it.
pub fn mcast_group_by_id(id: u32) -> Option<(&'static FamilySpec, &'static McastGroupSpec)> {
    FAMILIES
        .iter()
        .copied()
        .find_map(|f| f.mcast_groups.iter().find(|g| g.id == id).map(|g| (f, g)))
}

/// Every multicast group as `name (id)`, comma-separated (for error texts).
pub fn mcast_group_names() -> String {
    FAMILIES
        .iter()
        .flat_map(|f| f.mcast_groups.iter())
        .map(|g| format!("{} ({})", g.name, g.id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names of all families, comma-separated (for error texts).
pub fn family_names() -> String {
    FAMILIES
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn check_policy(family: &str, policy: &'static [AttrSpec], maxattr: Option<u16>) {
        let mut ids = HashSet::new();
        for a in policy {
            assert!(a.id != 0, "{family}: {} uses type 0", a.name);
            assert!(ids.insert(a.id), "{family}: {} declared twice", a.name);
            if let Some(max) = maxattr {
                assert!(a.id <= max, "{family}: {} above maxattr {max}", a.name);
            }
            assert!(!a.doc.is_empty(), "{family}: {} has no doc", a.name);
            match a.kind {
                AttrKind::Nested(p) | AttrKind::NestedIndexed(p) => check_policy(family, p, None),
                _ => {}
            }
        }
    }

    #[test]
    fn families_are_consistent() {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        let mut groups = HashSet::new();
        for f in FAMILIES {
            assert!(ids.insert(f.id));
            assert!(names.insert(f.name));
            assert!(f.name.len() <= 15, "GENL_NAMSIZ");
            check_policy(f.name, f.attrs, Some(f.maxattr));
            let mut cmds = HashSet::new();
            for c in f.commands {
                assert!(cmds.insert(c.id), "{}: command {} twice", f.name, c.id);
                assert!(c.min_version >= 1 && c.min_version <= f.version);
                assert!(c.ops.bits() != 0);
                let h = c.handling;
                assert!(
                    !h.paced || c.ops.allows_dump(),
                    "{}: {} is paced but has no dump",
                    f.name,
                    c.name
                );
                assert!(
                    !(h.waits && (h.paced || h.saves)),
                    "{}: {} waits, so it neither is paced nor saves",
                    f.name,
                    c.name
                );
                for r in c.required {
                    assert!(
                        f.attr(*r).is_some(),
                        "{}: {} requires unknown {r}",
                        f.name,
                        c.name
                    );
                }
            }
            for g in f.mcast_groups {
                assert!(groups.insert(g.id), "group id {} twice", g.id);
                assert!(g.id != 0 && g.name.len() <= 15 && !g.doc.is_empty());
            }
            for n in f.notifications {
                assert!(
                    f.mcast_group(n.group).is_some(),
                    "{}: {} sent to unknown group {}",
                    f.name,
                    n.name,
                    n.group
                );
                if let Some(c) = f.command(n.cmd) {
                    assert_eq!(
                        c.name, n.name,
                        "{}: notification {} reuses a command number",
                        f.name, n.name
                    );
                }
                for a in n.attrs {
                    assert!(
                        f.attr(*a).is_some(),
                        "{}: {} carries unknown {a}",
                        f.name,
                        n.name
                    );
                }
            }
        }
        assert_eq!(family_by_id(33).unwrap().name, "overlay");
        assert_eq!(family_by_name("overlay_handle").unwrap().id, 32);
        assert_eq!(family_by_name("nlctrl").unwrap().id, 16);
        assert!(family_by_id(17).is_none());
        assert_eq!(
            family_names(),
            "nlctrl, overlay_handle, overlay, overlay_target"
        );
    }

    #[test]
    fn opset() {
        let s = OpSet::TRANSACTION | OpSet::DUMP;
        assert!(s.allows_dump() && s.allows_do());
        assert!(!OpSet::DUMP.allows_do());
        assert!(!OpSet::WRITE.allows_dump());
        assert_eq!(s.names().collect::<Vec<_>>(), ["transaction", "dump"]);
    }
}
