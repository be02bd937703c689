//! The lookup service that answers the misses of every dynamic-mode
//! device's target cache ([`LookupService`]): the daemon's varpd.
//!
//! # Requests
//!
//! A frame that misses a device's cache is queued on its entry, and the
//! transmit thread asks the service for a lookup of the destination MAC
//! ([`LookupService::request`]). Each device has its own FIFO of requests;
//! takers go round the devices that have requests, one request per device
//! per turn, so a busy device cannot starve the others.
//!
//! Two kinds of taker exist. The service's own lookup threads take the
//! requests of devices served by their lookup plugin: they call
//! `LookupDevice::lookup` with the frame at the head of the entry's queue,
//! off the packet path. Handles of the `overlay_target` family take the
//! requests of devices handed to external servers with `ASSOCIATE`
//! ([`LookupService::take_external`]). Either way the request is
//! *outstanding* until answered, bound to its taker, with a deadline (the
//! device's `lookup_timeout`). A request whose deadline passes goes back
//! to the front of its device's queue under a new id (a late answer to the
//! old id is refused), and [`TIMEOUTS_TO_DEGRADE`] timeouts in a row
//! degrade the device. When a handle closes, its requests go back too.
//!
//! # Plugins that do not return
//!
//! A lookup cannot be interrupted. Deadlines are kept by a timer thread
//! of the service that never calls a plugin, so timeouts are noticed (and
//! devices degraded) even when every lookup thread is inside a plugin. A
//! device whose request timed out while a thread is still inside its
//! plugin gets no other thread until that one is back, and no device gets
//! more than all but one of the base threads at once. The timer counts
//! the threads inside a plugin past their request's deadline as stuck and
//! starts one in place of each, up to [`MAX_STUCK_THREADS`], so the base
//! number stays free for the other devices, whether the stuck plugin's
//! device is still there or was deleted; an extra thread whose stuck one
//! came back ends when it finds nothing to do.
//!
//! # Answers
//!
//! Respond caches the destination and hands every queued frame to the
//! transmit thread, in order; drop frees the head frame; inject delivers a
//! proxy's answer to the hosts; resend sends a frame down the transmit
//! path; replicate sends the head frame to each destination given. After
//! all but respond, frames left on the entry get a lookup of their own.
//! Every request is retired exactly once; deactivation cancels the
//! device's requests.
//!
//! # Plugins whose answers change by themselves
//!
//! A plugin backed by a shared directory learns of changes on its own.
//! Every [`STALE_POLL`] one lookup thread asks the plugin of each device
//! it serves for the MACs whose answers changed (`take_stale`) and
//! forgets their cache entries, so the next frame is looked up again. A
//! lookup that fails with [`UNAVAILABLE`] (the directory is unreachable)
//! degrades the device with the plugin's message; the next lookup the
//! plugin answers restores it.

use super::DynTarget;
use crate::plugins::LookupInstance;
use crate::stats::add;
use overlay_plugin_abi::{Action, LookupAnswer, LookupRequest, Mac, REQ_F_FLOOD};
use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, OnceLock,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// The errno of a lookup error that says the plugin's source of answers
/// (a directory server) cannot be reached: the device is degraded with
/// the error's message until the plugin answers a lookup again.
pub const UNAVAILABLE: i32 = libc::ENOTCONN;
/// Consecutive lookup timeouts that degrade a device.
pub const TIMEOUTS_TO_DEGRADE: u32 = 3;
/// Default number of lookup threads.
pub const DEFAULT_THREADS: usize = 4;
/// How often the service's timer expires requests and idle lookup
/// threads look for work.
const TICK: Duration = Duration::from_millis(50);
/// Lookup threads that may be stuck in plugins (inside a lookup past its
/// request's deadline) at once. Each stuck one is replaced, so that the
/// base number of threads stays free to serve the other devices, up to
/// this many; past it the devices wait for a stuck one to come back.
pub const MAX_STUCK_THREADS: usize = 32;
/// How often the plugins of active devices are asked which answers
/// changed (`take_stale`), so that a directory that changes by itself
/// (a watched store) is followed without a property write.
pub const STALE_POLL: Duration = Duration::from_millis(100);

/// Who holds an outstanding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taker {
    /// A lookup thread of the service.
    Thread,
    /// The `overlay_target` handle with this PID.
    Handle(u32),
}

/// A request as a taker receives it.
pub struct Taken {
    /// Its id.
    pub reqid: u64,
    /// The device.
    pub target: Arc<DynTarget>,
    /// What the head frame says.
    pub req: LookupRequest,
    /// The head frame.
    pub frame: Vec<u8>,
}

struct Outstanding {
    linkid: u32,
    mac: Mac,
    taker: Taker,
    deadline: Instant,
}

