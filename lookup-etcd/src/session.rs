//! One device's connection to etcd: a task on the plugin's runtime that
//! connects, holds a lease, publishes what the device learned under it,
//! and watches the virtual network's keys; and the requests lookups make.
//!
//! ```text
//!   start ──> connecting ──(lease granted, own entries re-published,
//!                 ^          stale own entries deleted, watch open)──> connected
//!                 |                                                      |
//!                 +──── 0.5 s ──── disconnected <── any error, timeout ──+
//! ```
//!
//! (A session that was connected tries once at once before the first
//! pause: the other members of a cluster may answer.)
//!
//! Lookups run on the daemon's lookup threads and block on the runtime for
//! at most [`REQUEST_TIMEOUT`]; while the session is not connected they
//! fail at once with `ENOTCONN` naming the endpoints, which degrades the
//! device until a lookup succeeds again.

use crate::schema::{Family, IpEntry, Key, Keys, MacEntry};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, WatchOptions,
};
use overlay_plugin_abi::{Mac, PluginError};
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    future::Future,
    net::IpAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};
use tokio::{
    runtime::Handle,
    sync::{mpsc, watch},
};

/// The longest a single request to etcd may take, below the daemon's
/// default `lookup_timeout` (2 s) so that an unreachable etcd is reported
/// by the plugin rather than by a timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);
/// The pause between two connection attempts.
const RETRY: Duration = Duration::from_millis(500);
/// How long after a change a MAC is reported stale a second time, to
/// cover an answer that was read before the change and applied after the
/// first report.
const REREPORT: Duration = Duration::from_millis(300);

/// What a session needs to know, fixed at start.
#[derive(Clone)]
pub struct Config {
    /// The endpoints as given, for messages.
    pub endpoints: Vec<String>,
    /// TLS and authentication.
    pub options: ConnectOptions,
    /// The virtual network's keys.
    pub keys: Keys,
    /// The underlay family destinations must have.
    pub family: Family,
    /// This host's underlay address, when it publishes.
    pub host_ip: Option<IpAddr>,
    /// This host's underlay port, and the port of entries without one.
    pub port: u16,
    /// Lease TTL, seconds.
    pub ttl: i64,
}

impl Config {
    /// The identity this host writes as `host`.
    pub fn me(&self) -> Option<String> {
        self.host_ip.map(|ip| ip.to_string())
    }

    fn mac_entry(&self) -> Option<MacEntry> {
        Some(MacEntry {
            ip: self.host_ip?,
            port: Some(self.port),
            host: self.me(),
            dhcp_proxy: None,
        })
    }
}

impl Owned {
    /// As saved in the daemon's state file: `{"macs":[..],"ips":{ip:mac}}`.
    pub fn to_json(&self) -> Vec<u8> {
        let macs: Vec<String> = self.macs.iter().map(Mac::to_string).collect();
        let ips: std::collections::BTreeMap<String, String> = self
            .ips
            .iter()
            .map(|(ip, m)| (ip.to_string(), m.to_string()))
            .collect();
        serde_json::to_vec(&serde_json::json!({ "macs": macs, "ips": ips }))
            .expect("owned entries serialise")
    }

    /// Reads what [`Owned::to_json`] wrote.
    pub fn from_json(bytes: &[u8]) -> Result<Owned, String> {
        #[derive(serde::Deserialize)]
        struct Saved {
            macs: Vec<String>,
            ips: std::collections::BTreeMap<IpAddr, String>,
        }
        let s: Saved =
            serde_json::from_slice(bytes).map_err(|e| format!("saved etcd state: {e}"))?;
        let mut o = Owned::default();
        for m in s.macs {
            o.macs.insert(Mac::parse(&m)?);
        }
        for (ip, m) in s.ips {
            o.ips.insert(ip, Mac::parse(&m)?);
        }
        Ok(o)
    }
}

