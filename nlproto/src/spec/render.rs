//! Markdown rendering of a family, for `docs/protocol.md`.
//!
//! The document embeds exactly this output for every family, and a test
//! compares the two, so the tables cannot drift from the code.

use super::{AttrKind, AttrSpec, FamilySpec, Handling};
use std::fmt::Write;

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn limit(kind: AttrKind) -> String {
    match kind {
        AttrKind::U8 => "1 byte".into(),
        AttrKind::U16 => "2 bytes".into(),
        AttrKind::U32 => "4 bytes".into(),
        AttrKind::U64 => "8 bytes".into(),
        AttrKind::Str { max } => format!("max {max} + NUL"),
        AttrKind::Binary { max } => format!("max {max} bytes"),
        AttrKind::Flag => "0 bytes".into(),
        AttrKind::Nested(_) | AttrKind::NestedIndexed(_) => "see below".into(),
    }
}

fn attr_table(out: &mut String, policy: &[AttrSpec], with_repeat: bool) {
    if with_repeat {
        out.push_str("| Attr | Name | Type | Size | Repeats | Description |\n");
        out.push_str("|---:|---|---|---|---|---|\n");
    } else {
        out.push_str("| Attr | Name | Type | Size | Description |\n");
        out.push_str("|---:|---|---|---|---|\n");
    }
    for a in policy {
        let _ = write!(
            out,
            "| {} | `{}` | {} | {} |",
            a.id,
            a.name,
            a.kind.type_name(),
            limit(a.kind)
        );
        if with_repeat {
            let _ = write!(out, " {} |", if a.repeat { "yes" } else { "no" });
        }
        let _ = writeln!(out, " {} |", cell(a.doc));
    }
}

fn nested_sections(out: &mut String, policy: &'static [AttrSpec], done: &mut Vec<&'static str>) {
    for a in policy {
        let (inner, indexed) = match a.kind {
            AttrKind::Nested(p) => (p, false),
            AttrKind::NestedIndexed(p) => (p, true),
            _ => continue,
        };
        if done.contains(&a.name) {
            continue;
        }
        done.push(a.name);
        if indexed {
            let _ = writeln!(
                out,
                "`{}` ({}) is an array: its entries are nested attributes numbered 1..n, each holding:\n",
                a.name, a.id
            );
        } else {
            let _ = writeln!(out, "`{}` ({}) holds:\n", a.name, a.id);
        }
        attr_table(out, inner, true);
        out.push('\n');
        nested_sections(out, inner, done);
    }
}

/// What the daemon does besides answering, as the Handling column says it.
fn handling_text(h: Handling) -> String {
    let mut parts = Vec::new();
    if h.paced {
        parts.push("paced dump");
    }
    if h.waits {
        parts.push("waits");
    }
    if h.saves {
        parts.push("saved");
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(", ")
    }
}

/// Renders a family's commands, attributes, nested attribute contents and
/// multicast groups as Markdown tables.
pub fn render_family_markdown(family: &FamilySpec) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Family `{}`: id {}, version {}, hdrsize {}, maxattr {}.\n",
        family.name, family.id, family.version, family.hdrsize, family.maxattr
    );
    out.push_str("Commands:\n\n");
    out.push_str(
        "| Cmd | Name | Operations | Privilege | Versions | Required (non-dump) | Handling | Description |\n",
    );
    out.push_str("|---:|---|---|---|---|---|---|---|\n");
    for c in family.commands {
        let required: Vec<String> = c
            .required
            .iter()
            .map(|r| format!("`{}`", family.attr_label(*r)))
            .collect();
        let required = if required.is_empty() {
            "none".to_string()
        } else {
            required.join(", ")
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {}..={} | {} | {} | {} |",
            c.id,
            c.name,
            c.ops.names().collect::<Vec<_>>().join(" + "),
            c.privilege.name(),
            c.min_version,
            family.version,
            required,
            handling_text(c.handling),
            cell(c.doc)
        );
    }
    out.push_str("\nAttributes:\n\n");
    attr_table(&mut out, family.attrs, false);
    out.push('\n');
    nested_sections(&mut out, family.attrs, &mut Vec::new());
    if family.mcast_groups.is_empty() {
        out.push_str("Multicast groups: none.\n");
    } else {
        out.push_str("Multicast groups:\n\n| Id | Name | Carries |\n|---:|---|---|\n");
        for g in family.mcast_groups {
            let _ = writeln!(out, "| {} | `{}` | {} |", g.id, g.name, cell(g.doc));
        }
    }
    if !family.notifications.is_empty() {
        out.push_str("\nNotifications (`nlmsg_seq` 0, `nlmsg_pid` 0):\n\n");
        out.push_str("| Cmd | Name | Group | Attributes | Sent when |\n|---:|---|---|---|---|\n");
        for n in family.notifications {
            let attrs: Vec<String> = n
                .attrs
                .iter()
                .map(|a| format!("`{}`", family.attr_label(*a)))
                .collect();
            let attrs = if attrs.is_empty() {
                "none".to_string()
            } else {
                attrs.join(", ")
            };
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} | {} |",
                n.cmd,
                n.name,
                n.group,
                attrs,
                cell(n.doc)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{overlay, CommandSpec, McastGroupSpec, NotifySpec, OpSet, Privilege};

    #[test]
    fn renders_overlay() {
        let md = render_family_markdown(&overlay::FAMILY);
        assert!(md.contains("| 1 | `CREATE` | transaction | admin | 1..=1 | `NAME (2)`, `ENCAP (3)`, `SEARCH (4)`, `VNETID (5)` |"));
        assert!(md.contains("| 9 | `PROP_NAME` | string | max 63 + NUL | property name |"));
        assert!(md.contains("`PROPS` (18) holds:"));
        assert!(md.contains("| 19 | `PROP` | nested | see below | yes |"));
        assert!(md.contains("| 2 | `status` | device degraded or restored |"));
        assert!(md
            .contains("| 11 | `DEACTIVATED` | `config` | `LINKID (1)`, `NAME (2)`, `STATE (6)` |"));
    }

    #[test]
    fn renders_groups_and_escapes() {
        static F: FamilySpec = FamilySpec {
            name: "x",
            id: 99,
            version: 1,
            hdrsize: 0,
            maxattr: 0,
            attrs: &[],
            commands: &[CommandSpec {
                id: 1,
                name: "A",
                ops: OpSet::DUMP,
                min_version: 1,
                privilege: Privilege::ReadOnly,
                required: &[],
                doc: "a|b",
                handling: crate::spec::Handling::PLAIN,
            }],
            mcast_groups: &[McastGroupSpec {
                name: "events",
                id: 7,
                doc: "things that happened",
            }],
            notifications: &[NotifySpec {
                cmd: 5,
                name: "HAPPENED",
                group: "events",
                attrs: &[],
                doc: "something happened",
            }],
            doc: "",
        };
        let md = render_family_markdown(&F);
        assert!(md.contains("| 1 | `A` | dump | read-only | 1..=1 | none | - | a\\|b |"));
        assert!(md.contains("| 7 | `events` | things that happened |"));
        assert!(md.contains("| 5 | `HAPPENED` | `events` | none | something happened |"));
    }
}
