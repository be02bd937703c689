//! The target cache of a device in dynamic mode: where frames for each
//! destination MAC go, learnt from the lookup plugin.
//!
//! Each entry is keyed by the destination MAC alone (the VLAN is ignored,
//! as in the reference) and is in one of four states:
//!
//! | state | meaning | a frame for it |
//! |---|---|---|
//! | invalid | known, no answer (after a remove, a flush or expiry) | queued, a lookup requested |
//! | pending | a lookup is outstanding | queued |
//! | valid | the lookup gave a destination | sent there |
//! | drop | an administrator said drop (`CACHE_SET`); a lookup's drop answer drops one frame, not the entry | dropped |
//!
//! A miss creates a pending entry and queues the frame. Queued frames are
//! bounded twice: per entry ([`CacheLimits::entry_bytes`], 128 KiB by
//! default) and per device ([`CacheLimits::device_bytes`], 1 MiB); a frame
//! that would exceed either is dropped and counted, but a miss on a new
//! entry still asks for its lookup. An answer drains the queue in order.
//! Valid and drop are never set together, and a drop entry has no
//! destination.
//!
//! Memory stays bounded: valid and drop entries may expire after a time to
//! live ([`CacheLimits::ttl`], none by default; an expired entry is found
//! invalid by the next frame, which asks for a new lookup), and the number
//! of entries is capped ([`CacheLimits::max_entries`]), the least recently
//! used entry making room for a new one. Evicting a pending entry frees its
//! frames (counted) and reports its MAC so that the caller cancels the
//! lookup.
//!
//! Administrators list the answered entries in MAC order, a run at a time
//! ([`TargetCache::answers_after`]): each run resumes after the last MAC
//! the previous one gave, from an ordered set of the MACs kept beside the
//! hashed index (about a dozen more bytes per entry, touched only when an
//! entry is added or forgotten).
//!
//! The cache is a plain single-threaded structure: the device puts it
//! behind a lock that the transmit thread takes once per batch.

use overlay_plugin_abi::{Mac, Point};
use slab::Slab;
use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    hash::{BuildHasherDefault, Hasher},
    ops::Bound,
    time::{Duration, Instant},
};

/// Limits of one device's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most bytes of frames queued on one entry.
    pub entry_bytes: usize,
    /// Most bytes of frames queued on the whole device.
    pub device_bytes: usize,
    /// How long a valid or drop entry is trusted; `None`: for ever.
    pub ttl: Option<Duration>,
    /// Most entries; beyond, the least recently used is evicted.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> CacheLimits {
        CacheLimits {
            entry_bytes: 128 * 1024,
            device_bytes: 1024 * 1024,
            ttl: None,
            max_entries: 1 << 20,
        }
    }
}

/// An entry's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Known, without an answer.
    Invalid,
    /// A lookup is outstanding.
    Pending,
    /// Frames go to this destination.
    Valid(Point),
    /// Frames are dropped.
    Drop,
}

/// What an answered entry says: where its frames go, or that they are
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Frames go to this destination.
    To(Point),
    /// Frames are dropped.
    Drop,
}

impl Answer {
    /// The destination, `None` for drop.
    pub fn point(&self) -> Option<Point> {
        match self {
            Answer::To(p) => Some(*p),
            Answer::Drop => None,
        }
    }
}

/// What to do with a frame the cache was asked about.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to this destination.
    Send(Point),
    /// The cache kept the frame; when `lookup` is true a new lookup must be
    /// requested for the MAC (one is not outstanding yet).
    Queued {
        /// Whether to request a lookup.
        lookup: bool,
    },
    /// The frame was dropped for this reason (and counted); a lookup must
    /// still be requested when `lookup` is true.
    Dropped {
        /// Why.
        reason: DropReason,
        /// Whether to request a lookup.
        lookup: bool,
    },
}

/// Why the cache dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The entry says drop.
    DropEntry,
    /// The entry already holds [`CacheLimits::entry_bytes`].
    EntryFull,
    /// The device already holds [`CacheLimits::device_bytes`].
    DeviceFull,
}

/// Counters of one cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Frames that found a valid entry.
    pub hits: u64,
    /// Frames that found no usable entry (new, invalid or expired).
    pub misses: u64,
    /// Frames dropped by a drop entry.
    pub drop_entry: u64,
    /// Frames dropped because their entry's queue was full.
    pub drop_entry_full: u64,
    /// Frames dropped because the device's queues were full.
    pub drop_device_full: u64,
    /// Queued frames freed without being sent (drop answers, eviction,
    /// flush of a pending entry set to drop).
    pub queued_freed: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Valid or drop entries found expired.
    pub expirations: u64,
}

/// Most entries [`TargetCache::answers_after`] looks at in one call.
pub const LIST_SCAN: usize = 1024;

