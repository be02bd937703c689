//! A dynamic-mode device's target ([`DynTarget`]): its target cache and
//! the frames answers released, behind one lock that only this file
//! takes, with the two APIs everything else uses.
//!
//! * The packet path routes frames a batch at a time ([`DynTarget::batch`]):
//!   one lock per batch, the frames answers released since the last batch
//!   handed over first (they were queued before any frame of the batch),
//!   and the lookups the batch's misses need raised once the lock is
//!   released ([`Batch`]).
//! * Administrators and the lookup service read and change answers
//!   ([`DynTarget::answer`], [`DynTarget::set`], [`DynTarget::remove`],
//!   [`DynTarget::flush`], [`DynTarget::answers_after`]); a change that
//!   releases frames wakes the packet path, and an eviction cancels the
//!   evicted entry's lookup.

use super::{
    cache::{Answer, Answers, CacheLimits, State, TargetCache, Verdict},
    lookup::LookupService,
    PacketPath,
};
use crate::stats::{DeviceStats, Health};
use overlay_plugin_abi::{dest, Mac, Point};
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, RwLock, Weak,
    },
    time::{Duration, Instant},
};

/// What the packet path, the control side and the lookup service share of
/// a device in dynamic mode.
pub struct DynTarget {
    /// The device's link id.
    pub linkid: u32,
    /// The device's name (for messages).
    pub name: String,
    /// Destination kinds the device's encapsulation needs.
    pub needs: u32,
    /// `AF_INET` or `AF_INET6`: the underlay's family.
    pub domain: i32,
    /// Counters of the device.
    pub stats: Arc<DeviceStats>,
    /// Health of the device.
    pub health: Arc<Health>,
    state: Mutex<DynState>,
    flood: AtomicBool,
    timeout_ms: AtomicU64,
    vnetid: AtomicU64,
    injector: RwLock<Option<Arc<dyn PacketPath>>>,
    service: Weak<LookupService>,
}

/// Who a [`DynTarget`] belongs to.
pub struct DynIdentity {
    /// The device's link id.
    pub linkid: u32,
    /// The device's name.
    pub name: String,
    /// Destination kinds its encapsulation needs.
    pub needs: u32,
    /// `AF_INET` or `AF_INET6`: the underlay's family.
    pub domain: i32,
}

/// The device settings a target follows (its properties of the same
/// names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynSettings {
    /// `flood`: lookups may replicate group traffic.
    pub flood: bool,
    /// `lookup_timeout`, in milliseconds.
    pub lookup_timeout_ms: u64,
    /// The virtual network id lookups are told about.
    pub vnetid: u64,
    /// The cache's limits.
    pub limits: CacheLimits,
}

/// The lock-protected part of a [`DynTarget`].
struct DynState {
    cache: TargetCache,
    /// Frames answered and waiting for the packet path, each with its
    /// destination, in order.
    released: Vec<(Vec<u8>, Point)>,
}

/// Where the packet path sends a frame it routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To this destination, now.
    Send(Point),
    /// Nowhere now: the cache kept it for a lookup, or dropped it (drop
    /// answer, full queue) and counted it.
    Held,
}

/// A batch of frames being routed, under the target's lock
/// ([`DynTarget::batch`]). Dropping it (or [`Batch::finish`]) releases
/// the lock, then asks for the lookups the batch's misses need and
/// cancels those of entries it evicted.
pub struct Batch<'t> {
    target: &'t DynTarget,
    state: Option<MutexGuard<'t, DynState>>,
    now: Instant,
    ask: Vec<Mac>,
    cancel: Vec<Mac>,
}

impl Batch<'_> {
    /// Takes the frames answers released since the last batch, each with
    /// its destination, in order: send them before any frame this batch
    /// routes, which came after them.
    pub fn released(&mut self) -> Vec<(Vec<u8>, Point)> {
        std::mem::take(&mut self.state().released)
    }

    /// Routes one frame (an Ethernet frame, or a super-frame: the entry of
    /// its destination MAC decides for all of it). A frame the cache keeps
    /// is copied into it. The caller has refused frames of a size it does
    /// not send (shorter than an Ethernet header, longer than the MTU);
    /// one too short to hold a MAC is held and never cached.
    pub fn route(&mut self, frame: &[u8]) -> Route {
        let Some(mac) = Mac::dst_of(frame) else {
            return Route::Held;
        };
        let now = self.now;
        let (verdict, fallout) = self.state().cache.lookup(&mac, frame, now);
        if let Some(m) = fallout.cancel {
            self.cancel.push(m);
        }
        match verdict {
            Verdict::Send(p) => Route::Send(p),
            Verdict::Queued { lookup } | Verdict::Dropped { lookup, .. } => {
                if lookup {
                    self.ask.push(mac);
                }
                Route::Held
            }
        }
    }

    /// Ends the batch, as dropping it does.
    pub fn finish(self) {}

    fn state(&mut self) -> &mut DynState {
        self.state.as_mut().expect("held until the batch ends")
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        drop(self.state.take());
        for m in &self.cancel {
            self.target.cancel(m);
        }
        for m in &self.ask {
            self.target.request(*m);
        }
    }
}

