//! The `etcd` lookup plugin: dynamic mode, every answer taken from a
//! directory in etcd that every host of the overlay reads and writes.
//!
//! The directory (its keys and values are in [`schema`] and
//! `docs/etcd.md`) has one key per (virtual network, MAC) giving the
//! underlay destination of the host the MAC lives behind, and one key per
//! (virtual network, IP) giving the MAC that owns the address. For each
//! frame whose destination missed the device's target cache the daemon
//! asks [`EtcdDevice::lookup`], which decides as `files` does:
//!
//! 1. ARP requests are answered from the IP keys (an injected reply).
//! 2. Neighbour Solicitations are answered from the IP keys; other
//!    Neighbour Discovery is dropped.
//! 3. A DHCP request from a host whose entry has `dhcp-proxy` is re-sent,
//!    unicast to that server.
//! 4. Other broadcast and multicast is replicated to every other host of
//!    the virtual network when the device floods, else dropped.
//! 5. Unicast: the destination MAC's entry.
//!
//! Each lookup also *learns*: the frame's source MAC lives behind this
//! host, the sender address of ARP and Neighbour Discovery is its
//! overlay address, and a DHCPACK from a server behind this host gives
//! the address it leased to its client. What is learned is published under a lease that the
//! [`session`] keeps alive while the device is active, so a host that
//! dies takes its entries with it when the lease expires. A watch on the
//! virtual network's keys reports the MACs whose entries changed through
//! `take_stale`, so cache entries follow a MAC that moves to another host.
//!
//! While etcd cannot be reached, the daemon's cache keeps serving what it
//! has; new lookups fail with `ENOTCONN` naming the endpoints, which
//! degrades the device until a lookup succeeds again.

pub mod schema;
pub mod session;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use overlay_plugin_abi::{
    dest,
    kit::{Lookup, LookupInstance},
    prop::{self, perm, PropStore, PropValue},
    proxy::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6},
    LookupAnswer, LookupInfo, LookupRequest, Mac, PluginError, Point, PropInfo, MODE_DYNAMIC,
};
use schema::{Family, IpEntry, Key, Keys, MacEntry};
use session::{bump, Config, Counters, Owned, Session};
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs, UdpSocket},
    sync::{atomic::Ordering, Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

/// Comma-separated etcd client URLs.
pub const ENDPOINTS: &str = "etcd/endpoints";
/// The directory's key prefix.
pub const PREFIX: &str = "etcd/prefix";
/// Seconds this host's entries outlive it.
pub const LEASE_TTL: &str = "etcd/lease_ttl";
/// Whether this host publishes the MACs and addresses behind its device.
pub const LEARN: &str = "etcd/learn";
/// The underlay address peers reach this host at.
pub const HOST_IP: &str = "etcd/host_ip";
/// The underlay port this host publishes and entries without one use.
pub const PORT: &str = "etcd/port";
/// PEM file of the CA that signed etcd's certificate.
pub const CA: &str = "etcd/ca";
/// PEM file of this host's client certificate.
pub const CERT: &str = "etcd/cert";
/// PEM file of this host's client key.
pub const KEY: &str = "etcd/key";
/// etcd user name.
pub const USER: &str = "etcd/user";
/// A file holding the etcd user's password (the password itself stays
/// out of properties and the daemon's state file).
pub const PASSWORD_FILE: &str = "etcd/password_file";

const COUNTERS: [&str; 12] = [
    "etcd/lookups",
    "etcd/answers",
    "etcd/misses",
    "etcd/arp",
    "etcd/ndp",
    "etcd/dhcp",
    "etcd/dropped",
    "etcd/unavailable",
    "etcd/watch_events",
    "etcd/reconnects",
    "etcd/skipped",
    "etcd/published",
];

const PORT_DEFAULT: u64 = 4789;
const TTL_DEFAULT: u64 = 10;

fn counter<'a>(c: &'a Counters, name: &str) -> Option<&'a std::sync::atomic::AtomicU64> {
    Some(match name {
        "etcd/lookups" => &c.lookups,
        "etcd/answers" => &c.answers,
        "etcd/misses" => &c.misses,
        "etcd/arp" => &c.arp,
        "etcd/ndp" => &c.ndp,
        "etcd/dhcp" => &c.dhcp,
        "etcd/dropped" => &c.dropped,
        "etcd/unavailable" => &c.unavailable,
        "etcd/watch_events" => &c.watch_events,
        "etcd/reconnects" => &c.reconnects,
        "etcd/skipped" => &c.skipped,
        "etcd/published" => &c.published,
        _ => return None,
    })
}