/// A run of answered entries, from [`TargetCache::answers_after`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Answers {
    /// Each entry's MAC and answer, in MAC order.
    pub entries: Vec<(Mac, Answer)>,
    /// Where the listing goes on once every entry above is used: after
    /// this MAC. `None`: the end of the cache was reached.
    pub next: Option<Mac>,
}

/// What an eviction or a state change left for the caller to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fallout {
    /// A pending entry was evicted: cancel its outstanding lookup.
    pub cancel: Option<Mac>,
}

struct Entry {
    mac: Mac,
    state: State,
    /// When a valid or drop entry stops being trusted.
    expires: Option<Instant>,
    queue: Frames,
    /// Neighbours in recency order (slab keys; `NIL` at the ends).
    newer: u32,
    older: u32,
}

const NIL: u32 = u32::MAX;

/// The frames queued on an entry while its lookup is outstanding, with
/// their bytes. Most entries never hold one (only a pending entry does),
/// so the queue is allocated on the first frame and freed with the last:
/// an empty queue costs one pointer.
#[derive(Default)]
struct Frames(Option<Box<(VecDeque<Vec<u8>>, usize)>>);

impl Frames {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.0.len())
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Bytes queued.
    fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.1)
    }

    fn push_back(&mut self, frame: Vec<u8>) {
        let q = self.0.get_or_insert_with(Default::default);
        q.1 += frame.len();
        q.0.push_back(frame);
    }

    fn pop_front(&mut self) -> Option<Vec<u8>> {
        let q = self.0.as_mut()?;
        let frame = q.0.pop_front();
        if let Some(f) = &frame {
            q.1 -= f.len();
        }
        if q.0.is_empty() {
            self.0 = None;
        }
        frame
    }

    fn front(&self) -> Option<&[u8]> {
        self.0.as_ref()?.0.front().map(Vec::as_slice)
    }

    /// Every frame, in order, leaving the queue empty.
    fn take(&mut self) -> Vec<Vec<u8>> {
        self.0.take().map(|q| q.0.into()).unwrap_or_default()
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.0.iter().flat_map(|q| q.0.iter())
    }
}

/// One device's target cache.
pub struct TargetCache {
    limits: CacheLimits,
    index: HashMap<u64, u32, BuildHasherDefault<MacHasher>>,
    /// Every entry's MAC in order, so that a listing resumes after the
    /// last MAC it gave (see [`TargetCache::answers_after`]). Kept apart
    /// from the hashed index, which the packet path uses: only adding and
    /// forgetting an entry touch it, never a frame that finds its entry.
    order: BTreeSet<Mac>,
    entries: Slab<Entry>,
    /// Most recently used entry.
    newest: u32,
    /// Least recently used entry.
    oldest: u32,
    /// Bytes queued over all entries.
    queued: usize,
    stats: CacheStats,
}

fn key(mac: &Mac) -> u64 {
    let mut k = [0u8; 8];
    k[..6].copy_from_slice(&mac.0);
    u64::from_le_bytes(k)
}

impl TargetCache {
    /// An empty cache with these limits.
    pub fn new(limits: CacheLimits) -> TargetCache {
        TargetCache {
            limits,
            index: HashMap::default(),
            order: BTreeSet::new(),
            entries: Slab::new(),
            newest: NIL,
            oldest: NIL,
            queued: 0,
            stats: CacheStats::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> CacheLimits {
        self.limits
    }

    /// Changes the limits. Lower caps apply to frames queued from now on;
    /// a lower entry count evicts at once (the returned MACs had lookups
    /// outstanding, which the caller cancels).
    pub fn set_limits(&mut self, limits: CacheLimits) -> Vec<Mac> {
        self.limits = limits;
        let mut cancel = Vec::new();
        while self.entries.len() > self.limits.max_entries.max(1) {
            if let Some(m) = self.evict_oldest().cancel {
                cancel.push(m);
            }
        }
        cancel
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of frames queued on the device.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// The state of `mac`'s entry and how many frames wait on it.
    pub fn get(&self, mac: &Mac) -> Option<(State, usize)> {
        let e = &self.entries[*self.index.get(&key(mac))? as usize];
        Some((e.state, e.queue.len()))
    }

    /// Every entry as (MAC, state), most recently used first.
    pub fn iter(&self) -> impl Iterator<Item = (Mac, State)> + '_ {
        let mut at = self.newest;
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let e = &self.entries[at as usize];
            at = e.older;
            Some((e.mac, e.state))
        })
    }