impl DynTarget {
    /// A fresh, empty target for the device `id`, whose counters and
    /// health are `stats` and `health`.
    pub fn new(
        id: DynIdentity,
        limits: CacheLimits,
        stats: Arc<DeviceStats>,
        health: Arc<Health>,
        service: &Arc<LookupService>,
    ) -> DynTarget {
        DynTarget {
            linkid: id.linkid,
            name: id.name,
            needs: id.needs,
            domain: id.domain,
            stats,
            health,
            state: Mutex::new(DynState {
                cache: TargetCache::new(limits),
                released: Vec::new(),
            }),
            flood: AtomicBool::new(false),
            timeout_ms: AtomicU64::new(2000),
            vnetid: AtomicU64::new(0),
            injector: RwLock::new(None),
            service: Arc::downgrade(service),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DynState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts routing a batch of frames: the one lock of the batch is
    /// taken here and held until the batch ends.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            target: self,
            state: Some(self.lock()),
            now: Instant::now(),
            ask: Vec::new(),
            cancel: Vec::new(),
        }
    }

    /// Follows the device's settings. A lower entry cap evicts at once,
    /// cancelling the lookups of evicted pending entries.
    pub fn configure(&self, s: &DynSettings) {
        self.flood.store(s.flood, Ordering::Relaxed);
        self.timeout_ms
            .store(s.lookup_timeout_ms, Ordering::Relaxed);
        self.vnetid.store(s.vnetid, Ordering::Relaxed);
        let evicted = self.lock().cache.set_limits(s.limits);
        for m in &evicted {
            self.cancel(m);
        }
    }

    /// Whether lookups may replicate group traffic (`flood`).
    pub fn flood(&self) -> bool {
        self.flood.load(Ordering::Relaxed)
    }

    /// How long a lookup may take.
    pub fn lookup_timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// The virtual network id lookups are told about.
    pub fn vnetid(&self) -> u64 {
        self.vnetid.load(Ordering::Relaxed)
    }

    /// Asks the lookup service for a lookup of `mac`.
    fn request(&self, mac: Mac) {
        if let Some(s) = self.service.upgrade() {
            s.request(self.linkid, mac);
        }
    }

    /// Cancels the queued lookups of `mac` (its entry was evicted).
    fn cancel(&self, mac: &Mac) {
        if let Some(s) = self.service.upgrade() {
            s.cancel(self.linkid, mac);
        }
    }

    /// Connects the target to the running packet path (answers wake it;
    /// proxies inject through it).
    pub fn attach(&self, injector: Arc<dyn PacketPath>) {
        *self.injector.write().unwrap() = Some(injector);
    }

    /// Disconnects it: the packet path is stopping.
    pub fn detach(&self) {
        *self.injector.write().unwrap() = None;
    }

    /// The packet path's injector, while running.
    pub fn injector(&self) -> Option<Arc<dyn PacketPath>> {
        self.injector.read().unwrap().clone()
    }

    fn wake(&self) {
        if let Some(i) = self.injector() {
            i.wake();
        }
    }

