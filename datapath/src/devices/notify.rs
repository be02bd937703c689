//! Change notifications: the events the registry emits, the multicast
//! messages they become, and the bounded outbound queue every connection
//! has.
//!
//! The registry records an [`Event`] for every change it makes (and
//! [`StatusTracker`] turns status changes into events; the handlers of the
//! target family record the cache changes an administrator makes, and the
//! lookup service the entries lookup plugins invalidate). After each request
//! the handlers take the events, turn each into its notification message
//! ([`Event::message`]) and the server queues that message on every
//! connection that joined the event's group ([`Event::group`]).
//!
//! A connection's [`OutQueue`] holds what could not be written yet. Replies
//! are always queued (the server stops reading requests from a connection
//! whose queue is long instead). Notifications are bounded by
//! [`NOTIFY_QUEUE_CAP`]: the first that does not fit is replaced by one
//! `NLMSG_ERROR` `-ENOBUFS`, and notifications are dropped until the queue
//! has drained completely; then delivery resumes. The subscriber learns that
//! it missed events and resynchronises with a dump, and the daemon never
//! waits for it.

use crate::devices::device::Status;
use crate::stats::Health;
use crate::target::{Answer, Mac};
use nlproto::{
    msg::overrun,
    server::notification,
    spec::{overlay as ov, target as tg},
    Attr, Emit, GenlMsg,
};
use overlay_plugin_abi::{dest, Point};
use std::collections::{HashMap, VecDeque};

/// Bytes of queued datagrams past which a connection's notifications are
/// dropped (and the one `ENOBUFS` report queued). Replies do not count
/// against it being refused; they count in the total it is compared with.
pub const NOTIFY_QUEUE_CAP: usize = 256 * 1024;

/// A change the registry made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A device was created.
    Created {
        /// Link id.
        linkid: u32,
        /// Link name.
        name: String,
        /// Encapsulation plugin.
        encap: String,
        /// Lookup plugin.
        search: String,
        /// Virtual network id.
        vnetid: u64,
    },
    /// A property was set.
    PropSet {
        /// Link id.
        linkid: u32,
        /// Link name.
        name: String,
        /// Property name.
        prop: String,
        /// Property type (`PROP_TYPE_*`).
        ptype: u32,
        /// The value set, encoded as the type says.
        value: Vec<u8>,
    },
    /// A device was activated.
    Activated {
        /// Link id.
        linkid: u32,
        /// Link name.
        name: String,
    },
    /// An active device was deactivated.
    Deactivated {
        /// Link id.
        linkid: u32,
        /// Link name.
        name: String,
    },
    /// A device was deleted.
    Deleted {
        /// Link id.
        linkid: u32,
        /// Link name.
        name: String,
    },
    /// A device's status changed (degraded, or restored to ok).
    StatusChanged {
        /// Link id.
        linkid: u32,
        /// Link name.
        name: String,
        /// The new status.
        status: Status,
    },
    /// A device's target cache changed: by an administrator, or an entry
    /// its lookup plugin invalidated.
    CacheChanged {
        /// Link id.
        linkid: u32,
        /// Link name.
        name: String,
        /// What changed.
        change: CacheChange,
    },
}

/// A change made to a target cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheChange {
    /// An entry was set (`CACHE_SET`).
    Set {
        /// The entry's MAC.
        mac: Mac,
        /// Its answer.
        answer: Answer,
        /// The destination attributes the device's encapsulation needs
        /// (`dest::*`).
        needs: u32,
    },
    /// An entry's answer was cleared (`CACHE_REMOVE`, or `take_stale`).
    Removed {
        /// The entry's MAC.
        mac: Mac,
    },
    /// Every answer was cleared (`CACHE_FLUSH`).
    Flushed,
}

impl Event {
    /// The multicast group the event is sent to.
    pub fn group(&self) -> u32 {
        match self {
            Event::StatusChanged { .. } => ov::GROUP_STATUS,
            Event::CacheChanged { .. } => tg::GROUP_TARGET,
            _ => ov::GROUP_CONFIG,
        }
    }