    /// Up to `max` answered entries (valid or drop) whose MAC comes after
    /// `after` (from the first MAC when `None`), in MAC order, looking at
    /// no more than [`LIST_SCAN`] entries, so that the lock around the
    /// cache is held briefly however many unanswered entries there are.
    ///
    /// A listing goes on from the MAC of the last entry it used (or from
    /// [`Answers::next`] when it used them all): entries added or
    /// forgotten meanwhile do not make it repeat or miss the entries
    /// that stay.
    pub fn answers_after(&self, after: Option<&Mac>, max: usize) -> Answers {
        let max = max.max(1);
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut entries = Vec::new();
        let mut last = None;
        for (scanned, mac) in self
            .order
            .range::<Mac, _>((from, Bound::Unbounded))
            .enumerate()
        {
            if entries.len() >= max || scanned >= LIST_SCAN {
                return Answers {
                    entries,
                    next: last,
                };
            }
            last = Some(*mac);
            let e = &self.entries[self.index[&key(mac)] as usize];
            match e.state {
                State::Valid(p) => entries.push((*mac, Answer::To(p))),
                State::Drop => entries.push((*mac, Answer::Drop)),
                State::Invalid | State::Pending => {}
            }
        }
        Answers {
            entries,
            next: None,
        }
    }

    /// Decides what happens to `frame`, sent by the hosts to `mac`, at time
    /// `now`. A frame the cache keeps is copied into it.
    pub fn lookup(&mut self, mac: &Mac, frame: &[u8], now: Instant) -> (Verdict, Fallout) {
        let (slot, fallout) = match self.index.get(&key(mac)) {
            Some(&slot) => {
                self.touch(slot);
                (slot, Fallout::default())
            }
            None => {
                let fallout = if self.entries.len() >= self.limits.max_entries.max(1) {
                    self.evict_oldest()
                } else {
                    Fallout::default()
                };
                (self.insert(*mac, State::Invalid), fallout)
            }
        };
        let e = &mut self.entries[slot as usize];
        if e.expires.is_some_and(|t| now >= t) {
            e.state = State::Invalid;
            e.expires = None;
            self.stats.expirations += 1;
        }
        let verdict = match e.state {
            State::Valid(dest) => {
                self.stats.hits += 1;
                Verdict::Send(dest)
            }
            State::Drop => {
                self.stats.drop_entry += 1;
                Verdict::Dropped {
                    reason: DropReason::DropEntry,
                    lookup: false,
                }
            }
            state => {
                let lookup = state == State::Invalid;
                self.stats.misses += 1;
                e.state = State::Pending;
                let size = frame.len();
                let reason = if e.queue.bytes() + size > self.limits.entry_bytes {
                    Some(DropReason::EntryFull)
                } else if self.queued + size > self.limits.device_bytes {
                    Some(DropReason::DeviceFull)
                } else {
                    None
                };
                match reason {
                    Some(reason) => {
                        match reason {
                            DropReason::EntryFull => self.stats.drop_entry_full += 1,
                            _ => self.stats.drop_device_full += 1,
                        }
                        Verdict::Dropped { reason, lookup }
                    }
                    None => {
                        e.queue.push_back(frame.to_vec());
                        self.queued += size;
                        Verdict::Queued { lookup }
                    }
                }
            }
        };
        (verdict, fallout)
    }

    /// A lookup answered `dest` for `mac`: the entry becomes valid (until
    /// the TTL runs out) and its queued frames are returned, in order, to
    /// be sent there. `None` when the entry is gone (evicted, flushed and
    /// freed): the answer has nothing to apply to.
    pub fn respond(&mut self, mac: &Mac, dest: Point, now: Instant) -> Option<Vec<Vec<u8>>> {
        let slot = *self.index.get(&key(mac))?;
        Some(self.set_state(slot, State::Valid(dest), now))
    }

    /// A lookup answered "drop this frame" for `mac`: the frame at the head
    /// of the queue (the one the lookup saw) is freed. Returns whether
    /// frames remain, which then need a lookup of their own; the entry
    /// stays pending meanwhile, or becomes invalid when nothing is left.
    pub fn drop_head(&mut self, mac: &Mac) -> bool {
        let (frame, more) = self.take_head(mac);
        if frame.is_some() {
            self.stats.queued_freed += 1;
        }
        more
    }

    /// Takes the frame at the head of `mac`'s queue (to be sent elsewhere
    /// than the entry says, as replication does), with whether frames
    /// remain; the entry's state changes as for
    /// [`TargetCache::drop_head`].
    pub fn take_head(&mut self, mac: &Mac) -> (Option<Vec<u8>>, bool) {
        let Some(&slot) = self.index.get(&key(mac)) else {
            return (None, false);
        };
        let e = &mut self.entries[slot as usize];
        let frame = e.queue.pop_front();
        if let Some(f) = &frame {
            self.queued -= f.len();
        }
        if e.queue.is_empty() {
            if e.state == State::Pending {
                e.state = State::Invalid;
            }
            (frame, false)
        } else {
            (frame, true)
        }
    }

    /// The head frame queued on `mac`'s entry (what a lookup inspects).
    pub fn head(&self, mac: &Mac) -> Option<&[u8]> {
        let e = &self.entries[*self.index.get(&key(mac))? as usize];
        e.queue.front()
    }