    /// Checks that `p` is a destination this device can send to; the
    /// error says what is missing.
    pub fn check_point(&self, p: &Point) -> Result<(), String> {
        if self.needs & dest::IP != 0 {
            let ip = overlay_plugin_abi::prop::ip_from_in6(p.ip);
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(format!("destination address {ip} is not a unicast address"));
            }
            let v4 = ip.is_ipv4();
            if (self.domain == libc::AF_INET) != v4 {
                return Err(format!(
                    "destination address {ip} is not of the underlay's IP version ({})",
                    if self.domain == libc::AF_INET {
                        "IPv4"
                    } else {
                        "IPv6"
                    }
                ));
            }
        }
        if self.needs & dest::PORT != 0 && p.port == 0 {
            return Err("the device needs a destination port (1-65535)".into());
        }
        Ok(())
    }

    /// The state of `mac`'s entry and how many frames wait on it; `None`
    /// when the cache has no entry for it.
    pub fn entry(&self, mac: &Mac) -> Option<(State, usize)> {
        self.lock().cache.get(mac)
    }

    /// The entries of the cache now (pending, valid and drop).
    pub fn cache_entries(&self) -> usize {
        self.lock().cache.len()
    }

    /// What the cache answers for `mac`: `None` without an answer (no
    /// entry, or one that is invalid or pending).
    pub fn answer(&self, mac: &Mac) -> Option<Answer> {
        match self.entry(mac)?.0 {
            State::Valid(p) => Some(Answer::To(p)),
            State::Drop => Some(Answer::Drop),
            State::Invalid | State::Pending => None,
        }
    }

    /// Sets `mac`'s answer as an administrator does: frames queued on it
    /// go out to the new destination (or are freed for drop).
    pub fn set(&self, mac: &Mac, answer: Answer) {
        let mut st = self.lock();
        let (frames, fallout) = st.cache.set(mac, answer, Instant::now());
        let woken = release(&mut st, frames, answer.point());
        drop(st);
        if woken {
            self.wake();
        }
        if let Some(m) = fallout.cancel {
            self.cancel(&m);
        }
    }

    /// Clears `mac`'s answer: the next frame asks the lookup again.
    /// Returns whether the cache had an entry for it.
    pub fn remove(&self, mac: &Mac) -> bool {
        self.lock().cache.remove(mac)
    }

    /// Clears the answers of `macs` (a lookup plugin reported them
    /// stale); returns the MACs that had an answer.
    pub fn forget(&self, macs: &[Mac]) -> Vec<Mac> {
        let mut st = self.lock();
        macs.iter()
            .copied()
            .filter(|m| st.cache.clear_answer(m))
            .collect()
    }

    /// Clears every answer.
    pub fn flush(&self) {
        self.lock().cache.flush();
    }

    /// Up to `max` answers after the MAC `after`, in MAC order, the lock
    /// held for a bounded scan ([`TargetCache::answers_after`]).
    pub fn answers_after(&self, after: Option<&Mac>, max: usize) -> Answers {
        self.lock().cache.answers_after(after, max)
    }

    /// The device stops: its lookups are cancelled and every queued or
    /// released frame is freed (counted).
    pub fn stop(&self) {
        if let Some(s) = self.service.upgrade() {
            s.remove_device(self.linkid);
        }
        let mut st = self.lock();
        st.cache.clear();
        st.released.clear();
    }

    /// The frame at the head of `mac`'s queue, the one a lookup inspects.
    pub(super) fn head(&self, mac: &Mac) -> Option<Vec<u8>> {
        self.lock().cache.head(mac).map(<[u8]>::to_vec)
    }

    /// A lookup answered `p` for `mac`: the entry becomes valid and its
    /// queued frames go there.
    pub(super) fn respond(&self, mac: &Mac, p: Point) {
        let mut st = self.lock();
        let frames = st.cache.respond(mac, p, Instant::now());
        release(&mut st, frames.unwrap_or_default(), Some(p));
        drop(st);
        self.wake();
    }

    /// A lookup replicated the head frame of `mac` to `points` (the
    /// usable ones); returns whether frames remain on the entry.
    pub(super) fn replicate(&self, mac: &Mac, points: &[Point]) -> bool {
        let mut st = self.lock();
        let (frame, more) = st.cache.take_head(mac);
        if let Some(f) = frame {
            for p in points.iter().filter(|p| self.check_point(p).is_ok()) {
                st.released.push((f.clone(), *p));
            }
        }
        more
    }

    /// A lookup dropped the head frame of `mac`; returns whether frames
    /// remain on the entry.
    pub(super) fn drop_head(&self, mac: &Mac) -> bool {
        self.lock().cache.drop_head(mac)
    }

    /// Wakes the packet path after frames were released for it.
    pub(super) fn released_some(&self) {
        self.wake();
    }
}