    /// The notification message: `nlmsg_seq` 0, `nlmsg_pid` 0, the command
    /// that caused it (or `DEACTIVATED` / `STATUS_CHANGED`), the device's
    /// `LINKID` and `NAME` first, then what changed.
    pub fn message(&self) -> GenlMsg {
        if let Event::CacheChanged {
            linkid,
            name,
            change,
        } = self
        {
            return cache_message(*linkid, name, change);
        }
        let ids = |linkid: u32, name: &str| {
            vec![
                Attr::u32(ov::ATTR_LINKID, linkid),
                Attr::str(ov::ATTR_NAME, truncate(name, ov::NAME_MAX)),
            ]
        };
        let (cmd, attrs) = match self {
            Event::Created {
                linkid,
                name,
                encap,
                search,
                vnetid,
            } => {
                let mut a = ids(*linkid, name);
                a.extend([
                    Attr::str(ov::ATTR_ENCAP, truncate(encap, 31)),
                    Attr::str(ov::ATTR_SEARCH, truncate(search, 31)),
                    Attr::u64(ov::ATTR_VNETID, *vnetid),
                    Attr::u32(ov::ATTR_STATE, ov::STATE_CREATED),
                ]);
                a.extend(status_attrs(&Status::Ok));
                (ov::CMD_CREATE, a)
            }
            Event::PropSet {
                linkid,
                name,
                prop,
                ptype,
                value,
            } => {
                let mut a = ids(*linkid, name);
                a.extend([
                    Attr::str(ov::ATTR_PROP_NAME, truncate(prop, 63)),
                    Attr::u32(ov::ATTR_PROP_TYPE, *ptype),
                ]);
                if !value.is_empty() {
                    a.push(Attr::bytes(ov::ATTR_PROP_VALUE, value.clone()));
                }
                (ov::CMD_SETPROP, a)
            }
            Event::Activated { linkid, name } => {
                let mut a = ids(*linkid, name);
                a.push(Attr::u32(ov::ATTR_STATE, ov::STATE_ACTIVE));
                (ov::CMD_ACTIVATE, a)
            }
            Event::Deactivated { linkid, name } => {
                let mut a = ids(*linkid, name);
                a.push(Attr::u32(ov::ATTR_STATE, ov::STATE_CREATED));
                (ov::CMD_DEACTIVATED, a)
            }
            Event::Deleted { linkid, name } => (ov::CMD_DELETE, ids(*linkid, name)),
            Event::StatusChanged {
                linkid,
                name,
                status,
            } => {
                let mut a = ids(*linkid, name);
                a.extend(status_attrs(status));
                (ov::CMD_STATUS_CHANGED, a)
            }
            Event::CacheChanged { .. } => unreachable!("answered above"),
        };
        notification(&ov::FAMILY, cmd, attrs)
    }
}

/// The `overlay_target` notification of a cache change.
fn cache_message(linkid: u32, name: &str, change: &CacheChange) -> GenlMsg {
    let (cmd, attrs) = match change {
        CacheChange::Set { mac, answer, needs } => (
            tg::CMD_CACHE_SET,
            cache_entry_attrs(linkid, name, mac, *answer, *needs),
        ),
        CacheChange::Removed { mac } => (
            tg::CMD_CACHE_REMOVE,
            vec![
                Attr::u32(tg::ATTR_LINKID, linkid),
                Attr::str(tg::ATTR_NAME, name),
                Attr::bytes(tg::ATTR_MAC, mac.0.to_vec()),
            ],
        ),
        CacheChange::Flushed => (
            tg::CMD_CACHE_FLUSH,
            vec![
                Attr::u32(tg::ATTR_LINKID, linkid),
                Attr::str(tg::ATTR_NAME, name),
            ],
        ),
    };
    notification(&tg::FAMILY, cmd, attrs)
}