fn properties(with_port: bool) -> Vec<PropInfo> {
    let mut v = vec![
        PropInfo::string(ENDPOINTS).perm(perm::RRW),
        PropInfo::string(PREFIX)
            .perm(perm::RW)
            .default_str("/overlayd"),
        PropInfo::uint(LEASE_TTL)
            .perm(perm::RW)
            .default_uint(TTL_DEFAULT)
            .range(2, 3600),
        PropInfo::uint(LEARN)
            .perm(perm::RW)
            .default_uint(1)
            .range(0, 1),
        PropInfo::ip(HOST_IP).perm(perm::RW),
    ];
    if with_port {
        v.push(
            PropInfo::uint(PORT)
                .perm(perm::RW)
                .default_uint(PORT_DEFAULT)
                .range(1, 65535),
        );
    }
    v.extend([
        PropInfo::string(CA).perm(perm::RW),
        PropInfo::string(CERT).perm(perm::RW),
        PropInfo::string(KEY).perm(perm::RW),
        PropInfo::string(USER).perm(perm::RW),
        PropInfo::string(PASSWORD_FILE).perm(perm::RW),
    ]);
    v.extend(COUNTERS.iter().map(|n| PropInfo::uint(n).read_only()));
    v
}

/// The plugin's own async runtime, shared by every device: one worker
/// thread, started with the first device.
fn runtime() -> Result<tokio::runtime::Handle, PluginError> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt.handle().clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("etcd")
        .enable_all()
        .build()
        .map_err(|e| PluginError::new(libc::EAGAIN, format!("cannot start etcd's runtime: {e}")))?;
    Ok(RT.get_or_init(|| rt).handle().clone())
}

/// The plugin object.
pub struct Etcd;

impl Lookup for Etcd {
    type Instance = EtcdDevice;

    fn info(&self) -> LookupInfo {
        LookupInfo {
            modes: MODE_DYNAMIC,
            dest: dest::IP | dest::PORT,
            properties: properties(true).into(),
        }
    }

    fn new_instance(&self, dest: u32, vnetid: u64) -> Result<EtcdDevice, PluginError> {
        if dest == 0 || dest & !(dest::IP | dest::PORT) != 0 {
            return Err(PluginError::not_supported(format!(
                "etcd provides IP and port destinations; this encapsulation needs kinds {dest:#x}"
            )));
        }
        Ok(EtcdDevice {
            dest,
            vnetid,
            props: PropStore::new(properties(dest & dest::PORT != 0)),
            session: Mutex::new(None),
            restored: Mutex::new(Owned::default()),
            counters: Arc::new(Counters::default()),
        })
    }
}

/// One device's view of the directory.
pub struct EtcdDevice {
    dest: u32,
    vnetid: u64,
    props: PropStore,
    session: Mutex<Option<Arc<Session>>>,
    /// What a restarted daemon gave back, published at the next start.
    restored: Mutex<Owned>,
    counters: Arc<Counters>,
}

/// The endpoints of `etcd/endpoints`, checked.
fn parse_endpoints(text: &str) -> Result<Vec<String>, PluginError> {
    let eps: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if eps.is_empty() {
        return Err(PluginError::invalid(format!(
            "{ENDPOINTS}: no endpoint; give etcd's client URLs, such as http://192.0.2.1:2379"
        )));
    }
    for e in &eps {
        let rest = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"))
            .ok_or_else(|| {
                PluginError::invalid(format!(
                    "{ENDPOINTS}: '{e}' is not an http:// or https:// URL"
                ))
            })?;
        if host_port(rest).is_none() {
            return Err(PluginError::invalid(format!(
                "{ENDPOINTS}: '{e}' has no host:port (such as http://192.0.2.1:2379)"
            )));
        }
    }
    Ok(eps)
}

/// `host:port` of a URL without its scheme (a path is ignored).
fn host_port(rest: &str) -> Option<(String, u16)> {
    let hp = rest.split('/').next()?;
    let (host, port) = hp.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host.to_string(), port))
}