/// The read-only counters of an instance.
#[derive(Default)]
pub struct Counters {
    /// Lookups asked.
    pub lookups: AtomicU64,
    /// Unicast lookups answered with a destination.
    pub answers: AtomicU64,
    /// Unicast lookups for a MAC the directory does not have.
    pub misses: AtomicU64,
    /// ARP requests answered.
    pub arp: AtomicU64,
    /// Neighbour Solicitations answered.
    pub ndp: AtomicU64,
    /// DHCP requests redirected.
    pub dhcp: AtomicU64,
    /// Frames dropped for any other reason.
    pub dropped: AtomicU64,
    /// Lookups refused because etcd was unreachable.
    pub unavailable: AtomicU64,
    /// Watch events received.
    pub watch_events: AtomicU64,
    /// Connections re-established after a failure.
    pub reconnects: AtomicU64,
    /// Entries skipped as malformed or outside the schema.
    pub skipped: AtomicU64,
    /// Entries this host put.
    pub published: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What this host owns: the MACs behind its device and the addresses it
/// publishes.
#[derive(Default, Clone, PartialEq, Eq, Debug)]
pub struct Owned {
    /// Local MACs.
    pub macs: BTreeSet<Mac>,
    /// The overlay addresses this host publishes, and their MACs: those
    /// its hosts announce, and those a DHCP server behind it leased.
    pub ips: std::collections::BTreeMap<IpAddr, Mac>,
}

#[derive(Clone, Copy)]
enum Publish {
    Mac(Mac),
    Ip(IpAddr, Mac),
}

#[derive(Default)]
struct State {
    client: Option<Client>,
    connected: bool,
    last_error: String,
    owned: Owned,
    /// MACs answered since start, reported stale when changes may have
    /// been missed.
    answered: HashSet<Mac>,
}

/// MACs to report stale now, and MACs to report again later.
type Stale = (BTreeSet<Mac>, Vec<(Instant, Mac)>);

/// The shared side of a session.
pub struct Session {
    cfg: Config,
    rt: Handle,
    state: Mutex<State>,
    stale: Mutex<Stale>,
    /// Counters (kept by the instance across starts).
    pub counters: Arc<Counters>,
    publish: mpsc::UnboundedSender<Publish>,
    stop: watch::Sender<bool>,
    lease: Mutex<i64>,
    /// Log lines already written for a malformed key, so that a bad
    /// entry is logged once per revision, not once per read.
    logged: Mutex<HashMap<Vec<u8>, i64>>,
}

fn log(msg: &str) {
    eprintln!("etcd: {msg}");
}

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} ms",
            REQUEST_TIMEOUT.as_millis()
        )),
    }
}

/// Like [`bounded`], for a request that may be sent again: sends what `f`
/// makes again while it fails as unavailable, up to `tries` times in all,
/// within the one [`REQUEST_TIMEOUT`]. The client spreads requests over
/// every endpoint and learns that a member is down only from a request
/// routed to it, which fails with "tcp connect error" although the other
/// members answer; repeating the request reaches one of them.
async fn bounded_retrying<T, F, Fut>(what: &str, tries: usize, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let run = async {
        let mut left = tries.max(1);
        loop {
            left -= 1;
            match f().await {
                Err(etcd_client::Error::GRpcStatus(s))
                    if s.code() == tonic::Code::Unavailable && left > 0 => {}
                r => return r,
            }
        }
    };
    bounded(what, run).await
}