/// The attributes of one target cache entry, in replies and
/// notifications: the device, the MAC, `FLAGS` (`DROP` or 0), and for a
/// destination the attributes the device's encapsulation `needs`.
pub fn cache_entry_attrs(
    linkid: u32,
    name: &str,
    mac: &Mac,
    answer: Answer,
    needs: u32,
) -> Vec<Attr> {
    let mut attrs = vec![
        Attr::u32(tg::ATTR_LINKID, linkid),
        Attr::str(tg::ATTR_NAME, name),
        Attr::bytes(tg::ATTR_MAC, mac.0.to_vec()),
        Attr::u32(
            tg::ATTR_FLAGS,
            if answer == Answer::Drop {
                tg::ENTRY_DROP
            } else {
                0
            },
        ),
    ];
    if let Answer::To(p) = answer {
        point_attrs(&p, needs, &mut attrs);
    }
    attrs
}

/// A destination's attributes, those the device's encapsulation needs.
pub fn point_attrs(p: &Point, needs: u32, attrs: &mut Vec<Attr>) {
    if needs & dest::IP != 0 {
        attrs.push(Attr::bytes(tg::ATTR_DEST_IP, p.ip.to_vec()));
    }
    if needs & dest::PORT != 0 {
        attrs.push(Attr::u16(tg::ATTR_DEST_PORT, p.port));
    }
    if needs & dest::ETHERNET != 0 {
        attrs.push(Attr::bytes(tg::ATTR_DEST_MAC, p.mac.to_vec()));
    }
}

/// `STATUS` and `STATUS_MSG` of a status.
pub fn status_attrs(status: &Status) -> Vec<Attr> {
    match status {
        Status::Ok => vec![
            Attr::u32(ov::ATTR_STATUS, ov::STATUS_OK),
            Attr::str(ov::ATTR_STATUS_MSG, ""),
        ],
        Status::Degraded(msg) => vec![
            Attr::u32(ov::ATTR_STATUS, ov::STATUS_DEGRADED),
            Attr::str(ov::ATTR_STATUS_MSG, truncate(msg, 255)),
        ],
    }
}

/// Cuts a string to at most `max` bytes on a character boundary, so that a
/// message never violates the family's own policy.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Remembers the status last reported for each device, to turn status
/// changes made anywhere (a plugin call that panicked, a restore) into
/// [`Event::StatusChanged`].
#[derive(Debug, Default)]
pub struct StatusTracker {
    /// Per link id: the health version and status last seen, and the
    /// round that last saw the device.
    reported: HashMap<u32, Seen>,
    round: u64,
}

#[derive(Debug)]
struct Seen {
    version: u64,
    status: Status,
    round: u64,
}

impl StatusTracker {
    /// Compares the devices' statuses with those last seen and returns an
    /// event for each that changed, in the order given (link-id order). A
    /// device seen for the first time is recorded without an event (its
    /// CREATE notification carries its status); devices no longer present
    /// are forgotten. A device whose health version did not move is
    /// skipped without reading its fault, so that a daemon with thousands
    /// of devices does not copy every status after every request.
    pub fn sync<'a>(
        &mut self,
        devices: impl IntoIterator<Item = (u32, &'a str, &'a Health)>,
    ) -> Vec<Event> {
        self.round += 1;
        let round = self.round;
        let mut events = Vec::new();
        let mut present = 0usize;
        for (linkid, name, health) in devices {
            present += 1;
            let version = health.version();
            match self.reported.get_mut(&linkid) {
                Some(seen) if seen.version == version => seen.round = round,
                Some(seen) => {
                    let status = status_of(health);
                    if seen.status != status {
                        events.push(Event::StatusChanged {
                            linkid,
                            name: name.to_string(),
                            status: status.clone(),
                        });
                    }
                    *seen = Seen {
                        version,
                        status,
                        round,
                    };
                }
                None => {
                    let status = status_of(health);
                    self.reported.insert(
                        linkid,
                        Seen {
                            version,
                            status,
                            round,
                        },
                    );
                }
            }
        }
        if self.reported.len() != present {
            self.reported.retain(|_, s| s.round == round);
        }
        events
    }
}