/// The local address this host uses towards the first endpoint: the
/// default of `etcd/host_ip` (the underlay address, when etcd is reached
/// over the underlay).
fn route_source(endpoint: &str) -> Option<IpAddr> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))?;
    let (host, port) = host_port(rest)?;
    let to = (host.as_str(), port).to_socket_addrs().ok()?.next()?;
    let bind: IpAddr = if to.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let s = UdpSocket::bind((bind, 0)).ok()?;
    s.connect(to).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn read_pem(name: &str, path: &str) -> Result<Vec<u8>, PluginError> {
    std::fs::read(path)
        .map_err(|e| PluginError::invalid(format!("{name}: cannot read {path}: {e}")))
}

impl EtcdDevice {
    fn session(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn port(&self) -> u16 {
        self.props
            .uint(PORT)
            .unwrap_or(PORT_DEFAULT)
            .clamp(1, 65535) as u16
    }

    fn config(&self) -> Result<Config, PluginError> {
        let endpoints = parse_endpoints(&self.props.string(ENDPOINTS).ok_or_else(|| {
            PluginError::new(
                libc::EAGAIN,
                format!("etcd needs {ENDPOINTS}, etcd's client URLs, before it can start"),
            )
        })?)?;
        let prefix = self
            .props
            .string(PREFIX)
            .unwrap_or_else(|| "/overlayd".into());
        if !prefix.starts_with('/') {
            return Err(PluginError::invalid(format!(
                "{PREFIX}: '{prefix}' does not start with '/'; write a key prefix such as /overlayd"
            )));
        }
        let learn = self.props.uint(LEARN).unwrap_or(1) == 1;
        let host_ip = match self.props.ip(HOST_IP) {
            Some(ip) => Some(ip),
            None => route_source(&endpoints[0]),
        };
        if learn && host_ip.is_none() {
            return Err(PluginError::new(
                libc::EAGAIN,
                format!(
                    "{LEARN} is on but this host's underlay address is unknown (no route \
                     towards {}); set {HOST_IP}, or turn {LEARN} off",
                    endpoints[0]
                ),
            ));
        }
        let family = host_ip.map_or(Family::V4, Family::of);
        let mut options = ConnectOptions::new()
            .with_connect_timeout(session::REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), session::REQUEST_TIMEOUT);
        if let Some(user) = self.props.string(USER) {
            let password = match self.props.string(PASSWORD_FILE) {
                Some(path) => {
                    let bytes = read_pem(PASSWORD_FILE, &path)?;
                    String::from_utf8(bytes)
                        .map_err(|_| {
                            PluginError::invalid(format!("{PASSWORD_FILE}: {path} is not UTF-8"))
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_string()
                }
                None => String::new(),
            };
            options = options.with_user(user, password);
        }
        let (ca, cert, key) = (
            self.props.string(CA),
            self.props.string(CERT),
            self.props.string(KEY),
        );
        if ca.is_some() || cert.is_some() || key.is_some() {
            if endpoints.iter().any(|e| e.starts_with("http://")) {
                return Err(PluginError::invalid(format!(
                    "{CA}, {CERT} and {KEY} need https:// endpoints; {ENDPOINTS} has http:// ones"
                )));
            }
            let mut tls = TlsOptions::new();
            if let Some(ca) = ca {
                tls = tls.ca_certificate(Certificate::from_pem(read_pem(CA, &ca)?));
            }
            match (cert, key) {
                (Some(c), Some(k)) => {
                    tls = tls.identity(Identity::from_pem(read_pem(CERT, &c)?, read_pem(KEY, &k)?))
                }
                (None, None) => {}
                _ => {
                    return Err(PluginError::invalid(format!(
                        "{CERT} and {KEY} go together: set both or neither"
                    )))
                }
            }
            options = options.with_tls(tls);
        }
        Ok(Config {
            endpoints,
            options,
            keys: Keys::new(&prefix, self.vnetid),
            family,
            host_ip: if learn { host_ip } else { None },
            port: self.port(),
            ttl: self.props.uint(LEASE_TTL).unwrap_or(TTL_DEFAULT) as i64,
        })
    }

    fn point(&self, e: &MacEntry) -> Point {
        Point {
            mac: [0; 6],
            ip: prop::ip_to_in6(e.ip),
            port: if self.dest & dest::PORT != 0 {
                e.port.unwrap_or(self.port())
            } else {
                0
            },
        }
    }

    fn drop_counted(&self) -> LookupAnswer {
        bump(&self.counters.dropped);
        LookupAnswer::drop_frame()
    }

    /// The entry of `mac`, when the directory has a usable one that is not
    /// this host's own.
    fn mac_entry(
        &self,
        s: &Session,
        keys: &Keys,
        mac: Mac,
    ) -> Result<Option<MacEntry>, PluginError> {
        let Some(kv) = s.get(&keys.mac(mac))? else {
            return Ok(None);
        };
        match MacEntry::parse(kv.value(), s_family(s, self)) {
            Ok(e) if e.host.is_some() && e.host == self.me() => Ok(None),
            Ok(e) => Ok(Some(e)),
            Err(why) => {
                s.skip(kv.key(), kv.mod_revision(), &why);
                Ok(None)
            }
        }
    }

    /// The owner of `ip`.
    fn ip_owner(&self, s: &Session, keys: &Keys, ip: IpAddr) -> Result<Option<Mac>, PluginError> {
        let Some(kv) = s.get(&keys.ip(ip))? else {
            return Ok(None);
        };
        match IpEntry::parse(kv.value()) {
            Ok(e) => Ok(Some(e.mac)),
            Err(why) => {
                s.skip(kv.key(), kv.mod_revision(), &why);
                Ok(None)
            }
        }
    }

    fn me(&self) -> Option<String> {
        self.family_and_me().1
    }

    fn family_and_me(&self) -> (Family, Option<String>) {
        let host = self.props.ip(HOST_IP);
        (
            host.map_or(Family::V4, Family::of),
            host.map(|ip| ip.to_string()),
        )
    }

    fn decide(
        &self,
        s: &Session,
        req: &LookupRequest,
        frame: &[u8],
    ) -> Result<LookupAnswer, PluginError> {
        let keys = Keys::new(
            &self
                .props
                .string(PREFIX)
                .unwrap_or_else(|| "/overlayd".into()),
            self.vnetid,
        );
        if req.ethertype == ETHERTYPE_ARP {
            let mut failed = None;
            let r = proxy::proxy_arp(frame, |ip| {
                self.ip_owner(s, &keys, IpAddr::V4(ip))
                    .map_err(|e| failed = Some(e))
                    .ok()
                    .flatten()
                    .map(|m| m.octets())
            });
            if let Some(e) = failed {
                return Err(e);
            }
            return Ok(match r {
                Ok(reply) => {
                    bump(&self.counters.arp);
                    LookupAnswer::inject(reply)
                }
                Err(_) => self.drop_counted(),
            });
        }
        if req.ethertype == ETHERTYPE_IPV6 && req.dst[..2] == [0x33, 0x33] {
            let mut failed = None;
            let r = proxy::proxy_ndp(frame, |ip| {
                self.ip_owner(s, &keys, IpAddr::V6(ip))
                    .map_err(|e| failed = Some(e))
                    .ok()
                    .flatten()
                    .map(|m| m.octets())
            });
            if let Some(e) = failed {
                return Err(e);
            }
            match r {
                Ok(advert) => {
                    bump(&self.counters.ndp);
                    return Ok(LookupAnswer::inject(advert));
                }
                Err(e) if e.is_other_traffic() => {}
                Err(_) => return Ok(self.drop_counted()),
            }
        }
        if req.ethertype == ETHERTYPE_IPV4 && req.is_broadcast() {
            let mut failed = None;
            let r = proxy::proxy_dhcp(frame, |client| {
                self.dhcp_server(s, &keys, Mac(client))
                    .map_err(|e| failed = Some(e))
                    .ok()
                    .flatten()
                    .map(|m| m.octets())
            });
            if let Some(e) = failed {
                return Err(e);
            }
            match r {
                Ok(redirected) => {
                    bump(&self.counters.dhcp);
                    return Ok(LookupAnswer::resend(redirected));
                }
                Err(e) if e.is_other_traffic() => {}
                Err(_) => return Ok(self.drop_counted()),
            }
        }
        if req.is_group() {
            return self.replicate(s, &keys, req);
        }
        let mac = Mac(req.dst);
        match self.mac_entry(s, &keys, mac)? {
            Some(e) => {
                bump(&self.counters.answers);
                // A DHCP server's reply goes there without the answer
                // being cached, so that the plugin sees the next one to
                // the same client too: the DHCPACK after a DHCPOFFER.
                if proxy::dhcp_reply(frame).is_ok() {
                    return Ok(LookupAnswer::replicate(vec![self.point(&e)]));
                }
                s.answered(mac);
                Ok(LookupAnswer::respond(self.point(&e)))
            }
            None => {
                bump(&self.counters.misses);
                Ok(LookupAnswer::drop_frame())
            }
        }
    }

    /// The DHCP server of `client`, from its own entry (which this host
    /// may have published, so its own entries count here).
    fn dhcp_server(
        &self,
        s: &Session,
        keys: &Keys,
        client: Mac,
    ) -> Result<Option<Mac>, PluginError> {
        let Some(kv) = s.get(&keys.mac(client))? else {
            return Ok(None);
        };
        Ok(MacEntry::parse(kv.value(), s_family(s, self))
            .ok()
            .and_then(|e| e.dhcp_proxy))
    }

    fn replicate(
        &self,
        s: &Session,
        keys: &Keys,
        req: &LookupRequest,
    ) -> Result<LookupAnswer, PluginError> {
        if !req.flood() {
            return Ok(self.drop_counted());
        }
        let me = self.me();
        let mut points: Vec<Point> = Vec::new();
        for kv in s.get_prefix(&keys.mac_prefix())? {
            if !matches!(keys.parse(kv.key()), Ok(Key::Mac(_))) {
                s.skip(kv.key(), kv.mod_revision(), "not a MAC key of the schema");
                continue;
            }
            match MacEntry::parse(kv.value(), s_family(s, self)) {
                Ok(e) if e.host.is_some() && e.host == me => {}
                Ok(e) if me.as_deref() == Some(e.ip.to_string().as_str()) => {}
                Ok(e) => {
                    let p = self.point(&e);
                    if !points.contains(&p) {
                        points.push(p);
                    }
                }
                Err(why) => s.skip(kv.key(), kv.mod_revision(), &why),
            }
        }
        if points.is_empty() {
            return Ok(self.drop_counted());
        }
        Ok(LookupAnswer::replicate(points))
    }
}

fn s_family(_s: &Session, d: &EtcdDevice) -> Family {
    d.family_and_me().0
}

/// The overlay address a local host announces in an ARP or Neighbour
/// Discovery frame it sent (`src` being its MAC): ARP's sender address,
/// or the IPv6 source of a solicitation or advertisement. Probes from the
/// unspecified address announce nothing.
pub fn announced_ip(req: &LookupRequest, frame: &[u8]) -> Option<IpAddr> {
    let h = req.hdr_len as usize;
    match req.ethertype {
        ETHERTYPE_ARP => {
            let a = frame.get(h..h + 28)?;
            if a[0..2] != [0, 1]
                || a[2..4] != [8, 0]
                || a[4] != 6
                || a[5] != 4
                || a[8..14] != req.src
            {
                return None;
            }
            let ip = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
            (!ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast())
                .then_some(IpAddr::V4(ip))
        }
        ETHERTYPE_IPV6 => {
            let ip6 = frame.get(h..h + 41)?;
            // Next header ICMPv6 directly; types 133-136 are NDP.
            if ip6[0] >> 4 != 6 || ip6[6] != 58 || !(133..=136).contains(&ip6[40]) {
                return None;
            }
            let mut a = [0u8; 16];
            a.copy_from_slice(&ip6[8..24]);
            let ip = Ipv6Addr::from(a);
            (!ip.is_unspecified() && !ip.is_multicast()).then_some(IpAddr::V6(ip))
        }
        _ => None,
    }
}

/// The address a DHCP server behind this device leased (`frame` being
/// the server's DHCPACK) and the client's MAC: not when the reply goes
/// through a relay agent (the client is on another link), nor an address
/// that cannot be a host's.
pub fn leased(frame: &[u8]) -> Option<(Ipv4Addr, Mac)> {
    let r = proxy::dhcp_reply(frame).ok()?;
    let (ip, client) = (r.your_ip, Mac(r.client));
    (r.message_type == proxy::DHCPACK
        && r.relay.is_unspecified()
        && !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
        && !(client.is_group() || client.is_zero()))
    .then_some((ip, client))
}

impl LookupInstance for EtcdDevice {
    fn mode(&self) -> u32 {
        MODE_DYNAMIC
    }

    fn properties(&self) -> Vec<PropInfo> {
        self.props.infos().to_vec()
    }

    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        if let Some(c) = counter(&self.counters, name) {
            return Ok(PropValue::Uint(c.load(Ordering::Relaxed)).encode());
        }
        self.props.get(name)
    }

    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
        if counter(&self.counters, name).is_some() {
            return Err(PluginError::new(
                libc::EPERM,
                format!("{name} is a counter and cannot be set"),
            ));
        }
        if name == ENDPOINTS {
            if let PropValue::Str(s) = self.props.info(ENDPOINTS)?.validate(value)? {
                parse_endpoints(&s)?;
            }
        }
        self.props.set(name, value).map(|_| ())
    }

