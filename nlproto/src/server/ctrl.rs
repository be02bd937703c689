//! The nlctrl `CTRL_CMD_GETFAMILY` handler. It reads only the family tables,
//! so it lives here rather than in the daemon.

use super::Request;
use crate::attr::{Attr, AttrsExt};
use crate::msg::{GenlMsg, Message};
use crate::spec::ctrl::*;
use crate::spec::{self, CommandSpec, FamilySpec, Privilege};

/// The nlctrl op flags of a command: `GENL_ADMIN_PERM` for admin commands,
/// `GENL_CMD_CAP_DO` for transaction/write/read, `GENL_CMD_CAP_DUMP` for
/// dump, and always `GENL_CMD_CAP_HASPOL`.
pub fn op_flags(c: &CommandSpec) -> u32 {
    let mut flags = GENL_CMD_CAP_HASPOL;
    if c.privilege == Privilege::Admin {
        flags |= GENL_ADMIN_PERM;
    }
    if c.ops.allows_do() {
        flags |= GENL_CMD_CAP_DO;
    }
    if c.ops.allows_dump() {
        flags |= GENL_CMD_CAP_DUMP;
    }
    flags
}

/// The attributes of a `CTRL_CMD_NEWFAMILY` message describing `f`, in the
/// order Linux emits them.
pub fn family_attrs(f: &FamilySpec) -> Vec<Attr> {
    let mut attrs = vec![
        Attr::str(CTRL_ATTR_FAMILY_NAME, f.name),
        Attr::u16(CTRL_ATTR_FAMILY_ID, f.id),
        Attr::u32(CTRL_ATTR_VERSION, f.version.into()),
        Attr::u32(CTRL_ATTR_HDRSIZE, f.hdrsize),
        Attr::u32(CTRL_ATTR_MAXATTR, f.maxattr.into()),
    ];
    if !f.commands.is_empty() {
        attrs.push(Attr::indexed(
            CTRL_ATTR_OPS,
            f.commands
                .iter()
                .map(|c| {
                    vec![
                        Attr::u32(CTRL_ATTR_OP_ID, c.id.into()),
                        Attr::u32(CTRL_ATTR_OP_FLAGS, op_flags(c)),
                    ]
                })
                .collect(),
        ));
    }
    if !f.mcast_groups.is_empty() {
        attrs.push(Attr::indexed(
            CTRL_ATTR_MCAST_GROUPS,
            f.mcast_groups
                .iter()
                .map(|g| {
                    vec![
                        Attr::str(CTRL_ATTR_MCAST_GRP_NAME, g.name),
                        Attr::u32(CTRL_ATTR_MCAST_GRP_ID, g.id),
                    ]
                })
                .collect(),
        ));
    }
    attrs
}

/// Answers an nlctrl request completely: the `CTRL_CMD_NEWFAMILY` reply and
/// its ack (when asked for), the dump of every family and its `NLMSG_DONE`,
/// or the error. `pid` is the handle's PID.
pub fn ctrl_reply(req: &Request, pid: u32) -> Vec<Message> {
    if req.family.id != GENL_ID_CTRL || req.command.id != CTRL_CMD_GETFAMILY {
        return vec![req
            .fail(
                libc::EOPNOTSUPP,
                format!(
                    "family {} has no command {}",
                    req.family.name, req.command.id
                ),
            )
            .reply(pid)
            .into()];
    }
    let newfamily = |f: &FamilySpec| GenlMsg {
        cmd: CTRL_CMD_NEWFAMILY,
        ..req.reply(pid, family_attrs(f))
    };
    if req.is_dump {
        let mut out: Vec<Message> = spec::FAMILIES.iter().map(|f| newfamily(f).into()).collect();
        out.push(req.done(pid).into());
        return out;
    }
    let found = if let Some(name) = req.attrs.get_str(CTRL_ATTR_FAMILY_NAME) {
        spec::family_by_name(name)
            .ok_or_else(|| format!("no family named {name}; families: {}", spec::family_names()))
    } else if let Some(id) = req.attrs.get_u16(CTRL_ATTR_FAMILY_ID) {
        spec::family_by_id(id)
            .ok_or_else(|| format!("no family with id {id}; families: {}", spec::family_names()))
    } else {
        return vec![req
            .fail(
                libc::EINVAL,
                "name the family with CTRL_ATTR_FAMILY_NAME (2) or CTRL_ATTR_FAMILY_ID (1)",
            )
            .reply(pid)
            .into()];
    };
    match found {
        Ok(f) => {
            let mut out = vec![newfamily(f).into()];
            if req.wants_ack() {
                out.push(req.ack(pid).into());
            }
            out
        }
        Err(text) => vec![req.fail(libc::ENOENT, text).reply(pid).into()],
    }
}