/// The status a device's health stands for.
pub fn status_of(health: &Health) -> Status {
    match health.fault() {
        None => Status::Ok,
        Some(msg) => Status::Degraded(msg),
    }
}

/// What became of a notification offered to an [`OutQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued.
    Queued,
    /// It did not fit: the `ENOBUFS` report was queued instead.
    Overrun,
    /// Dropped: an overrun was reported and the queue has not drained yet.
    Dropped,
}

/// A connection's outbound datagrams, in order.
#[derive(Debug, Default)]
pub struct OutQueue {
    datagrams: VecDeque<Vec<u8>>,
    bytes: usize,
    overrun: bool,
}

impl OutQueue {
    /// An empty queue.
    pub fn new() -> OutQueue {
        OutQueue::default()
    }

    /// Queues a reply datagram (never refused).
    pub fn push_reply(&mut self, datagram: Vec<u8>) {
        self.bytes += datagram.len();
        self.datagrams.push_back(datagram);
    }

    /// Offers a notification datagram, subject to [`NOTIFY_QUEUE_CAP`].
    pub fn push_notification(&mut self, datagram: Vec<u8>) -> Delivery {
        if self.overrun {
            return Delivery::Dropped;
        }
        if self.bytes + datagram.len() > NOTIFY_QUEUE_CAP {
            self.overrun = true;
            self.push_reply(overrun().emit());
            return Delivery::Overrun;
        }
        self.push_reply(datagram);
        Delivery::Queued
    }

    /// The next datagram to send.
    pub fn front(&self) -> Option<&[u8]> {
        self.datagrams.front().map(Vec::as_slice)
    }