    fn missing_required(&self) -> Vec<String> {
        self.props.missing_required()
    }

    fn start(&self) -> Result<(), PluginError> {
        let mut slot = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return Ok(());
        }
        let mut cfg = self.config()?;
        // The defaulted host address is kept as the property's value, so
        // that the device shows which address it publishes.
        if let Some(ip) = cfg.host_ip {
            if self.props.ip(HOST_IP).is_none() {
                self.props
                    .set(HOST_IP, &PropValue::Ip(ip).encode())
                    .map_err(|e| PluginError::invalid(format!("{HOST_IP}: {}", e.msg)))?;
            }
        }
        cfg.family = self.family_and_me().0;
        let rt = runtime()?;
        let owned =
            std::mem::take(&mut *self.restored.lock().unwrap_or_else(PoisonError::into_inner));
        *slot = Some(Session::start(
            cfg,
            rt,
            owned,
            self.counters.clone(),
            session::REQUEST_TIMEOUT * 2,
        ));
        Ok(())
    }

    fn stop(&self) {
        let s = self
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(s) = s {
            s.stop();
        }
    }

    fn default_point(&self) -> Result<Point, PluginError> {
        Err(PluginError::not_supported(
            "etcd is a dynamic lookup: it has a destination per MAC, not one for the device",
        ))
    }

    fn save(&self) -> Result<Vec<u8>, PluginError> {
        let owned = match self.session() {
            Some(s) => s.owned(),
            None => self
                .restored
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        if owned == Owned::default() {
            return Ok(Vec::new());
        }
        Ok(owned.to_json())
    }

    fn restore(&self, state: &[u8]) -> Result<(), PluginError> {
        let owned = Owned::from_json(state).map_err(PluginError::invalid)?;
        *self.restored.lock().unwrap_or_else(PoisonError::into_inner) = owned;
        Ok(())
    }

    fn lookup(&self, req: &LookupRequest, frame: &[u8]) -> Result<LookupAnswer, PluginError> {
        let s = self.session().ok_or_else(|| {
            PluginError::new(libc::EAGAIN, "etcd is not started: it has no session yet")
        })?;
        bump(&self.counters.lookups);
        s.learn(Mac(req.src), announced_ip(req, frame));
        if let Some((ip, client)) = leased(frame) {
            s.learn_address(IpAddr::V4(ip), client);
        }
        self.decide(&s, req, frame)
    }

    fn take_stale(&self) -> Vec<[u8; 6]> {
        self.session().map(|s| s.take_stale()).unwrap_or_default()
    }
}