impl Session {
    /// Starts a session for `cfg` on `rt`, publishing `owned` (restored
    /// from before a restart) once connected. Waits up to `wait` for the
    /// first connection; a session that is not connected by then goes on
    /// trying in the background.
    pub fn start(
        cfg: Config,
        rt: Handle,
        owned: Owned,
        counters: Arc<Counters>,
        wait: Duration,
    ) -> Arc<Session> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let s = Arc::new(Session {
            cfg,
            rt: rt.clone(),
            state: Mutex::new(State {
                owned,
                last_error: "not connected yet".into(),
                ..State::default()
            }),
            stale: Mutex::new((BTreeSet::new(), Vec::new())),
            counters,
            publish: tx,
            stop,
            lease: Mutex::new(0),
            logged: Mutex::new(HashMap::new()),
        });
        let (up_tx, mut up_rx) = watch::channel(false);
        rt.spawn(s.clone().run(rx, stop_rx, up_tx));
        let _ = rt.block_on(async { tokio::time::timeout(wait, up_rx.wait_for(|up| *up)).await });
        s
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the task and revokes the lease, so that this host's entries
    /// disappear at once.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        let lease = std::mem::take(&mut *self.lease.lock().unwrap_or_else(PoisonError::into_inner));
        let client = self.lock().client.clone();
        if let (Some(mut c), true) = (client, lease != 0) {
            let r = self
                .rt
                .block_on(bounded("revoking the lease", c.lease_revoke(lease)));
            if let Err(e) = r {
                log(&format!(
                    "{e}; this host's entries expire with the lease in {} s",
                    self.cfg.ttl
                ));
            }
        }
    }

    /// What this host owns now (for the daemon's state file).
    pub fn owned(&self) -> Owned {
        self.lock().owned.clone()
    }

    fn unavailable(&self, why: &str) -> PluginError {
        bump(&self.counters.unavailable);
        PluginError::new(
            libc::ENOTCONN,
            format!(
                "etcd is unreachable at {}: {why}",
                self.cfg.endpoints.join(",")
            ),
        )
    }

    fn client(&self) -> Result<Client, PluginError> {
        let st = self.lock();
        match (&st.client, st.connected) {
            (Some(c), true) => Ok(c.clone()),
            _ => {
                let why = st.last_error.clone();
                drop(st);
                Err(self.unavailable(&why))
            }
        }
    }

    /// How many times a request that may be repeated is sent while
    /// members are found down: each endpoint twice.
    fn tries(&self) -> usize {
        2 * self.cfg.endpoints.len()
    }

    /// Reads `key`, or every key under it with `prefix` (a linearizable
    /// read, sent again to another member when the one it reached is
    /// down).
    fn read(&self, key: &str, prefix: bool) -> Result<Vec<KeyValue>, PluginError> {
        let c = self.client()?;
        let r = self.rt.block_on(bounded_retrying("get", self.tries(), || {
            let mut c = c.clone();
            let opts = prefix.then(|| GetOptions::new().with_prefix());
            let key = key.to_string();
            async move { c.get(key, opts).await }
        }));
        match r {
            Ok(mut resp) => Ok(resp.take_kvs()),
            Err(e) => Err(self.unavailable(&e)),
        }
    }

    /// Reads one key.
    pub fn get(&self, key: &str) -> Result<Option<KeyValue>, PluginError> {
        Ok(self.read(key, false)?.into_iter().next())
    }

    /// Reads every key under `prefix`.
    pub fn get_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>, PluginError> {
        self.read(prefix, true)
    }

    /// Counts and logs (once per key and revision) an entry that cannot be
    /// used.
    pub fn skip(&self, key: &[u8], revision: i64, why: &str) {
        bump(&self.counters.skipped);
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        if logged.get(key) != Some(&revision) {
            if logged.len() > 4096 {
                logged.clear();
            }
            logged.insert(key.to_vec(), revision);
            log(&format!("skipped {}: {why}", String::from_utf8_lossy(key)));
        }
    }

    /// Notes that `mac` was answered, so that a missed change reports it.
    pub fn answered(&self, mac: Mac) {
        self.lock().answered.insert(mac);
    }

    /// Records `mac` (and `ip`) as behind this host; publishes what is new.
    pub fn learn(&self, mac: Mac, ip: Option<IpAddr>) {
        if self.cfg.host_ip.is_none() || mac.is_group() || mac.is_zero() {
            return;
        }
        if self.lock().owned.macs.insert(mac) {
            let _ = self.publish.send(Publish::Mac(mac));
        }
        if let Some(ip) = ip {
            self.learn_address(ip, mac);
        }
    }

    /// Records that `ip` belongs to `mac` (which may live behind another
    /// host: the client of a DHCP server behind this one); publishes it
    /// when it is new.
    pub fn learn_address(&self, ip: IpAddr, mac: Mac) {
        if self.cfg.host_ip.is_none() || mac.is_group() || mac.is_zero() {
            return;
        }
        let mut st = self.lock();
        if st.owned.ips.get(&ip) != Some(&mac) {
            st.owned.ips.insert(ip, mac);
            let _ = self.publish.send(Publish::Ip(ip, mac));
        }
    }

    /// MACs whose entries changed since the last call.
    pub fn take_stale(&self) -> Vec<[u8; 6]> {
        let mut s = self.stale.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let (set, later) = &mut *s;
        let mut out: BTreeSet<Mac> = std::mem::take(set);
        later.retain(|(when, mac)| {
            if *when <= now {
                out.insert(*mac);
                false
            } else {
                true
            }
        });
        out.into_iter().map(|m| m.octets()).collect()
    }

    fn mark_stale(&self, macs: impl IntoIterator<Item = Mac>) {
        let mut s = self.stale.lock().unwrap_or_else(PoisonError::into_inner);
        let when = Instant::now() + REREPORT;
        for m in macs {
            s.0.insert(m);
            s.1.push((when, m));
        }
    }

    async fn run(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Publish>,
        mut stop: watch::Receiver<bool>,
        up: watch::Sender<bool>,
    ) {
        let mut last_rev = 0i64;
        let mut failed = false;
        loop {
            let err = tokio::select! {
                e = self.connected_once(&mut rx, &mut last_rev, &up, failed) => e,
                _ = stop.wait_for(|s| *s) => return,
            };
            let lost = {
                let mut st = self.lock();
                let lost = st.connected;
                if lost || !failed {
                    log(&format!(
                        "lost etcd at {}: {err}; reconnecting",
                        self.cfg.endpoints.join(",")
                    ));
                }
                st.connected = false;
                st.last_error = err;
                lost
            };
            failed = true;
            // A session that was up lost the member its streams went
            // through (or the cluster its leader): the other members may
            // well answer, so the first attempt is made at once.
            if lost {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn client_for_session(&self) -> Result<Client, String> {
        if let Some(c) = self.lock().client.clone() {
            return Ok(c);
        }
        let c = bounded(
            "connecting",
            Client::connect(&self.cfg.endpoints, Some(self.cfg.options.clone())),
        )
        .await?;
        self.lock().client = Some(c.clone());
        Ok(c)
    }

    /// One connected period; returns why it ended.
    async fn connected_once(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Publish>,
        last_rev: &mut i64,
        up: &watch::Sender<bool>,
        failed: bool,
    ) -> String {
        match self.connected_inner(rx, last_rev, up, failed).await {
            Ok(()) => "the session ended".into(),
            Err(e) => e,
        }
    }

    async fn put(
        &self,
        c: &mut Client,
        key: String,
        value: String,
        lease: i64,
    ) -> Result<(), String> {
        // The same value under the same lease: a put sent twice leaves
        // what one leaves.
        bounded_retrying("put", self.tries(), || {
            let mut c = c.clone();
            let (key, value) = (key.clone(), value.clone());
            async move {
                c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })
        .await?;
        bump(&self.counters.published);
        Ok(())
    }

    async fn publish(&self, c: &mut Client, p: Publish, lease: i64) -> Result<(), String> {
        // Learned, then taken by another host before it was written: not
        // ours any more.
        let Some(value) = self.value_of(&p) else {
            return Ok(());
        };
        let key = match p {
            Publish::Mac(mac) => self.cfg.keys.mac(mac),
            Publish::Ip(ip, _) => self.cfg.keys.ip(ip),
        };
        self.put(c, key, value, lease).await
    }

    /// Publishes again, under the new `lease`, what this host owned before
    /// it (re)connected (restored from before a restart, or learned
    /// before an outage), given the directory as `kvs` read then. A key
    /// that another host or an operator wrote meanwhile is theirs: the
    /// MAC or address moved while this host was away, so it is dropped
    /// from what this host owns instead of being claimed over the newer
    /// entry (a frame seen here later claims it again, as it should).
    /// Each put is conditional on the key being as read, so a write that
    /// comes in between wins too (the watch then reports it). Entries of
    /// this host's own under an older lease that it does not own any more
    /// are deleted: they are from before the restart or outage, and never
    /// answered.
    async fn claim_again(
        &self,
        c: &mut Client,
        kvs: &[KeyValue],
        lease: i64,
    ) -> Result<(), String> {
        let Some(me) = self.cfg.me() else {
            return Ok(());
        };
        let keys = &self.cfg.keys;
        // key -> (mod revision, host)
        let current: HashMap<&[u8], (i64, Option<String>)> = kvs
            .iter()
            .map(|kv| (kv.key(), (kv.mod_revision(), host_of(kv.value()))))
            .collect();
        let owned = self.lock().owned.clone();
        let mut claims: Vec<(String, String, Publish)> = Vec::new();
        for mac in owned.macs {
            claims.push((keys.mac(mac), mac.to_string(), Publish::Mac(mac)));
        }
        for (ip, mac) in owned.ips {
            claims.push((keys.ip(ip), ip.to_string(), Publish::Ip(ip, mac)));
        }
        let mut claimed: HashSet<String> = HashSet::new();
        for (key, what, p) in claims {
            let rev = match current.get(key.as_bytes()) {
                Some((_, host)) if host.as_deref() != Some(me.as_str()) => {
                    let mut st = self.lock();
                    match p {
                        Publish::Mac(mac) => st.owned.macs.remove(&mac),
                        Publish::Ip(ip, _) => st.owned.ips.remove(&ip).is_some(),
                    };
                    drop(st);
                    log(&format!(
                        "{what} moved to {} while this host was away; not published again",
                        host.as_deref().unwrap_or("an entry written by hand")
                    ));
                    continue;
                }
                Some((rev, _)) => *rev,
                None => 0,
            };
            let Some(value) = self.value_of(&p) else {
                continue;
            };
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, rev)])
                .and_then([TxnOp::put(
                    key.clone(),
                    value,
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            if bounded("put", c.txn(txn)).await?.succeeded() {
                bump(&self.counters.published);
                claimed.insert(key);
            }
        }
        for kv in kvs {
            let key = String::from_utf8_lossy(kv.key());
            if kv.lease() == lease
                || claimed.contains(key.as_ref())
                || host_of(kv.value()).as_deref() != Some(me.as_str())
            {
                continue;
            }
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    kv.key(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then([TxnOp::delete(kv.key(), None)]);
            bounded("deleting a stale entry", c.txn(txn)).await?;
        }
        Ok(())
    }

    /// The value this host writes for `p`, while it still owns it.
    fn value_of(&self, p: &Publish) -> Option<String> {
        match *p {
            Publish::Mac(mac) => {
                if !self.lock().owned.macs.contains(&mac) {
                    return None;
                }
                Some(self.cfg.mac_entry()?.to_json())
            }
            Publish::Ip(ip, mac) => {
                if self.lock().owned.ips.get(&ip) != Some(&mac) {
                    return None;
                }
                Some(
                    IpEntry {
                        mac,
                        host: self.cfg.me(),
                    }
                    .to_json(),
                )
            }
        }
    }

    async fn connected_inner(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Publish>,
        last_rev: &mut i64,
        up: &watch::Sender<bool>,
        failed: bool,
    ) -> Result<(), String> {
        let mut c = self.client_for_session().await?;
        // A lease granted twice (the first answer lost) leaves one unused,
        // which expires by itself.
        let ttl = self.cfg.ttl;
        let lease = bounded_retrying("granting a lease", self.tries(), || {
            let mut c = c.clone();
            async move { c.lease_grant(ttl, None).await }
        })
        .await?
        .id();
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = lease;
        // What is queued is in the snapshot of what this host owns.
        while rx.try_recv().is_ok() {}
        let base = self.cfg.keys.base().to_string();
        let mut resp = bounded_retrying("reading the directory", self.tries(), || {
            let mut c = c.clone();
            let base = base.clone();
            async move { c.get(base, Some(GetOptions::new().with_prefix())).await }
        })
        .await?;
        let rev = resp.header().map_or(0, |h| h.revision());
        let kvs = resp.take_kvs();
        self.claim_again(&mut c, &kvs, lease).await?;
        let start = if *last_rev > 0 {
            *last_rev + 1
        } else {
            rev + 1
        };
        let mut ws = bounded(
            "watching the directory",
            c.watch(
                base.clone(),
                Some(WatchOptions::new().with_prefix().with_start_revision(start)),
            ),
        )
        .await?;
        let (mut keeper, mut kstream) =
            bounded("keeping the lease alive", c.lease_keep_alive(lease)).await?;
        {
            let mut st = self.lock();
            st.connected = true;
            st.last_error.clear();
        }
        if failed {
            bump(&self.counters.reconnects);
            log(&format!(
                "reconnected to etcd at {}",
                self.cfg.endpoints.join(",")
            ));
        }
        let _ = up.send(true);
        let mut tick = tokio::time::interval(Duration::from_millis(
            (self.cfg.ttl as u64 * 1000 / 3).max(500),
        ));
        loop {
            tokio::select! {
                m = ws.message() => {
                    let resp = m.map_err(|e| format!("watch: {e}"))?
                        .ok_or("the watch ended")?;
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            // Changes were compacted away: whatever was
                            // answered may be stale.
                            let all: Vec<Mac> = self.lock().answered.iter().copied().collect();
                            self.mark_stale(all);
                            *last_rev = 0;
                        }
                        return Err(format!("the watch was cancelled: {}", resp.cancel_reason()));
                    }
                    if let Some(h) = resp.header() {
                        *last_rev = (*last_rev).max(h.revision());
                    }
                    for ev in resp.events() {
                        if let Some(kv) = ev.kv() {
                            *last_rev = (*last_rev).max(kv.mod_revision());
                            self.event(ev.event_type(), kv);
                        }
                    }
                }
                _ = tick.tick() => {
                    bounded("keeping the lease alive", keeper.keep_alive()).await?;
                    let r = bounded("keeping the lease alive", kstream.message()).await?
                        .ok_or("the lease stream ended")?;
                    if r.ttl() <= 0 {
                        return Err(format!("lease {lease:x} expired"));
                    }
                }
                p = rx.recv() => {
                    let Some(p) = p else { return Ok(()) };
                    self.publish(&mut c, p, lease).await?;
                }
            }
        }
    }

    fn event(&self, kind: EventType, kv: &KeyValue) {
        bump(&self.counters.watch_events);
        let key = match self.cfg.keys.parse(kv.key()) {
            Ok(k) => k,
            Err(why) => {
                self.skip(kv.key(), kv.mod_revision(), &why);
                return;
            }
        };
        let me = self.cfg.me();
        match key {
            Key::Mac(mac) => {
                self.mark_stale([mac]);
                if kind != EventType::Put {
                    return;
                }
                match MacEntry::parse(kv.value(), self.cfg.family) {
                    Ok(e) => {
                        if e.host != me && self.lock().owned.macs.remove(&mac) {
                            log(&format!(
                                "{mac} moved to {}; no longer published by this host",
                                e.host.as_deref().unwrap_or("an entry written by hand")
                            ));
                        }
                    }
                    Err(why) => self.skip(kv.key(), kv.mod_revision(), &why),
                }
            }
            Key::Ip(ip) => {
                if kind != EventType::Put {
                    return;
                }
                match IpEntry::parse(kv.value()) {
                    Ok(e) => {
                        let mut st = self.lock();
                        if e.host != me && st.owned.ips.contains_key(&ip) {
                            st.owned.ips.remove(&ip);
                        }
                    }
                    Err(why) => self.skip(kv.key(), kv.mod_revision(), &why),
                }
            }
        }
    }
}

/// The `host` field of an entry, when it has one.
pub fn host_of(value: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    v.get("host")?.as_str().map(str::to_string)
}