    /// The datagrams queued, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.datagrams.iter().map(Vec::as_slice)
    }

    /// Removes the datagram just sent. Once the queue is empty after an
    /// overrun, notifications are accepted again.
    pub fn pop(&mut self) {
        if let Some(d) = self.datagrams.pop_front() {
            self.bytes -= d.len();
        }
        if self.datagrams.is_empty() {
            self.overrun = false;
        }
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Whether notifications are being dropped after an overrun.
    pub fn overrun(&self) -> bool {
        self.overrun
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlproto::{msg::NLMSG_ERROR, AttrsExt, Message};

    fn parse(bytes: &[u8]) -> Message {
        Message::parse(bytes, ov::ATTRS, nlproto::attr::Unknown::Reject).unwrap()
    }

    #[test]
    fn messages_follow_the_spec() {
        let events = [
            Event::Created {
                linkid: 4,
                name: "ov0".into(),
                encap: "vxlan".into(),
                search: "direct".into(),
                vnetid: 42,
            },
            Event::PropSet {
                linkid: 4,
                name: "ov0".into(),
                prop: "mtu".into(),
                ptype: ov::PROP_TYPE_UINT,
                value: 1500u64.to_ne_bytes().to_vec(),
            },
            Event::Activated {
                linkid: 4,
                name: "ov0".into(),
            },
            Event::Deactivated {
                linkid: 4,
                name: "ov0".into(),
            },
            Event::Deleted {
                linkid: 4,
                name: "ov0".into(),
            },
            Event::StatusChanged {
                linkid: 4,
                name: "ov0".into(),
                status: Status::Degraded("plugin direct panicked".into()),
            },
        ];
        for e in &events {
            let m = e.message();
            let spec = ov::NOTIFICATIONS
                .iter()
                .find(|n| n.cmd == m.cmd)
                .expect("declared");
            // The attributes are exactly the declared ones, in order.
            let kinds: Vec<u16> = m.attrs.iter().map(|a| a.kind).collect();
            assert_eq!(kinds, spec.attrs, "{}", spec.name);
            assert_eq!(
                ov::FAMILY.mcast_group(spec.group).unwrap().id,
                e.group(),
                "{}",
                spec.name
            );
            assert_eq!((m.seq, m.pid, m.flags), (0, 0, 0));
            // And they pass the family's own policy.
            assert_eq!(parse(&m.emit()), Message::Genl(m.clone()));
        }
        let m = events[5].message();
        assert_eq!(m.cmd, ov::CMD_STATUS_CHANGED);
        assert_eq!(m.attrs.get_u32(ov::ATTR_STATUS), Some(ov::STATUS_DEGRADED));
        assert_eq!(
            m.attrs.get_str(ov::ATTR_STATUS_MSG),
            Some("plugin direct panicked")
        );
        assert_eq!(events[5].group(), ov::GROUP_STATUS);
    }

    #[test]
    fn status_changes_become_events() {
        let mut t = StatusTracker::default();
        let (a, b) = (Health::default(), Health::default());
        let bad = Status::Degraded("lookup plugin panicked".into());
        b.degrade("lookup plugin panicked");
        // First sight: recorded, no event, even when already degraded.
        assert!(t.sync([(1, "a", &a), (2, "b", &b)]).is_empty());
        assert!(t.sync([(1, "a", &a), (2, "b", &b)]).is_empty());
        // Degraded, then restored.
        a.degrade("lookup plugin panicked");
        let e = t.sync([(1, "a", &a), (2, "b", &b)]);
        assert_eq!(
            e,
            [Event::StatusChanged {
                linkid: 1,
                name: "a".into(),
                status: bad.clone()
            }]
        );
        // Degraded again with the same message: no change to report.
        b.degrade("lookup plugin panicked");
        assert!(t.sync([(1, "a", &a), (2, "b", &b)]).is_empty());
        a.restore();
        b.restore();
        let e = t.sync([(1, "a", &a), (2, "b", &b)]);
        assert_eq!(e.len(), 2);
        let restored = e[1].message();
        assert_eq!(restored.attrs.get_u32(ov::ATTR_STATUS), Some(ov::STATUS_OK));
        assert_eq!(restored.attrs.get_str(ov::ATTR_STATUS_MSG), Some(""));
        // A deleted device is forgotten; a new one with its link id would be
        // new again, whatever its health's version.
        assert!(t.sync([(2, "b", &b)]).is_empty());
        let c = Health::default();
        c.degrade("new");
        assert!(t.sync([(1, "c", &c), (2, "b", &b)]).is_empty());
    }

    #[test]
    fn overrun_is_reported_once_until_drained() {
        let mut q = OutQueue::new();
        let n = vec![0u8; 1000];
        let mut queued = 0;
        while q.push_notification(n.clone()) == Delivery::Queued {
            queued += 1;
            assert!(queued <= NOTIFY_QUEUE_CAP / 1000, "bounded");
        }
        assert_eq!(queued, NOTIFY_QUEUE_CAP / 1000);
        assert!(q.overrun());
        for _ in 0..10 {
            assert_eq!(q.push_notification(n.clone()), Delivery::Dropped);
        }
        // Replies still go through, behind the report.
        q.push_reply(vec![1; 8]);
        assert_eq!(q.bytes(), queued * 1000 + q.datagrams[queued].len() + 8);
        let report = parse(&q.datagrams[queued]);
        let Message::Error(e) = report else {
            panic!("{report:?}")
        };
        assert_eq!((e.errno, e.seq, e.pid), (libc::ENOBUFS, 0, 0));
        assert_eq!(q.datagrams[queued][4..6], NLMSG_ERROR.to_ne_bytes());
        // Partly drained: still dropping.
        for _ in 0..queued {
            q.pop();
        }
        assert_eq!(q.push_notification(n.clone()), Delivery::Dropped);
        q.pop();
        q.pop();
        assert!(q.is_empty() && !q.overrun() && q.bytes() == 0);
        assert_eq!(q.push_notification(n), Delivery::Queued);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}