overlay_plugin_abi::export_lookup_plugin! {
    name: "etcd",
    version: env!("CARGO_PKG_VERSION"),
    new: Etcd,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arp(op: u8, sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&sha);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }

    #[test]
    fn announced_addresses_come_from_arp_and_ndp_senders_only() {
        let me = [2, 0, 0, 0, 0, 1];
        let f = arp(1, me, [192, 0, 2, 1], [192, 0, 2, 2]);
        let req = LookupRequest::parse(42, &f, 0).unwrap();
        assert_eq!(announced_ip(&req, &f), Some("192.0.2.1".parse().unwrap()));
        // A probe (sender 0.0.0.0) announces nothing; nor does an ARP
        // message whose sender is another MAC than the frame's source.
        let probe = arp(1, me, [0; 4], [192, 0, 2, 1]);
        let req = LookupRequest::parse(42, &probe, 0).unwrap();
        assert_eq!(announced_ip(&req, &probe), None);
        let mut relayed = arp(2, [2, 0, 0, 0, 0, 9], [192, 0, 2, 9], [192, 0, 2, 1]);
        relayed[6..12].copy_from_slice(&me);
        let req = LookupRequest::parse(42, &relayed, 0).unwrap();
        assert_eq!(announced_ip(&req, &relayed), None);
        // A truncated ARP message is not read past its end.
        let short = &f[..30];
        let req = LookupRequest::parse(42, short, 0).unwrap();
        assert_eq!(announced_ip(&req, short), None);

        // A Neighbour Solicitation from 2001:db8::1; the same from ::
        // (duplicate address detection) announces nothing.
        let mut ns = vec![0x33, 0x33, 0xff, 0, 0, 2];
        ns.extend_from_slice(&me);
        ns.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 24, 58, 255]);
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        ns.extend_from_slice(&src.octets());
        ns.extend_from_slice(&"ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap().octets());
        ns.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
        ns.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        let req = LookupRequest::parse(42, &ns, 0).unwrap();
        assert_eq!(announced_ip(&req, &ns), Some(IpAddr::V6(src)));
        ns[22..38].copy_from_slice(&[0; 16]);
        assert_eq!(announced_ip(&req, &ns), None);
    }

    /// A DHCP server's reply of `msg_type` to `client`, giving `yiaddr`
    /// through the relay `giaddr`.
    fn dhcp_reply(msg_type: u8, client: [u8; 6], yiaddr: [u8; 4], giaddr: [u8; 4]) -> Vec<u8> {
        let mut bootp = vec![0u8; 236];
        bootp[..3].copy_from_slice(&[2, 1, 6]);
        bootp[16..20].copy_from_slice(&yiaddr);
        bootp[24..28].copy_from_slice(&giaddr);
        bootp[28..34].copy_from_slice(&client);
        bootp.extend_from_slice(&[99, 130, 83, 99, 53, 1, msg_type, 255]);
        let udp_len = (8 + bootp.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1]);
        ip.extend_from_slice(&yiaddr);
        ip.extend_from_slice(&[0, 67, 0, 68]);
        ip.extend_from_slice(&udp_len.to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(&bootp);
        let mut f = client.to_vec();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn a_lease_is_learned_from_a_dhcpack_only() {
        let client = [2, 0, 0, 0, 0, 0xc1];
        let (lease, none) = ([192, 0, 2, 200], [0; 4]);
        let ack = dhcp_reply(proxy::DHCPACK, client, lease, none);
        assert_eq!(leased(&ack), Some((Ipv4Addr::from(lease), Mac(client))));
        // An offer is not a lease; a relayed ACK's client is on another
        // link; an ACK without an address (to an INFORM) gives none.
        assert_eq!(
            leased(&dhcp_reply(proxy::DHCPOFFER, client, lease, none)),
            None
        );
        assert_eq!(
            leased(&dhcp_reply(proxy::DHCPACK, client, lease, [192, 0, 2, 9])),
            None
        );
        assert_eq!(
            leased(&dhcp_reply(proxy::DHCPACK, client, none, none)),
            None
        );
        assert_eq!(
            leased(&dhcp_reply(proxy::DHCPACK, client, [224, 0, 0, 1], none)),
            None
        );
        assert_eq!(
            leased(&dhcp_reply(proxy::DHCPACK, [0xff; 6], lease, none)),
            None
        );
        // A client's request is not a server's reply.
        let mut request = ack.clone();
        request[34..38].copy_from_slice(&[0, 68, 0, 67]);
        assert_eq!(leased(&request), None);
    }

    #[test]
    fn owned_entries_round_trip_through_the_state_file() {
        let mut o = Owned::default();
        let m = Mac([2, 0, 0, 0, 0, 1]);
        o.macs.insert(m);
        o.ips.insert("192.0.2.1".parse().unwrap(), m);
        o.ips.insert("2001:db8::1".parse().unwrap(), m);
        assert_eq!(Owned::from_json(&o.to_json()), Ok(o));
        assert!(Owned::from_json(b"{\"macs\":[\"nope\"],\"ips\":{}}").is_err());
    }

    #[test]
    fn endpoints_are_checked_when_set() {
        assert_eq!(
            parse_endpoints(" http://192.0.2.1:2379, https://[2001:db8::1]:2379 ").unwrap(),
            ["http://192.0.2.1:2379", "https://[2001:db8::1]:2379"]
        );
        for bad in [
            "",
            ",",
            "192.0.2.1:2379",
            "http://192.0.2.1",
            "http://:2379",
        ] {
            assert!(parse_endpoints(bad).is_err(), "{bad}");
        }
    }
}