struct DevEntry {
    target: Arc<DynTarget>,
    plugin: Arc<LookupInstance>,
    plugin_name: String,
    external: bool,
    queue: VecDeque<(u64, Mac)>,
    timeouts: u32,
    /// Lookup threads inside the device's plugin now. Once one of its
    /// requests has timed out, no other thread is given the device until
    /// they are all back: a plugin that never returns holds one thread,
    /// not every thread in turn, so the other devices go on being served.
    /// Even before that, a device gets at most all but one of the base
    /// number of threads at once.
    in_plugin: usize,
    /// The fault this service set because the plugin said its source of
    /// answers was unreachable; cleared by the next lookup it answers.
    unavailable: Option<String>,
}

/// A lookup thread inside a plugin, under the id of the request it took.
struct Inside {
    target: Arc<DynTarget>,
    deadline: Instant,
}

#[derive(Default)]
struct Inner {
    devices: HashMap<u32, DevEntry>,
    /// Devices with queued requests, in turn order.
    turns: VecDeque<u32>,
    outstanding: HashMap<u64, Outstanding>,
    next_reqid: u64,
    stopping: bool,
    /// Lookup threads running (stuck ones included).
    threads: usize,
    /// Lookup threads inside a plugin, by the id of the request taken.
    inside: HashMap<u64, Inside>,
}

impl Inner {
    /// The lookup thread that took request `reqid` came back from its
    /// device's plugin. The device's count is only touched if it is still
    /// the same device (its link id may have been given to a new one).
    fn left_plugin(&mut self, reqid: u64) {
        let Some(i) = self.inside.remove(&reqid) else {
            return;
        };
        if let Some(d) = self.devices.get_mut(&i.target.linkid) {
            if Arc::ptr_eq(&d.target, &i.target) {
                d.in_plugin = d.in_plugin.saturating_sub(1);
            }
        }
    }

    /// Lookup threads inside a plugin past their request's deadline.
    fn stuck(&self, now: Instant) -> usize {
        self.inside.values().filter(|i| i.deadline <= now).count()
    }
}

/// Counters of the service as a whole, over every device (read with the
/// target family's `LOOKUP_STATS`).
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Requests raised.
    pub requests: AtomicU64,
    /// Answers applied, from lookup plugins and external servers alike.
    pub answers: AtomicU64,
    /// Requests that timed out (each time: a request re-queued after a
    /// timeout may time out again).
    pub timeouts: AtomicU64,
    /// Answers of lookup plugins that came too late (their request was
    /// re-queued or cancelled). An external server's late answer is
    /// refused instead, and not counted here.
    pub late: AtomicU64,
}

impl ServiceStats {
    /// Every counter with its name, in a fixed order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("requests", get(&self.requests)),
            ("answers", get(&self.answers)),
            ("timeouts", get(&self.timeouts)),
            ("late", get(&self.late)),
        ]
    }
}

/// The lookup service: request queues, lookup threads, external takers.
pub struct LookupService {
    inner: Mutex<Inner>,
    work: Condvar,
    /// Wakes the timer thread at shutdown.
    timer: Condvar,
    waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    base_threads: usize,
    /// When the plugins were last asked for stale answers.
    last_stale_poll: Mutex<Instant>,
    /// Cache entries forgotten because their plugin reported their answers
    /// changed, by link id, not yet taken for notification.
    invalidated: Mutex<BTreeSet<(u32, Mac)>>,
    /// Whether `invalidated` may hold something (set and cleared under its
    /// lock), so that taking nothing costs no lock.
    any_invalidated: AtomicBool,
    /// Counters.
    pub stats: ServiceStats,
}

impl LookupService {
    /// A service that will run `threads` lookup threads and its timer
    /// (started with the first dynamic device).
    pub fn new(threads: usize) -> Arc<LookupService> {
        Arc::new(LookupService {
            inner: Mutex::new(Inner {
                next_reqid: 1,
                ..Inner::default()
            }),
            work: Condvar::new(),
            timer: Condvar::new(),
            waker: OnceLock::new(),
            threads: Mutex::new(Vec::new()),
            base_threads: threads.max(1),
            last_stale_poll: Mutex::new(Instant::now()),
            invalidated: Mutex::new(BTreeSet::new()),
            any_invalidated: AtomicBool::new(false),
            stats: ServiceStats::default(),
        })
    }