    /// An administrator sets `mac`'s entry: to a destination (the drop
    /// state is cleared and queued frames are returned to be sent), or to
    /// drop (queued frames are freed and counted). Creates the entry if
    /// needed, evicting the least recently used one when full.
    pub fn set(&mut self, mac: &Mac, answer: Answer, now: Instant) -> (Vec<Vec<u8>>, Fallout) {
        let (slot, fallout) = match self.index.get(&key(mac)) {
            Some(&slot) => {
                self.touch(slot);
                (slot, Fallout::default())
            }
            None => {
                let fallout = if self.entries.len() >= self.limits.max_entries.max(1) {
                    self.evict_oldest()
                } else {
                    Fallout::default()
                };
                (self.insert(*mac, State::Invalid), fallout)
            }
        };
        let state = match answer {
            Answer::To(p) => State::Valid(p),
            Answer::Drop => State::Drop,
        };
        (self.set_state(slot, state, now), fallout)
    }

    /// Clears `mac`'s answer: a valid or drop entry becomes invalid, so the
    /// next frame asks again; a pending entry stays pending. Returns whether
    /// the entry existed.
    pub fn remove(&mut self, mac: &Mac) -> bool {
        let existed = self.index.contains_key(&key(mac));
        self.clear_answer(mac);
        existed
    }

    /// Clears `mac`'s answer as [`TargetCache::remove`] does; returns
    /// whether there was one (valid or drop) to clear.
    pub fn clear_answer(&mut self, mac: &Mac) -> bool {
        let Some(&slot) = self.index.get(&key(mac)) else {
            return false;
        };
        let e = &mut self.entries[slot as usize];
        let answered = matches!(e.state, State::Valid(_) | State::Drop);
        if answered {
            e.state = State::Invalid;
            e.expires = None;
        }
        answered
    }

    /// Clears every answer, as [`TargetCache::remove`] does for one.
    pub fn flush(&mut self) {
        for (_, e) in self.entries.iter_mut() {
            if matches!(e.state, State::Valid(_) | State::Drop) {
                e.state = State::Invalid;
                e.expires = None;
            }
        }
    }

    /// Forgets every entry whose answer expired by `now` and that holds
    /// no frame, returning how many went: expiry frees memory without
    /// waiting for a frame to find the entry stale.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let stale: Vec<u32> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires.is_some_and(|t| now >= t) && e.queue.is_empty())
            .map(|(k, _)| k as u32)
            .collect();
        for &slot in &stale {
            self.unlink(slot);
            let e = self.entries.remove(slot as usize);
            self.index.remove(&key(&e.mac));
            self.order.remove(&e.mac);
            self.stats.expirations += 1;
        }
        stale.len()
    }

    /// Frees every queued frame (the device is going away), counting them.
    /// Returns the MACs that had lookups outstanding.
    pub fn clear(&mut self) -> Vec<Mac> {
        let pending = self
            .entries
            .iter()
            .filter(|(_, e)| e.state == State::Pending)
            .map(|(_, e)| e.mac)
            .collect();
        for (_, e) in self.entries.iter() {
            self.stats.queued_freed += e.queue.len() as u64;
        }
        self.entries.clear();
        self.index.clear();
        self.order.clear();
        self.newest = NIL;
        self.oldest = NIL;
        self.queued = 0;
        pending
    }

    fn set_state(&mut self, slot: u32, state: State, now: Instant) -> Vec<Vec<u8>> {
        let e = &mut self.entries[slot as usize];
        e.state = state;
        e.expires = self.limits.ttl.map(|t| now + t);
        self.queued -= e.queue.bytes();
        let frames = e.queue.take();
        match state {
            State::Valid(_) => frames,
            _ => {
                self.stats.queued_freed += frames.len() as u64;
                Vec::new()
            }
        }
    }

    fn insert(&mut self, mac: Mac, state: State) -> u32 {
        let slot = self.entries.insert(Entry {
            mac,
            state,
            expires: None,
            queue: Frames::default(),
            newer: NIL,
            older: NIL,
        }) as u32;
        self.index.insert(key(&mac), slot);
        self.order.insert(mac);
        self.link_newest(slot);
        slot
    }

    fn evict_oldest(&mut self) -> Fallout {
        let slot = self.oldest;
        if slot == NIL {
            return Fallout::default();
        }
        self.unlink(slot);
        let e = self.entries.remove(slot as usize);
        self.index.remove(&key(&e.mac));
        self.order.remove(&e.mac);
        self.queued -= e.queue.bytes();
        self.stats.queued_freed += e.queue.len() as u64;
        self.stats.evictions += 1;
        Fallout {
            cancel: (e.state == State::Pending).then_some(e.mac),
        }
    }

    fn touch(&mut self, slot: u32) {
        if self.newest != slot {
            self.unlink(slot);
            self.link_newest(slot);
        }
    }

    fn link_newest(&mut self, slot: u32) {
        let old_newest = self.newest;
        {
            let e = &mut self.entries[slot as usize];
            e.newer = NIL;
            e.older = old_newest;
        }
        if old_newest != NIL {
            self.entries[old_newest as usize].newer = slot;
        } else {
            self.oldest = slot;
        }
        self.newest = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let (newer, older) = {
            let e = &self.entries[slot as usize];
            (e.newer, e.older)
        };
        match newer {
            NIL => self.newest = older,
            n => self.entries[n as usize].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.entries[o as usize].newer = newer,
        }
    }
}

