//! The target cache commands (`show -t`, `cache-set`, `cache-get`,
//! `cache-remove`, `cache-flush`), in the `overlay_target` family.
//!
//! As everywhere in the CLI, every argument is checked before the first
//! request. `cache-set` with a destination also asks the device what it
//! needs (`INFO`) and refuses a destination with a part missing or extra
//! before setting anything, naming the form to write instead; a point-mode
//! device is left to the daemon, which refuses every `CACHE_SET` with
//! `ENOTSUP` and its own message.

use super::Daemon;
use crate::error::Error;
use crate::table::Table;
use crate::target::{check_needs, parse_entry, Answer, Entry, Mac};
use nlproto::spec::overlay as ov;
use nlproto::spec::target as tg;
use nlproto::{Attr, AttrsExt};

/// The columns of `show -t` and `cache-get`.
pub(super) const TARGET_COLUMNS: &[&str] = &["LINK", "TARGET", "DESTINATION"];

fn name_attr(link: &str) -> Attr {
    Attr::str(tg::ATTR_NAME, link)
}

fn mac_attr(mac: Mac) -> Attr {
    Attr::bytes(tg::ATTR_MAC, mac.0.to_vec())
}

/// Entries as the target table, sorted by link, then by MAC (an entry
/// whose MAC could not be read last), whatever order they came in.
pub(super) fn target_table(mut entries: Vec<Entry>) -> Table {
    entries.sort_by(|a, b| {
        a.link
            .cmp(&b.link)
            .then_with(|| (a.mac.is_none(), a.mac).cmp(&(b.mac.is_none(), b.mac)))
    });
    let mut t = Table::new(TARGET_COLUMNS);
    for e in &entries {
        t.push(vec![e.link.clone(), e.target_text(), e.destination_text()]);
    }
    t
}

/// `show -t`: a `CACHE_LIST` dump of one device, or of every active one.
pub(super) fn show_targets(daemon: &mut dyn Daemon, link: Option<&str>) -> Result<Table, Error> {
    let (attrs, context) = match link {
        Some(link) => (vec![name_attr(link)], format!("show -t {link}")),
        None => (vec![], "show -t".to_string()),
    };
    let replies = daemon
        .dump(tg::NAME, tg::CMD_CACHE_LIST, attrs)
        .map_err(Error::daemon(context))?;
    Ok(target_table(
        replies.iter().map(|a| Entry::from_attrs(a)).collect(),
    ))
}

/// Parses a MAC argument of `command`.
fn mac_arg(command: &str, link: &str, text: &str) -> Result<Mac, Error> {
    Mac::parse(text).map_err(|e| Error::local(format!("{command} {link}: {e}")))
}

/// `cache-get`: one `CACHE_GET`, shown as a one-row target table.
pub(super) fn get(daemon: &mut dyn Daemon, link: &str, mac: &str) -> Result<Table, Error> {
    let mac = mac_arg("cache-get", link, mac)?;
    let reply = daemon
        .transact(
            tg::NAME,
            tg::CMD_CACHE_GET,
            vec![name_attr(link), mac_attr(mac)],
        )
        .map_err(Error::daemon(format!("cache-get {link} {mac}")))?;
    Ok(target_table(vec![Entry::from_attrs(&reply)]))
}

/// `cache-set`: parses the entry, checks a destination against the
/// device's needs, then one `CACHE_SET`.
pub(super) fn set(daemon: &mut dyn Daemon, link: &str, entry: &str) -> Result<(), Error> {
    let context = format!("cache-set {link}");
    let arg = parse_entry(entry).map_err(|e| Error::local(format!("{context}: {e}")))?;
    let mut attrs = vec![name_attr(link), mac_attr(arg.mac)];
    match arg.answer {
        Answer::Drop => attrs.push(Attr::u32(tg::ATTR_FLAGS, tg::ENTRY_DROP)),
        Answer::To(dest) => {
            let info = daemon
                .transact(tg::NAME, tg::CMD_INFO, vec![name_attr(link)])
                .map_err(Error::daemon(&context))?;
            // A point-mode device takes no entries; the daemon says so.
            if info.get_u32(tg::ATTR_MODE) != Some(ov::MODE_POINT) {
                if let Some(needs) = info.get_u32(tg::ATTR_NEEDS) {
                    check_needs(&dest, needs)
                        .map_err(|e| Error::local(format!("{context}: \"{entry}\": {e}")))?;
                }
            }
            attrs.extend(dest.attrs());
        }
    }
    daemon
        .write(tg::NAME, tg::CMD_CACHE_SET, attrs)
        .map_err(Error::daemon(format!("{context} {}", arg.mac)))
}

/// `cache-remove`: one `CACHE_REMOVE`.
pub(super) fn remove(daemon: &mut dyn Daemon, link: &str, mac: &str) -> Result<(), Error> {
    let mac = mac_arg("cache-remove", link, mac)?;
    daemon
        .write(
            tg::NAME,
            tg::CMD_CACHE_REMOVE,
            vec![name_attr(link), mac_attr(mac)],
        )
        .map_err(Error::daemon(format!("cache-remove {link} {mac}")))
}

/// `cache-flush`: one `CACHE_FLUSH`.
pub(super) fn flush(daemon: &mut dyn Daemon, link: &str) -> Result<(), Error> {
    daemon
        .write(tg::NAME, tg::CMD_CACHE_FLUSH, vec![name_attr(link)])
        .map_err(Error::daemon(format!("cache-flush {link}")))
}