    /// Sets what wakes the control loop when requests for external
    /// servers arrive or entries are invalidated (set once).
    pub fn set_waker(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.waker.set(f);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_external(&self) {
        if let Some(w) = self.waker.get() {
            w();
        }
    }

    /// Serves `target` from now on, with `plugin` unless it is associated
    /// with external servers.
    pub fn add_device(
        self: &Arc<Self>,
        target: Arc<DynTarget>,
        plugin: Arc<LookupInstance>,
        plugin_name: &str,
        external: bool,
    ) {
        let mut inner = self.lock();
        inner.devices.insert(
            target.linkid,
            DevEntry {
                target,
                plugin,
                plugin_name: plugin_name.to_string(),
                external,
                queue: VecDeque::new(),
                timeouts: 0,
                in_plugin: 0,
                unavailable: None,
            },
        );
        let start = inner.threads == 0;
        if start {
            inner.threads = self.base_threads;
        }
        drop(inner);
        if start {
            self.spawn_timer();
            for _ in 0..self.base_threads {
                self.spawn_thread();
            }
        }
    }

    /// Stops serving a device: its queued and outstanding requests are
    /// cancelled (a late answer gets "unknown request").
    pub fn remove_device(&self, linkid: u32) {
        let mut inner = self.lock();
        inner.devices.remove(&linkid);
        inner.turns.retain(|l| *l != linkid);
        inner.outstanding.retain(|_, o| o.linkid != linkid);
    }

    /// Hands a device to external servers (`true`) or back to its plugin.
    /// Queued requests follow; outstanding ones stay with their takers.
    /// Returns false when the device is not served.
    pub fn set_external(&self, linkid: u32, external: bool) -> bool {
        let mut inner = self.lock();
        let Some(d) = inner.devices.get_mut(&linkid) else {
            return false;
        };
        d.external = external;
        d.timeouts = 0;
        drop(inner);
        self.work.notify_all();
        self.wake_external();
        true
    }

    /// Requests waiting (not taken) for a device.
    pub fn queued(&self, linkid: u32) -> usize {
        self.lock()
            .devices
            .get(&linkid)
            .map_or(0, |d| d.queue.len())
    }

    /// Requests waiting (not taken) over every device.
    pub fn queued_total(&self) -> usize {
        self.lock().devices.values().map(|d| d.queue.len()).sum()
    }

    /// Asks for a lookup of `mac` on `linkid` (from the transmit thread, on
    /// a miss that needs one).
    pub fn request(&self, linkid: u32, mac: Mac) {
        let mut inner = self.lock();
        let id = inner.next_reqid;
        let Some(d) = inner.devices.get_mut(&linkid) else {
            return;
        };
        d.queue.push_back((id, mac));
        let external = d.external;
        add(&d.target.stats.lookup_requests, 1);
        inner.next_reqid += 1;
        if !inner.turns.contains(&linkid) {
            inner.turns.push_back(linkid);
        }
        drop(inner);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if external {
            self.wake_external();
        } else {
            self.work.notify_one();
        }
    }

    /// Forgets the queued requests for `mac` on `linkid` (its entry was
    /// evicted).
    pub fn cancel(&self, linkid: u32, mac: &Mac) {
        let mut inner = self.lock();
        if let Some(d) = inner.devices.get_mut(&linkid) {
            d.queue.retain(|(_, m)| m != mac);
        }
    }

    /// Takes the next request for a taker of this kind, fairly across
    /// devices. Requests whose entry no longer waits are retired here.
    fn take(&self, taker: Taker) -> Option<(Taken, Arc<LookupInstance>)> {
        loop {
            let (reqid, mac, target, plugin) = {
                let mut inner = self.lock();
                let want_external = taker != Taker::Thread;
                let n = inner.turns.len();
                let mut found = None;
                for _ in 0..n {
                    let Some(linkid) = inner.turns.pop_front() else {
                        break;
                    };
                    let Some(d) = inner.devices.get_mut(&linkid) else {
                        continue;
                    };
                    let stuck = d.in_plugin > 0 && d.timeouts > 0;
                    let full = d.in_plugin >= self.base_threads.saturating_sub(1).max(1);
                    if d.external != want_external || (taker == Taker::Thread && (stuck || full)) {
                        inner.turns.push_back(linkid);
                        continue;
                    }
                    let Some((reqid, mac)) = d.queue.pop_front() else {
                        continue;
                    };
                    if taker == Taker::Thread {
                        d.in_plugin += 1;
                    }
                    let deadline = Instant::now() + d.target.lookup_timeout();
                    let (target, plugin) = (d.target.clone(), d.plugin.clone());
                    if !d.queue.is_empty() {
                        inner.turns.push_back(linkid);
                    }
                    if taker == Taker::Thread {
                        let target = target.clone();
                        inner.inside.insert(reqid, Inside { target, deadline });
                    }
                    inner.outstanding.insert(
                        reqid,
                        Outstanding {
                            linkid,
                            mac,
                            taker,
                            deadline,
                        },
                    );
                    found = Some((reqid, mac, target, plugin));
                    break;
                }
                found?
            };
            let head = target.head(&mac);
            let flags = if target.flood() { REQ_F_FLOOD } else { 0 };
            let vnetid = target.vnetid();
            match head.and_then(|f| LookupRequest::parse(vnetid, &f, flags).map(|r| (r, f))) {
                Some((req, frame)) => {
                    return Some((
                        Taken {
                            reqid,
                            target,
                            req,
                            frame,
                        },
                        plugin,
                    ))
                }
                None => {
                    // Answered or removed meanwhile: nothing to look up.
                    let mut inner = self.lock();
                    inner.outstanding.remove(&reqid);
                    inner.left_plugin(reqid);
                }
            }
        }
    }

    /// For the control loop: the next request of an associated device for
    /// the handle `pid`, if one waits.
    pub fn take_external(&self, pid: u32) -> Option<Taken> {
        self.take(Taker::Handle(pid)).map(|(t, _)| t)
    }

    /// The frame of an outstanding request held by `taker`.
    pub fn frame_of(&self, taker: Taker, reqid: u64) -> Result<Vec<u8>, String> {
        let (linkid, mac) = self.held(taker, reqid)?;
        let target = self.target(linkid).ok_or_else(unknown_request(reqid))?;
        target
            .head(&mac)
            .ok_or_else(|| format!("request {reqid} has no frame left"))
    }

    /// The device of an outstanding request held by `taker`.
    pub fn target_of(&self, taker: Taker, reqid: u64) -> Result<Arc<DynTarget>, String> {
        let (linkid, _) = self.held(taker, reqid)?;
        self.target(linkid).ok_or_else(unknown_request(reqid))
    }

    fn held(&self, taker: Taker, reqid: u64) -> Result<(u32, Mac), String> {
        let inner = self.lock();
        match inner.outstanding.get(&reqid) {
            Some(o) if o.taker == taker => Ok((o.linkid, o.mac)),
            _ => Err(unknown_request(reqid)()),
        }
    }

    fn target(&self, linkid: u32) -> Option<Arc<DynTarget>> {
        self.lock().devices.get(&linkid).map(|d| d.target.clone())
    }

    /// Applies `answer` to the request `reqid` held by `taker`, retiring
    /// it. An error when the request is not held by `taker` (unknown,
    /// answered, timed out and re-queued, or cancelled) or the answer is
    /// not usable; the request stays outstanding in the latter case.
    pub fn answer(&self, taker: Taker, reqid: u64, answer: LookupAnswer) -> Result<(), String> {
        let (linkid, mac) = self.held(taker, reqid)?;
        let target = self.target(linkid).ok_or_else(unknown_request(reqid))?;
        if answer.action == Action::RESPOND {
            let p = answer
                .points
                .first()
                .ok_or("a respond answer carries no destination")?;
            target.check_point(p)?;
        }
        {
            let mut inner = self.lock();
            if inner.outstanding.remove(&reqid).is_none() {
                return Err(unknown_request(reqid)());
            }
            if let Some(d) = inner.devices.get_mut(&linkid) {
                d.timeouts = 0;
            }
        }
        self.stats.answers.fetch_add(1, Ordering::Relaxed);
        self.apply(&target, &mac, answer);
        Ok(())
    }

    fn apply(&self, t: &DynTarget, mac: &Mac, answer: LookupAnswer) {
        let more = match answer.action {
            Action::RESPOND => {
                add(&t.stats.lookup_answers, 1);
                t.respond(mac, answer.points[0]);
                return;
            }
            Action::REPLICATE => {
                add(&t.stats.lookup_replicated, 1);
                t.replicate(mac, &answer.points)
            }
            _ => {
                add(&t.stats.lookup_drops, 1);
                t.drop_head(mac)
            }
        };
        match answer.action {
            Action::INJECT => {
                if let Some(i) = t.injector() {
                    if i.inbound(&[&answer.frame[..]]).is_ok() {
                        add(&t.stats.lookup_proxied, 1);
                    }
                }
            }
            Action::RESEND => {
                if let Some(i) = t.injector() {
                    let _ = i.outbound(&answer.frame);
                }
            }
            _ => {}
        }
        t.released_some();
        if more {
            self.request(t.linkid, *mac);
        }
    }

    /// Puts back every request held by the handle `pid` (it closed).
    pub fn release_handle(&self, pid: u32) {
        let n = self.requeue(|o| o.taker == Taker::Handle(pid), false);
        if n > 0 {
            tracing::info!(
                pid,
                requests = n,
                "lookup requests of a closed handle re-queued"
            );
            self.wake_external();
        }
    }

    /// Re-queues outstanding requests matching `which` at the front of
    /// their device's queue under new ids; `timed_out` counts them as
    /// timeouts (and degrades devices that keep timing out).
    fn requeue(&self, which: impl Fn(&Outstanding) -> bool, timed_out: bool) -> usize {
        let mut inner = self.lock();
        let ids: Vec<u64> = inner
            .outstanding
            .iter()
            .filter(|(_, o)| which(o))
            .map(|(id, _)| *id)
            .collect();
        let mut degrade = Vec::new();
        let mut external = false;
        for id in &ids {
            let o = inner.outstanding.remove(id).expect("listed");
            let new = inner.next_reqid;
            inner.next_reqid += 1;
            let Some(d) = inner.devices.get_mut(&o.linkid) else {
                continue;
            };
            d.queue.push_front((new, o.mac));
            external |= d.external;
            if timed_out {
                add(&d.target.stats.lookup_timeouts, 1);
                d.timeouts += 1;
                if o.taker == Taker::Thread && d.in_plugin > 0 {
                    // The thread is still inside the plugin: the device
                    // gets no other thread until it returns, so say so
                    // now rather than after timeouts that cannot come.
                    degrade.push((
                        d.target.clone(),
                        format!(
                            "lookup plugin {} has not returned from a lookup within lookup_timeout ({} ms); \
                             its lookups wait until it does (delete the device, or fix the plugin)",
                            d.plugin_name,
                            d.target.lookup_timeout().as_millis()
                        ),
                    ));
                } else if d.timeouts == TIMEOUTS_TO_DEGRADE {
                    let who = if d.external {
                        "its external lookup server".to_string()
                    } else {
                        format!("lookup plugin {}", d.plugin_name)
                    };
                    degrade.push((
                        d.target.clone(),
                        format!(
                            "{who} did not answer {TIMEOUTS_TO_DEGRADE} lookups in a row within lookup_timeout ({} ms)",
                            d.target.lookup_timeout().as_millis()
                        ),
                    ));
                }
            }
            if !inner.turns.contains(&o.linkid) {
                inner.turns.push_front(o.linkid);
            }
        }
        drop(inner);
        if timed_out {
            self.stats
                .timeouts
                .fetch_add(ids.len() as u64, Ordering::Relaxed);
        }
        for (t, msg) in degrade {
            if t.health.degrade(&msg) {
                tracing::warn!(link = %t.name, "degraded: {msg}");
            }
        }
        if !ids.is_empty() {
            self.work.notify_all();
            if external {
                self.wake_external();
            }
        }
        ids.len()
    }

    /// Re-queues every request past its deadline.
    pub fn expire(&self) -> usize {
        let now = Instant::now();
        self.requeue(|o| o.deadline <= now, true)
    }

    fn spawn_thread(self: &Arc<Self>) {
        let me = self.clone();
        let h = std::thread::Builder::new()
            .name("lookup".into())
            .spawn(move || me.thread_main());
        match h {
            Ok(h) => {
                let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
                threads.retain(|h| !h.is_finished());
                threads.push(h);
            }
            Err(e) => {
                self.lock().threads -= 1;
                tracing::error!("cannot start a lookup thread: {e}");
            }
        }
    }

    fn spawn_timer(self: &Arc<Self>) {
        let me = self.clone();
        let h = std::thread::Builder::new()
            .name("lookup-timer".into())
            .spawn(move || me.timer_main());
        match h {
            Ok(h) => self
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(h),
            Err(e) => tracing::error!("cannot start the lookup timer thread: {e}"),
        }
    }

    /// The timer: every [`TICK`], re-queues the requests past their
    /// deadline and replaces the lookup threads stuck in plugins. It never
    /// calls a plugin, so a plugin that never returns cannot stop
    /// timeouts from being noticed (nor its device from being degraded).
    fn timer_main(self: Arc<Self>) {
        let mut at_cap = false;
        loop {
            self.expire();
            let mut inner = self.lock();
            if inner.stopping {
                return;
            }
            let stuck = inner.stuck(Instant::now());
            let mut spawn = 0;
            while inner.threads - stuck.min(inner.threads) < self.base_threads
                && inner.threads < self.base_threads + MAX_STUCK_THREADS
            {
                inner.threads += 1;
                spawn += 1;
            }
            let capped = inner.threads - stuck.min(inner.threads) < self.base_threads;
            drop(inner);
            if spawn > 0 {
                tracing::warn!(
                    stuck,
                    started = spawn,
                    "lookup threads stuck in a lookup plugin past lookup_timeout; started others in their place"
                );
            }
            for _ in 0..spawn {
                self.spawn_thread();
            }
            if capped && !at_cap {
                tracing::error!(
                    stuck,
                    "{MAX_STUCK_THREADS} lookup threads are stuck in lookup plugins; no more are started, \
                     and lookups wait until one comes back (delete the devices whose plugins do not return)"
                );
            }
            at_cap = capped;
            let inner = self.lock();
            if inner.stopping {
                return;
            }
            drop(
                self.timer
                    .wait_timeout(inner, TICK)
                    .unwrap_or_else(|e| e.into_inner()),
            );
        }
    }

    /// Forgets what `t` caches for `macs`, the MACs whose answers its
    /// lookup plugin reported changed (`take_stale`), and keeps those it
    /// had cached for [`LookupService::take_invalidated`]; how many.
    pub fn invalidate(&self, t: &DynTarget, macs: &[Mac]) -> usize {
        if macs.is_empty() {
            return 0;
        }
        let forgotten = t.forget(macs);
        if !forgotten.is_empty() {
            let mut inv = self.invalidated.lock().unwrap_or_else(|e| e.into_inner());
            inv.extend(forgotten.iter().map(|m| (t.linkid, *m)));
            self.any_invalidated.store(true, Ordering::Release);
            drop(inv);
            // The control loop notifies them now, not with the next request.
            self.wake_external();
        }
        forgotten.len()
    }

    /// The entries [`LookupService::invalidate`] forgot since the last
    /// call, in link id and MAC order, each once: what the control side
    /// notifies on the `target` group. (A MAC forgotten twice in between
    /// was answered again in between, so one removal says it all.)
    /// Called for every request: without invalidations, one atomic load.
    pub fn take_invalidated(&self) -> Vec<(u32, Mac)> {
        if !self.any_invalidated.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut inv = self.invalidated.lock().unwrap_or_else(|e| e.into_inner());
        self.any_invalidated.store(false, Ordering::Relaxed);
        std::mem::take(&mut *inv).into_iter().collect()
    }

    /// At most every [`STALE_POLL`], on one lookup thread: asks the
    /// plugin of every device it serves which MACs' answers changed, and
    /// forgets what the cache holds for them.
    fn poll_stale(&self) {
        {
            let mut last = self
                .last_stale_poll
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < STALE_POLL {
                return;
            }
            *last = Instant::now();
        }
        let served: Vec<(Arc<DynTarget>, Arc<LookupInstance>)> = self
            .lock()
            .devices
            .values()
            .filter(|d| !d.external)
            .map(|d| (d.target.clone(), d.plugin.clone()))
            .collect();
        for (t, plugin) in served {
            let forgotten = self.invalidate(&t, &plugin.take_stale());
            if forgotten > 0 {
                tracing::debug!(link = %t.name, entries = forgotten, "lookup plugin reported changed answers");
            }
        }
    }

    fn thread_main(self: Arc<Self>) {
        loop {
            self.poll_stale();
            if self.lock().stopping {
                return;
            }
            match self.take(Taker::Thread) {
                Some((taken, plugin)) => self.serve(taken, &plugin),
                None => {
                    let inner = self.lock();
                    if inner.stopping {
                        return;
                    }
                    let (mut inner, _) = self
                        .work
                        .wait_timeout(inner, TICK)
                        .unwrap_or_else(|e| e.into_inner());
                    // A thread started in place of a stuck one whose
                    // plugin came back: one too many, and idle.
                    if inner.threads > self.base_threads + inner.stuck(Instant::now()) {
                        inner.threads -= 1;
                        drop(inner);
                        // Whatever woke this one goes to another.
                        self.work.notify_one();
                        return;
                    }
                }
            }
        }
    }

    /// Runs the plugin on one request and applies its answer.
    fn serve(&self, taken: Taken, plugin: &LookupInstance) {
        let t = taken.target.clone();
        let r = plugin.lookup(&taken.req, &taken.frame);
        self.lock().left_plugin(taken.reqid);
        // A device skipped while this thread was stuck in its plugin may
        // be served again.
        self.work.notify_all();
        let answer = match r {
            Ok(a) => {
                self.available(&t);
                a
            }
            Err(e) => {
                if e.errno == UNAVAILABLE {
                    let msg = format!("lookup plugin: {}", e.msg);
                    if let Some(d) = self.lock().devices.get_mut(&t.linkid) {
                        d.unavailable = Some(msg.clone());
                    }
                    if t.health.degrade(&msg) {
                        tracing::warn!(link = %t.name, "degraded: {msg}");
                    }
                } else {
                    // A panic has been counted and has degraded the device
                    // inside the call.
                    tracing::debug!(link = %t.name, "lookup failed: {}", e.msg);
                }
                add(&t.stats.lookup_errors, 1);
                LookupAnswer::drop_frame()
            }
        };
        let answer = match self.answer(Taker::Thread, taken.reqid, answer) {
            Err(e) if !e.starts_with("no request") => {
                tracing::warn!(link = %t.name, "unusable lookup answer: {e}");
                add(&t.stats.lookup_errors, 1);
                self.answer(Taker::Thread, taken.reqid, LookupAnswer::drop_frame())
            }
            r => r,
        };
        if answer.is_err() {
            self.stats.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Restores a device this service degraded because its plugin could
    /// not reach its source, now that the plugin answered again (unless a
    /// fault of another kind has replaced that one meanwhile).
    fn available(&self, t: &DynTarget) {
        let msg = match self.lock().devices.get_mut(&t.linkid) {
            Some(d) => d.unavailable.take(),
            None => None,
        };
        if let Some(msg) = msg {
            if t.health.fault().as_deref() == Some(msg.as_str()) && t.health.restore() {
                tracing::info!(link = %t.name, "restored: its lookup plugin answers again");
            }
        }
    }

    /// Stops the lookup threads (at daemon exit). A thread stuck in a
    /// plugin is not waited for.
    pub fn shutdown(&self) {
        self.lock().stopping = true;
        self.work.notify_all();
        self.timer.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap());
        let deadline = Instant::now() + Duration::from_secs(1);
        for h in threads {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

fn unknown_request(reqid: u64) -> impl Fn() -> String {
    move || {
        format!(
            "no request {reqid} is held by this handle (unknown, already answered, timed out and re-queued, or its device stopped)"
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        plugins::{Faults, LookupPlugin},
        stats::{DeviceStats, Health},
        target::{CacheLimits, DynIdentity},
    };
    use overlay_plugin_abi::{
        dest, kit, prop::ip_to_in6, LookupInfo, PluginError, Point, PropInfo, MODE_DYNAMIC,
    };
    use std::net::{IpAddr, Ipv4Addr};

    /// MAC ..:09 lives at the peer (127.0.0.1), ..:0d takes 300 ms to
    /// answer, ..:0e panics; group traffic is replicated to the peer;
    /// anything else is dropped.
    pub(crate) struct Table {
        pub(crate) peer_port: u16,
    }
    pub(crate) struct TableDev(u16);

    pub(crate) const KNOWN: [u8; 6] = [0x02, 0, 0, 0, 0, 0x09];
    const SLOW: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0d];
    const PANICS: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0e];

    impl kit::Lookup for Table {
        type Instance = TableDev;
        fn info(&self) -> LookupInfo {
            LookupInfo {
                modes: MODE_DYNAMIC,
                dest: dest::IP | dest::PORT,
                properties: Default::default(),
            }
        }
        fn new_instance(&self, _dest: u32, _vnetid: u64) -> Result<TableDev, PluginError> {
            Ok(TableDev(self.peer_port))
        }
    }

    impl kit::LookupInstance for TableDev {
        fn mode(&self) -> u32 {
            MODE_DYNAMIC
        }
        fn properties(&self) -> Vec<PropInfo> {
            Vec::new()
        }
        fn getprop(&self, _: &str) -> Result<Vec<u8>, PluginError> {
            Ok(Vec::new())
        }
        fn setprop(&self, _: &str, _: &[u8]) -> Result<(), PluginError> {
            Ok(())
        }
        fn missing_required(&self) -> Vec<String> {
            Vec::new()
        }
        fn start(&self) -> Result<(), PluginError> {
            Ok(())
        }
        fn stop(&self) {}
        fn default_point(&self) -> Result<Point, PluginError> {
            Err(PluginError::not_supported("dynamic"))
        }
        fn lookup(&self, req: &LookupRequest, _frame: &[u8]) -> Result<LookupAnswer, PluginError> {
            let peer = Point {
                mac: [0; 6],
                ip: ip_to_in6(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                port: self.0,
            };
            Ok(match req.dst {
                _ if req.is_group() => LookupAnswer::replicate(vec![peer]),
                KNOWN => LookupAnswer::respond(peer),
                SLOW => {
                    std::thread::sleep(Duration::from_millis(300));
                    LookupAnswer::respond(peer)
                }
                PANICS => panic!("table corrupted"),
                _ => LookupAnswer::drop_frame(),
            })
        }
    }

    fn device(svc: &Arc<LookupService>, linkid: u32, external: bool) -> Arc<DynTarget> {
        let t = Arc::new(DynTarget::new(
            DynIdentity {
                linkid,
                name: format!("t{linkid}"),
                needs: dest::IP | dest::PORT,
                domain: libc::AF_INET,
            },
            CacheLimits::default(),
            Arc::new(DeviceStats::default()),
            Arc::new(Health::default()),
            svc,
        ));
        let plugin = LookupPlugin::linked(|| Table { peer_port: 4789 });
        let faults = Faults::new(&t.name, t.health.clone(), t.stats.clone());
        let inst = Arc::new(plugin.new_device(6, 7, faults).unwrap());
        svc.add_device(t.clone(), inst, "table", external);
        t
    }

    /// A frame from the hosts to `mac` misses the cache and asks.
    fn miss(t: &DynTarget, mac: [u8; 6]) {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let queued = svc_queued(t);
        assert_eq!(t.batch().route(&f), crate::target::Route::Held);
        assert_eq!(svc_queued(t), queued + 1, "the miss asked for a lookup");
    }

    fn svc_queued(t: &DynTarget) -> u64 {
        t.stats.lookup_requests.load(Ordering::Relaxed)
    }

    fn mac(n: u8) -> [u8; 6] {
        [0x02, 0, 0, 0, 1, n]
    }

    #[test]
    fn requests_are_taken_in_turn_across_devices() {
        let svc = LookupService::new(1);
        let busy = device(&svc, 1, true);
        let quiet = device(&svc, 2, true);
        for n in 0..3 {
            miss(&busy, mac(n));
        }
        miss(&quiet, mac(9));
        assert_eq!(svc.queued_total(), 4);
        let order: Vec<(u32, [u8; 6])> = (0..4)
            .map(|_| {
                let t = svc.take_external(5).expect("a request waits");
                (t.target.linkid, t.req.dst)
            })
            .collect();
        assert_eq!(order, [(1, mac(0)), (2, mac(9)), (1, mac(1)), (1, mac(2))]);
        assert!(svc.take_external(5).is_none());
        assert_eq!(svc.queued_total(), 0, "taken requests no longer wait");
        svc.shutdown();
    }

    #[test]
    fn a_closed_handle_gives_its_requests_back_under_new_ids() {
        let svc = LookupService::new(1);
        let t = device(&svc, 1, true);
        miss(&t, KNOWN);
        let first = svc.take_external(5).unwrap();
        assert!(svc.take_external(6).is_none(), "taken by handle 5");
        // Only its taker may answer or read it.
        assert!(svc.frame_of(Taker::Handle(6), first.reqid).is_err());
        assert_eq!(
            svc.frame_of(Taker::Handle(5), first.reqid).unwrap()[..6],
            KNOWN
        );
        svc.release_handle(5);
        let again = svc.take_external(6).unwrap();
        assert_eq!(again.req.dst, KNOWN);
        assert_ne!(again.reqid, first.reqid);
        let late = svc.answer(Taker::Handle(5), first.reqid, LookupAnswer::drop_frame());
        assert!(late.unwrap_err().starts_with("no request"));
        let p = Point {
            mac: [0; 6],
            ip: ip_to_in6(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            port: 4789,
        };
        svc.answer(Taker::Handle(6), again.reqid, LookupAnswer::respond(p))
            .unwrap();
        // The queued frame was released towards that destination.
        let released = t.batch().released();
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].1, p);
        assert_eq!(t.answer(&Mac(KNOWN)), Some(crate::target::Answer::To(p)));
        // An unusable destination is refused and the request stays held.
        miss(&t, mac(3));
        let r = svc.take_external(6).unwrap();
        let bad = Point { port: 0, ..p };
        assert!(svc
            .answer(Taker::Handle(6), r.reqid, LookupAnswer::respond(bad))
            .unwrap_err()
            .contains("port"));
        svc.answer(Taker::Handle(6), r.reqid, LookupAnswer::drop_frame())
            .unwrap();
        // Two requests raised (the re-queued one is not raised again), two
        // answers applied; a handle closing is no timeout, and the closed
        // handle's refused answer is not counted as late.
        assert_eq!(
            svc.stats.snapshot(),
            [
                ("requests", 2),
                ("answers", 2),
                ("timeouts", 0),
                ("late", 0)
            ]
        );
        svc.shutdown();
    }

    #[test]
    fn invalidated_entries_are_forgotten_and_kept_once_for_notification() {
        let svc = LookupService::new(1);
        let t = device(&svc, 1, true);
        let p = Point {
            mac: [0; 6],
            ip: ip_to_in6(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            port: 4789,
        };
        for n in [1, 2] {
            miss(&t, mac(n));
            let r = svc.take_external(5).unwrap();
            svc.answer(Taker::Handle(5), r.reqid, LookupAnswer::respond(p))
                .unwrap();
        }
        // mac(3) was never cached, and mac(2) has no answer left the
        // second time: forgetting them is no change.
        assert_eq!(svc.invalidate(&t, &[Mac(mac(2)), Mac(mac(3))]), 1);
        assert_eq!(svc.invalidate(&t, &[Mac(mac(1)), Mac(mac(2))]), 1);
        assert_eq!(t.answer(&Mac(mac(1))), None);
        assert_eq!(t.answer(&Mac(mac(2))), None);
        assert_eq!(svc.take_invalidated(), [(1, Mac(mac(1))), (1, Mac(mac(2)))]);
        assert_eq!(svc.take_invalidated(), [], "taken once");
        svc.shutdown();
    }

    /// Waits (bounded) for `f`.
    fn eventually(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "{what} did not happen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_slow_plugin_is_asked_again_then_degrades_the_device() {
        let svc = LookupService::new(2);
        let t = device(&svc, 1, false);
        t.configure(&crate::target::DynSettings {
            flood: false,
            lookup_timeout_ms: 20,
            vnetid: 7,
            limits: CacheLimits::default(),
        });
        miss(&t, SLOW);
        eventually("three timeouts", || {
            t.stats.lookup_timeouts.load(Ordering::Relaxed) >= TIMEOUTS_TO_DEGRADE as u64
        });
        let fault = t.health.fault().expect("degraded");
        assert!(fault.contains("lookup plugin table"), "{fault}");
        assert!(fault.contains("20 ms"), "{fault}");
        // The plugin's first answer comes after its request was asked
        // again: it is late.
        eventually("a late answer", || {
            svc.stats.late.load(Ordering::Relaxed) >= 1
        });
        let timeouts = svc.stats.timeouts.load(Ordering::Relaxed);
        assert!(timeouts >= TIMEOUTS_TO_DEGRADE as u64, "{timeouts}");
        assert_eq!(svc.stats.requests.load(Ordering::Relaxed), 1);
        svc.shutdown();
    }

    #[test]
    fn a_panicking_plugin_fails_the_request_and_degrades_the_device() {
        let svc = LookupService::new(1);
        let t = device(&svc, 1, false);
        miss(&t, PANICS);
        eventually("the panic", || t.health.fault().is_some());
        assert!(t.health.fault().unwrap().contains("table corrupted"));
        assert_eq!(t.stats.plugin_panics.load(Ordering::Relaxed), 1);
        eventually("the frame dropped", || {
            t.entry(&Mac(PANICS)).map(|(_, n)| n) == Some(0)
        });
        // The service lives on: the next lookup is answered.
        miss(&t, KNOWN);
        eventually("the answer", || {
            t.stats.lookup_answers.load(Ordering::Relaxed) == 1
        });
        svc.shutdown();
    }
}