/// A hasher for MACs packed in a `u64`: one multiply and a shift, instead
/// of SipHash (the key is not chosen by an adversary who could aim at a
/// bucket: the hosts of the overlay are the device's own).
#[derive(Default)]
pub struct MacHasher(u64);

impl Hasher for MacHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | *b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn finish(&self) -> u64 {
        let x = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> Mac {
        Mac([0x02, 0, 0, 0, 0, n])
    }

    fn point(n: u8) -> Point {
        let mut ip = [0u8; 16];
        ip[10] = 0xff;
        ip[11] = 0xff;
        ip[12..].copy_from_slice(&[10, 0, 0, n]);
        Point {
            mac: [0; 6],
            ip,
            port: 4789,
        }
    }

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..6].copy_from_slice(&mac(1).0);
        f
    }

    #[test]
    fn a_miss_queues_and_asks_once_then_an_answer_drains_in_order() {
        let mut c = TargetCache::new(CacheLimits::default());
        let now = Instant::now();
        let (v, _) = c.lookup(&mac(1), &frame(1, 100), now);
        assert_eq!(v, Verdict::Queued { lookup: true });
        assert_eq!(c.get(&mac(1)), Some((State::Pending, 1)));
        let (v, _) = c.lookup(&mac(1), &frame(2, 100), now);
        assert_eq!(v, Verdict::Queued { lookup: false });
        assert_eq!(c.head(&mac(1)), Some(&frame(1, 100)[..]));
        assert_eq!(c.queued_bytes(), 200);
        let drained = c.respond(&mac(1), point(2), now).unwrap();
        assert_eq!(drained, vec![frame(1, 100), frame(2, 100)]);
        assert_eq!(c.queued_bytes(), 0);
        assert_eq!(c.get(&mac(1)), Some((State::Valid(point(2)), 0)));
        let (v, _) = c.lookup(&mac(1), &frame(3, 100), now);
        assert_eq!(v, Verdict::Send(point(2)));
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (1, 2));
    }

    #[test]
    fn a_drop_answer_frees_the_head_and_asks_again_for_the_rest() {
        let mut c = TargetCache::new(CacheLimits::default());
        let now = Instant::now();
        c.lookup(&mac(1), &frame(1, 60), now);
        c.lookup(&mac(1), &frame(2, 60), now);
        assert!(c.drop_head(&mac(1)), "a frame remains: it needs a lookup");
        assert_eq!(c.head(&mac(1)), Some(&frame(2, 60)[..]));
        assert!(!c.drop_head(&mac(1)));
        assert_eq!(c.get(&mac(1)), Some((State::Invalid, 0)));
        assert_eq!(c.queued_bytes(), 0);
        assert_eq!(c.stats().queued_freed, 2);
        // Invalid: the next frame asks again.
        let (v, _) = c.lookup(&mac(1), &frame(3, 60), now);
        assert_eq!(v, Verdict::Queued { lookup: true });
    }

    #[test]
    fn the_entry_cap_drops_the_new_frame_but_a_new_entry_still_asks() {
        let limits = CacheLimits {
            entry_bytes: 250,
            device_bytes: 10_000,
            ..CacheLimits::default()
        };
        let mut c = TargetCache::new(limits);
        let now = Instant::now();
        assert_eq!(
            c.lookup(&mac(1), &frame(1, 200), now).0,
            Verdict::Queued { lookup: true }
        );
        assert_eq!(
            c.lookup(&mac(1), &frame(2, 100), now).0,
            Verdict::Dropped {
                reason: DropReason::EntryFull,
                lookup: false
            }
        );
        assert_eq!(
            c.lookup(&mac(1), &frame(3, 50), now).0,
            Verdict::Queued { lookup: false }
        );
        // A first frame larger than the cap: dropped, and the lookup is
        // still requested.
        assert_eq!(
            c.lookup(&mac(2), &frame(4, 300), now).0,
            Verdict::Dropped {
                reason: DropReason::EntryFull,
                lookup: true
            }
        );
        assert_eq!(c.get(&mac(2)), Some((State::Pending, 0)));
        assert_eq!(c.stats().drop_entry_full, 2);
    }

    #[test]
    fn the_device_cap_spans_entries() {
        let limits = CacheLimits {
            entry_bytes: 1000,
            device_bytes: 1000,
            ..CacheLimits::default()
        };
        let mut c = TargetCache::new(limits);
        let now = Instant::now();
        for n in 0..4 {
            assert_eq!(
                c.lookup(&mac(n), &frame(n, 250), now).0,
                Verdict::Queued { lookup: true }
            );
        }
        assert_eq!(
            c.lookup(&mac(9), &frame(9, 100), now).0,
            Verdict::Dropped {
                reason: DropReason::DeviceFull,
                lookup: true
            }
        );
        // Draining one entry makes room again.
        assert_eq!(c.respond(&mac(0), point(1), now).unwrap().len(), 1);
        assert_eq!(
            c.lookup(&mac(9), &frame(9, 100), now).0,
            Verdict::Queued { lookup: false }
        );
        assert_eq!(c.stats().drop_device_full, 1);
    }

    #[test]
    fn drop_then_set_and_valid_never_with_drop() {
        let mut c = TargetCache::new(CacheLimits::default());
        let now = Instant::now();
        c.lookup(&mac(1), &frame(1, 60), now);
        // Set to drop: the queued frame is freed and counted.
        let (sent, _) = c.set(&mac(1), Answer::Drop, now);
        assert!(sent.is_empty());
        assert_eq!(c.stats().queued_freed, 1);
        assert_eq!(c.get(&mac(1)), Some((State::Drop, 0)));
        assert_eq!(
            c.lookup(&mac(1), &frame(2, 60), now).0,
            Verdict::Dropped {
                reason: DropReason::DropEntry,
                lookup: false
            }
        );
        // Set to a destination: drop is cleared.
        c.set(&mac(1), Answer::To(point(3)), now);
        assert_eq!(c.get(&mac(1)), Some((State::Valid(point(3)), 0)));
        assert_eq!(
            c.lookup(&mac(1), &frame(3, 60), now).0,
            Verdict::Send(point(3))
        );
        // Set on a pending entry drains it to the new destination.
        c.lookup(&mac(2), &frame(4, 60), now);
        let (sent, _) = c.set(&mac(2), Answer::To(point(4)), now);
        assert_eq!(sent, vec![frame(4, 60)]);
    }

    #[test]
    fn remove_and_flush_clear_answers_but_keep_pending_entries() {
        let mut c = TargetCache::new(CacheLimits::default());
        let now = Instant::now();
        c.set(&mac(1), Answer::To(point(1)), now);
        c.set(&mac(2), Answer::Drop, now);
        c.lookup(&mac(3), &frame(3, 60), now);
        assert!(c.remove(&mac(1)));
        assert!(!c.remove(&mac(7)));
        assert_eq!(c.get(&mac(1)), Some((State::Invalid, 0)));
        c.flush();
        assert_eq!(c.get(&mac(2)), Some((State::Invalid, 0)));
        assert_eq!(c.get(&mac(3)), Some((State::Pending, 1)));
        assert_eq!(
            c.lookup(&mac(1), &frame(1, 60), now).0,
            Verdict::Queued { lookup: true }
        );
    }

    #[test]
    fn answers_expire_after_the_ttl() {
        let limits = CacheLimits {
            ttl: Some(Duration::from_secs(30)),
            ..CacheLimits::default()
        };
        let mut c = TargetCache::new(limits);
        let t0 = Instant::now();
        c.set(&mac(1), Answer::To(point(1)), t0);
        c.set(&mac(2), Answer::To(point(2)), t0);
        let t1 = t0 + Duration::from_secs(29);
        assert_eq!(
            c.lookup(&mac(1), &frame(1, 60), t1).0,
            Verdict::Send(point(1))
        );
        let t2 = t0 + Duration::from_secs(30);
        assert_eq!(
            c.lookup(&mac(1), &frame(1, 60), t2).0,
            Verdict::Queued { lookup: true }
        );
        assert_eq!(c.stats().expirations, 1);
        // A sweep forgets expired entries holding nothing (mac 2), not the
        // one with a frame waiting (mac 1, now pending).
        assert_eq!(c.sweep(t2), 1);
        assert_eq!(c.get(&mac(2)), None);
        assert!(c.get(&mac(1)).is_some());
    }

    #[test]
    fn the_least_recently_used_entry_makes_room() {
        let limits = CacheLimits {
            max_entries: 3,
            ..CacheLimits::default()
        };
        let mut c = TargetCache::new(limits);
        let now = Instant::now();
        c.lookup(&mac(1), &frame(1, 60), now); // pending
        c.set(&mac(2), Answer::To(point(2)), now);
        c.set(&mac(3), Answer::To(point(3)), now);
        // Using 1 makes 2 the oldest.
        c.lookup(&mac(1), &frame(1, 60), now);
        let (_, fallout) = c.set(&mac(4), Answer::To(point(4)), now);
        assert_eq!(fallout, Fallout::default());
        assert_eq!(c.get(&mac(2)), None);
        assert_eq!(c.len(), 3);
        let order: Vec<Mac> = c.iter().map(|(m, _)| m).collect();
        assert_eq!(order, vec![mac(4), mac(1), mac(3)]);
        // Evicting 3, then the pending 1: its frames are freed and its
        // lookup must be cancelled.
        c.set(&mac(5), Answer::To(point(5)), now);
        let (_, fallout) = c.set(&mac(6), Answer::To(point(6)), now);
        assert_eq!(fallout.cancel, Some(mac(1)));
        assert_eq!(c.queued_bytes(), 0);
        assert_eq!(c.stats().evictions, 3);
        assert_eq!(c.stats().queued_freed, 2);
        // Lowering the cap evicts at once.
        let cancel = c.set_limits(CacheLimits {
            max_entries: 1,
            ..limits
        });
        assert!(cancel.is_empty());
        assert_eq!(c.iter().map(|(m, _)| m).collect::<Vec<_>>(), vec![mac(6)]);
    }

    /// An entry that holds no frame stays within a cache line: a million
    /// answered entries cost well under 128 bytes each with the index and
    /// the ordered set (bench/control-rate measures it).
    #[test]
    fn an_entry_is_small() {
        assert!(
            std::mem::size_of::<Entry>() <= 64,
            "{}",
            std::mem::size_of::<Entry>()
        );
        assert!(std::mem::size_of::<Option<Entry>>() <= 64);
    }

    /// The bookkeeping every operation must keep: byte counts add up,
    /// caps hold, the recency list and the index agree, and valid entries
    /// hold no frames.
    fn check(c: &TargetCache) {
        let mut total = 0;
        for (_, e) in c.entries.iter() {
            let bytes: usize = e.queue.iter().map(|f| f.len()).sum();
            assert_eq!(bytes, e.queue.bytes());
            assert!(e.queue.bytes() <= c.limits.entry_bytes);
            if matches!(e.state, State::Valid(_) | State::Drop) {
                assert!(e.queue.is_empty());
            }
            total += bytes;
        }
        assert_eq!(total, c.queued);
        assert!(c.queued <= c.limits.device_bytes);
        assert!(c.len() <= c.limits.max_entries);
        assert_eq!(c.iter().count(), c.len());
        assert_eq!(c.index.len(), c.len());
        assert_eq!(c.order.len(), c.len());
        assert!(c.order.iter().all(|m| c.get(m).is_some()));
        for (m, _) in c.iter() {
            assert!(c.get(&m).is_some());
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Frame(u8, usize),
        Respond(u8),
        DropHead(u8),
        Set(u8, bool),
        Remove(u8),
        Flush,
        Sweep,
        Advance(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let m = 0u8..12;
        prop_oneof![
            4 => (m.clone(), 14usize..400).prop_map(|(m, l)| Op::Frame(m, l)),
            1 => m.clone().prop_map(Op::Respond),
            1 => m.clone().prop_map(Op::DropHead),
            1 => (m.clone(), any::<bool>()).prop_map(|(m, d)| Op::Set(m, d)),
            1 => m.prop_map(Op::Remove),
            1 => Just(Op::Flush),
            1 => Just(Op::Sweep),
            1 => (1u64..20).prop_map(Op::Advance),
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_sequence_keeps_the_books(ops in proptest::collection::vec(op(), 1..200)) {
            let mut c = TargetCache::new(CacheLimits {
                entry_bytes: 1000,
                device_bytes: 3000,
                ttl: Some(Duration::from_secs(10)),
                max_entries: 8,
            });
            let mut now = Instant::now();
            for op in ops {
                match op {
                    Op::Frame(m, l) => {
                        let (v, _) = c.lookup(&mac(m), &frame(m, l), now);
                        if let Verdict::Send(_) = v {
                            assert!(matches!(c.get(&mac(m)), Some((State::Valid(_), 0))));
                        }
                    }
                    Op::Respond(m) => {
                        c.respond(&mac(m), point(m), now);
                    }
                    Op::DropHead(m) => {
                        c.drop_head(&mac(m));
                    }
                    Op::Set(m, drop) => {
                        c.set(&mac(m), if drop { Answer::Drop } else { Answer::To(point(m)) }, now);
                    }
                    Op::Remove(m) => {
                        c.remove(&mac(m));
                    }
                    Op::Flush => c.flush(),
                    Op::Sweep => {
                        c.sweep(now);
                    }
                    Op::Advance(s) => now += Duration::from_secs(s),
                }
                check(&c);
            }
        }
    }

    /// Lists `c` a run of `max` at a time, as a paced dump does, calling
    /// `between` after each run.
    fn list_in_runs(
        c: &mut TargetCache,
        max: usize,
        mut between: impl FnMut(&mut TargetCache, usize),
    ) -> Vec<(Mac, Answer)> {
        let mut all = Vec::new();
        let mut after = None;
        for run in 0.. {
            let a = c.answers_after(after.as_ref(), max);
            assert!(a.entries.len() <= max);
            all.extend(a.entries.iter().copied());
            match a.next {
                None => break,
                Some(n) => after = Some(n),
            }
            between(c, run);
        }
        all
    }

    fn wide_mac(n: u32) -> Mac {
        let b = n.to_be_bytes();
        Mac([0x02, 0, b[0], b[1], b[2], b[3]])
    }

    #[test]
    fn answers_come_in_mac_order_a_run_at_a_time_and_skip_unanswered_entries() {
        let mut c = TargetCache::new(CacheLimits::default());
        let now = Instant::now();
        // Set in an order unlike MAC order (and unlike recency order).
        let n = 3000u32;
        for i in 0..n {
            let m = wide_mac((i * 7919) % n);
            if m.0[5].is_multiple_of(5) {
                c.set(&m, Answer::Drop, now);
            } else {
                c.set(&m, Answer::To(point(m.0[5])), now);
            }
        }
        // Unanswered entries are not listed: a pending one and a removed one.
        c.lookup(&wide_mac(n + 1), &frame(1, 60), now);
        assert!(c.remove(&wide_mac(7)));
        let listed = list_in_runs(&mut c, 40, |_, _| {});
        let expected: Vec<(Mac, Answer)> = (0..n)
            .filter(|&i| i != 7)
            .map(wide_mac)
            .map(|m| {
                let a = if m.0[5].is_multiple_of(5) {
                    Answer::Drop
                } else {
                    Answer::To(point(m.0[5]))
                };
                (m, a)
            })
            .collect();
        assert_eq!(listed, expected);
    }

    #[test]
    fn a_run_looks_at_a_bounded_number_of_entries() {
        let mut c = TargetCache::new(CacheLimits::default());
        let now = Instant::now();
        // Many pending entries, then one answered entry after them all.
        let pending = 3 * LIST_SCAN as u32;
        for i in 0..pending {
            c.lookup(&wide_mac(i), &frame(1, 14), now);
        }
        c.set(&wide_mac(pending), Answer::To(point(1)), now);
        let first = c.answers_after(None, 10);
        assert!(first.entries.is_empty());
        assert_eq!(first.next, Some(wide_mac(LIST_SCAN as u32 - 1)));
        let listed = list_in_runs(&mut c, 10, |_, _| {});
        assert_eq!(listed, vec![(wide_mac(pending), Answer::To(point(1)))]);
    }

    #[test]
    fn entries_that_stay_are_listed_once_while_others_come_and_go() {
        let mut c = TargetCache::new(CacheLimits {
            ttl: Some(Duration::from_secs(10)),
            ..CacheLimits::default()
        });
        let early = Instant::now();
        let late = early + Duration::from_secs(100);
        // Even MACs stay throughout (answered late, they outlive every
        // sweep); odd ones come between runs, before and after where the
        // listing is, and go: swept once expired, or their answer removed.
        let n = 2000u32;
        for i in (0..n).step_by(2) {
            c.set(&wide_mac(i), Answer::To(point(1)), late);
        }
        let listed = list_in_runs(&mut c, 25, |c, run| {
            let run = run as u32;
            c.set(&wide_mac(2 * (run * 13 % 1000) + 1), Answer::Drop, early);
            c.set(&wide_mac(n + 2 * run + 1), Answer::Drop, early);
            c.remove(&wide_mac(2 * (run * 17 % 1000) + 1));
            if run.is_multiple_of(3) {
                c.sweep(early + Duration::from_secs(50));
            }
        });
        let mut macs: Vec<Mac> = listed.iter().map(|(m, _)| *m).collect();
        let count = macs.len();
        macs.dedup();
        assert_eq!(macs.len(), count, "no entry repeated");
        assert!(macs.windows(2).all(|w| w[0] < w[1]), "in MAC order");
        for i in (0..n).step_by(2) {
            assert!(
                macs.binary_search(&wide_mac(i)).is_ok(),
                "{:?} stayed throughout and must be listed",
                wide_mac(i)
            );
        }
    }

    #[test]
    fn an_answer_for_a_forgotten_entry_applies_to_nothing() {
        let mut c = TargetCache::new(CacheLimits::default());
        let now = Instant::now();
        c.lookup(&mac(1), &frame(1, 60), now);
        assert_eq!(c.clear(), vec![mac(1)]);
        assert_eq!(c.respond(&mac(1), point(1), now), None);
        assert!(!c.drop_head(&mac(1)));
        assert_eq!(c.stats().queued_freed, 1);
    }
}