/// Hands `frames`, drained from an entry, to the packet path towards `to`
/// (`None`: they were freed), under the same lock as the change that
/// drained them, so that no frame routed after the change overtakes
/// them. Returns whether any was released.
fn release(st: &mut DynState, frames: Vec<Vec<u8>>, to: Option<Point>) -> bool {
    match to {
        Some(p) if !frames.is_empty() => {
            st.released.extend(frames.into_iter().map(|f| (f, p)));
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        plugins::{Faults, LookupPlugin},
        target::lookup::tests::Table,
    };

    /// Hands `t`'s lookups to external servers: its requests stay queued
    /// for the test to count.
    fn serve_externally(svc: &Arc<LookupService>, t: &Arc<DynTarget>) {
        let plugin = LookupPlugin::linked(|| Table { peer_port: 4789 });
        let faults = Faults::new(&t.name, t.health.clone(), t.stats.clone());
        let inst = Arc::new(plugin.new_device(6, 7, faults).unwrap());
        svc.add_device(t.clone(), inst, "table", true);
    }

    fn target(svc: &Arc<LookupService>, limits: CacheLimits) -> Arc<DynTarget> {
        Arc::new(DynTarget::new(
            DynIdentity {
                linkid: 1,
                name: "t1".into(),
                needs: dest::IP | dest::PORT,
                domain: libc::AF_INET,
            },
            limits,
            Arc::new(DeviceStats::default()),
            Arc::new(Health::default()),
            svc,
        ))
    }

    fn frame(dst: u8, tag: u8) -> Vec<u8> {
        let mut f = vec![tag; 60];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, dst]);
        f
    }

    fn point(n: u8) -> Point {
        Point {
            mac: [0; 6],
            ip: overlay_plugin_abi::prop::ip_to_in6([10, 0, 0, n].into()),
            port: 4789,
        }
    }

    #[test]
    fn misses_are_asked_once_the_batch_ends() {
        let svc = LookupService::new(1);
        let t = target(&svc, CacheLimits::default());
        serve_externally(&svc, &t);
        let mut b = t.batch();
        assert_eq!(b.route(&frame(1, 0)), Route::Held);
        assert_eq!(b.route(&frame(1, 1)), Route::Held);
        assert_eq!(b.route(&frame(2, 2)), Route::Held);
        assert_eq!(svc.queued(1), 0, "nothing asked under the lock");
        b.finish();
        assert_eq!(svc.queued(1), 2, "one lookup per MAC");
        // A frame too short for a MAC is held, never cached.
        assert_eq!(t.batch().route(&[0x02, 0]), Route::Held);
        assert_eq!(svc.queued(1), 2);
        svc.shutdown();
    }

    #[test]
    fn answers_release_queued_frames_ahead_of_the_next_batch() {
        let svc = LookupService::new(1);
        let t = target(&svc, CacheLimits::default());
        serve_externally(&svc, &t);
        {
            let mut b = t.batch();
            b.route(&frame(1, 0));
            b.route(&frame(1, 1));
        }
        t.set(&Mac([0x02, 0, 0, 0, 0, 1]), Answer::To(point(1)));
        let mut b = t.batch();
        let released = b.released();
        assert_eq!(
            released,
            vec![(frame(1, 0), point(1)), (frame(1, 1), point(1))]
        );
        assert_eq!(b.route(&frame(1, 2)), Route::Send(point(1)));
        assert!(b.released().is_empty(), "taken once");
        drop(b);
        // Drop frees what waits, releases nothing, and is an answer.
        t.batch().route(&frame(3, 0));
        t.set(&Mac([0x02, 0, 0, 0, 0, 3]), Answer::Drop);
        assert!(t.batch().released().is_empty());
        assert_eq!(t.answer(&Mac([0x02, 0, 0, 0, 0, 3])), Some(Answer::Drop));
        assert_eq!(t.batch().route(&frame(3, 1)), Route::Held);
        svc.shutdown();
    }

    #[test]
    fn administrators_clear_answers_and_evictions_cancel_lookups() {
        let svc = LookupService::new(1);
        let limits = CacheLimits {
            max_entries: 2,
            ..CacheLimits::default()
        };
        let t = target(&svc, limits);
        serve_externally(&svc, &t);
        let m = |n| Mac([0x02, 0, 0, 0, 0, n]);
        t.set(&m(1), Answer::To(point(1)));
        t.set(&m(2), Answer::Drop);
        assert!(t.remove(&m(1)));
        assert!(!t.remove(&m(9)));
        assert_eq!(t.answer(&m(1)), None);
        assert_eq!(t.forget(&[m(2), m(9)]), vec![m(2)]);
        assert_eq!(t.answers_after(None, 10).entries, vec![]);
        // A pending entry evicted by a newer one: its lookup is cancelled.
        t.batch().route(&frame(3, 0));
        assert_eq!(svc.queued(1), 1);
        t.set(&m(4), Answer::To(point(4)));
        t.set(&m(5), Answer::To(point(5)));
        assert_eq!(t.entry(&m(3)), None);
        assert_eq!(svc.queued(1), 0);
        t.flush();
        assert_eq!(t.answer(&m(5)), None);
        // A lower cap evicts at once.
        t.set(&m(6), Answer::To(point(6)));
        t.configure(&DynSettings {
            flood: true,
            lookup_timeout_ms: 50,
            vnetid: 9,
            limits: CacheLimits {
                max_entries: 1,
                ..limits
            },
        });
        assert!(t.flood() && t.vnetid() == 9);
        assert_eq!(t.lookup_timeout(), Duration::from_millis(50));
        assert_eq!(
            t.answers_after(None, 10).entries,
            vec![(m(6), Answer::To(point(6)))]
        );
        // Stopping frees everything and forgets the device's requests.
        t.batch().route(&frame(7, 0));
        t.stop();
        assert_eq!(t.entry(&m(7)), None);
        assert_eq!(svc.queued(1), 0);
        svc.shutdown();
    }
}
