//! The mux: one underlay endpoint (encapsulation plugin, socket parameters,
//! listen address and port) shared by every device that uses it.
//!
//! A mux owns its sockets. The **receive** socket is an ordinary UDP
//! socket bound to the listen address and port, with `UDP_GRO` where the
//! kernel has it; a packet thread reads it ([`super::rx`]), asks the plugin
//! to parse each header (`decap`), finds the device by virtual network id
//! and hands it the inner frames. Two kinds of socket send:
//!
//! * a **raw** `IPPROTO_UDP` socket, for frames sent one datagram each: the
//!   data path writes the UDP header itself, so that the source port can
//!   carry a hash of the inner flow as RFC 7348 recommends. It is bound to
//!   the listen address, receives nothing (a socket filter drops every copy
//!   the kernel would queue to it), and for IPv6 lets the kernel fill the
//!   mandatory UDP checksum (`IPV6_CHECKSUM`). IPv4 packets go with
//!   checksum 0, which RFC 7348 allows and every VXLAN receiver accepts.
//! * **source-port pools** ([`SportPool`]) of ordinary UDP sockets, each
//!   bound to one port of a device's source-port range, for super-frames
//!   sent with `UDP_SEGMENT` (UDP GSO: one `sendmsg` for up to 64 KiB of
//!   datagrams, segmented by the kernel). A UDP socket sends from its own
//!   port only, so per-flow entropy comes from choosing the socket by the
//!   flow hash; the raw path uses the same port for the same flow, so a
//!   flow keeps one source port whichever way its frames go. The price:
//!   [`SPORT_POOL`] distinct source ports per range instead of the whole
//!   range, which is plenty for ECMP hashing over a few paths.
//!
//! The device table is published as an immutable snapshot, read by the
//! receive side at the start of each batch; a change waits until the
//! packet thread has finished the batches that began before it
//! ([`super::threads::Threads::sync`]), so once `remove` returns no frame
//! is delivered to the removed device.

use super::{
    probe::Offloads,
    threads::{Registration, Source, Threads},
};
use crate::{
    dataplane::backend::{Backend, ETH_HLEN},
    error::{CtlError, CtlResult},
    plugins::EncapEntry,
    stats::{DeviceStats, Health, MuxStats},
    sys::socket::{self, InetAddr},
};
use nix::sys::socket::{self as nixsock, sockopt};
use overlay_plugin_abi::{prop::ip_from_in6, SocketSpec};
use std::{
    collections::HashMap,
    io,
    net::IpAddr,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Instant,
};

/// Sockets in a source-port pool: the distinct outer source ports a
/// device's flows spread over when UDP GSO is in use.
pub const SPORT_POOL: usize = 32;

/// What makes two devices share a mux.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MuxKey {
    /// `AF_INET` or `AF_INET6`.
    pub domain: i32,
    /// Socket type.
    pub sotype: i32,
    /// Protocol.
    pub protocol: i32,
    /// Listen address.
    pub addr: [u8; 16],
    /// Listen port.
    pub port: u16,
    /// Socket options `(level, name, value)`.
    pub options: Vec<(i32, i32, Vec<u8>)>,
}

impl MuxKey {
    /// The key of a plugin's socket request.
    pub fn from_spec(s: &SocketSpec) -> MuxKey {
        MuxKey {
            domain: s.domain,
            sotype: s.sotype,
            protocol: s.protocol,
            addr: s.addr,
            port: s.port,
            options: s
                .options
                .iter()
                .map(|o| (o.level, o.name, o.value.to_vec()))
                .collect(),
        }
    }

    /// `udp 10.0.0.1:4789` / `udp [2001:db8::1]:4789`.
    pub fn endpoint(&self) -> String {
        match ip_from_in6(self.addr) {
            IpAddr::V4(a) => format!("udp {a}:{}", self.port),
            IpAddr::V6(a) => format!("udp [{a}]:{}", self.port),
        }
    }
}

/// A device as the receive side sees it.
pub struct Port {
    /// Where its frames go.
    pub backend: Arc<dyn Backend>,
    /// Its counters.
    pub stats: Arc<DeviceStats>,
    /// Its health, degraded when a plugin call for it panics.
    pub health: Arc<Health>,
}

pub(super) type Table = Arc<HashMap<u64, Arc<Port>>>;

/// One shared underlay endpoint.
pub struct Mux {
    /// Its identity.
    pub key: MuxKey,
    /// The encapsulation plugin all its devices use.
    pub encap: Arc<EncapEntry>,
    pub(super) rx: OwnedFd,
    tx: OwnedFd,
    table: RwLock<Table>,
    pools: Mutex<Vec<Arc<SportPool>>>,
    /// Whether the receive socket has `UDP_GRO` on.
    pub(super) gro: bool,
    /// Whether super-frames may be sent with UDP GSO: on when the kernel
    /// has it and it is not turned off, off for good after a refusal.
    gso: AtomicBool,
    /// Whether frames are merged for the devices (receive coalescing).
    pub(super) coalesce: bool,
    /// Its counters.
    pub stats: MuxStats,
    /// Its place in the packet threads, while open.
    reg: Mutex<Option<Registration>>,
}

impl Mux {
    /// Opens the sockets; a failure leaves nothing open. The mux receives
    /// nothing until [`MuxSet`] registers it with the packet threads.
    pub fn open(key: MuxKey, encap: Arc<EncapEntry>, offloads: &Offloads) -> io::Result<Mux> {
        let rx = open_rx(&key)?;
        // Asked for where probed and wanted; a refusal only means
        // datagrams come one per read.
        let gro =
            offloads.udp_gro && nixsock::setsockopt(&rx, sockopt::UdpGroSegment, &true).is_ok();
        let tx = open_tx(&key)?;
        Ok(Mux {
            key,
            encap,
            rx,
            tx,
            table: RwLock::new(Arc::new(HashMap::new())),
            pools: Mutex::new(Vec::new()),
            gro,
            gso: AtomicBool::new(offloads.udp_gso),
            coalesce: offloads.coalesce,
            stats: MuxStats::default(),
            reg: Mutex::new(None),
        })
    }

    /// The raw transmit socket.
    pub fn tx_fd(&self) -> BorrowedFd<'_> {
        self.tx.as_fd()
    }

    /// Number of devices attached.
    pub fn devices(&self) -> usize {
        self.table.read().unwrap().len()
    }

    /// The device table as it is now.
    pub(super) fn table(&self) -> Table {
        self.table.read().unwrap().clone()
    }

    /// Whether super-frames may go out with UDP GSO.
    pub fn gso(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    /// Stops using UDP GSO on this mux after the kernel refused it.
    #[cold]
    pub(super) fn gso_refused(&self, e: &io::Error) {
        if self.gso.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "mux {}: UDP GSO refused ({e}); super-frames are segmented here from now on",
                self.key.endpoint()
            );
        }
    }

    /// The source-port pool for the range `lo..=hi`, opened on first use.
    pub(super) fn sport_pool(&self, lo: u16, hi: u16) -> io::Result<Arc<SportPool>> {
        let mut pools = self.pools.lock().unwrap();
        if let Some(p) = pools.iter().find(|p| p.range == (lo, hi)) {
            return Ok(p.clone());
        }
        let p = Arc::new(SportPool::open(&self.key, lo, hi)?);
        pools.push(p.clone());
        Ok(p)
    }

    /// Attaches a device; returns once the receive side delivers to it.
    pub fn insert(&self, vnetid: u64, port: Arc<Port>, threads: &Threads) {
        self.update(threads, |t| {
            t.insert(vnetid, port);
        });
    }

    /// Detaches a device; returns once the receive side no longer
    /// delivers to it.
    pub fn remove(&self, vnetid: u64, threads: &Threads) {
        self.update(threads, |t| {
            t.remove(&vnetid);
        });
    }

    fn update(&self, threads: &Threads, change: impl FnOnce(&mut HashMap<u64, Arc<Port>>)) {
        {
            // Copy on write: a packet thread holds the table only while it
            // runs the mux, and the sync below waits for that, so the table
            // is almost always this lock's alone and changes in place; a
            // copy per change made a daemon with N devices on one mux pay
            // O(N) for each activation and each deactivation.
            let mut table = self.table.write().unwrap();
            change(Arc::make_mut(&mut table));
        }
        if let Some(reg) = self.reg.lock().unwrap().as_ref() {
            threads.sync(reg);
        }
    }

    /// A `decap` panic: the packet's device is unknown, so every device
    /// of the mux (all of which use the plugin) is degraded. Cold path.
    #[cold]
    pub(super) fn decap_panicked(&self, table: &Table, msg: &str) {
        let fault = format!("{msg} (on {})", self.key.endpoint());
        let mut first = false;
        for port in table.values() {
            first |= port.health.degrade(&fault);
        }
        if first {
            tracing::error!("{}: devices degraded: {fault}", self.encap.meta.name);
        }
    }
}

/// Ordinary UDP sockets bound to ports of one source-port range, to send
/// super-frames with UDP GSO from a port chosen by the flow.
pub struct SportPool {
    /// The range the ports were chosen in.
    pub range: (u16, u16),
    socks: Vec<(OwnedFd, u16)>,
}

impl SportPool {
    /// Binds up to [`SPORT_POOL`] sockets to distinct ports of `lo..=hi`
    /// on the mux's listen address, skipping ports in use. Fails only when
    /// not one port could be bound.
    fn open(key: &MuxKey, lo: u16, hi: u16) -> io::Result<SportPool> {
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let span = (hi - lo) as u32 + 1;
        let want = (SPORT_POOL as u32).min(span) as usize;
        // Ports spread over the range from a start that differs between
        // daemons, stepping by a stride coprime with the span.
        let seed = std::process::id()
            ^ (Instant::now().elapsed().as_nanos() as u32)
            ^ (key.port as u32) << 16;
        let stride = (0..span)
            .map(|i| span / want as u32 + i)
            .find(|s| gcd(*s, span) == 1)
            .unwrap_or(1);
        let mut socks = Vec::with_capacity(want);
        let mut last_err = None;
        for i in 0..span {
            if socks.len() == want {
                break;
            }
            let port = lo + ((seed.wrapping_add(i * stride)) % span) as u16;
            match open_pool_socket(key, port) {
                Ok(fd) => socks.push((fd, port)),
                Err(e) => last_err = Some(e),
            }
        }
        if socks.is_empty() {
            return Err(last_err.unwrap_or_else(|| io::Error::other("an empty port range")));
        }
        Ok(SportPool {
            range: (lo, hi),
            socks,
        })
    }

    /// The socket and source port of the flow hashed to `hash`.
    pub fn pick(&self, hash: u32) -> (BorrowedFd<'_>, u16) {
        let (fd, port) = &self.socks[hash as usize % self.socks.len()];
        (fd.as_fd(), *port)
    }

    /// Number of sockets (distinct source ports).
    pub fn len(&self) -> usize {
        self.socks.len()
    }

    /// Whether the pool has no socket (never: opening one fails instead).
    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn open_pool_socket(key: &MuxKey, port: u16) -> io::Result<OwnedFd> {
    let fd = socket::socket(key.domain, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
    v6_only(&fd, key)?;
    // It sends only: whatever reaches its port is dropped before queueing.
    attach_drop_all(&fd)?;
    let _ = nixsock::setsockopt(&fd, sockopt::SndBuf, &(4 << 20));
    bind(&fd, key, port)?;
    Ok(fd)
}

/// All muxes, with the devices attached to each. Owned by the control
/// thread.
#[derive(Default)]
pub struct MuxSet {
    muxes: Vec<Arc<Mux>>,
}

impl MuxSet {
    /// Attaches a device to the mux for `key`, opening it (and registering
    /// it with the packet threads) when it is the first. EEXIST when
    /// another encapsulation plugin holds the endpoint.
    pub fn join(
        &mut self,
        key: MuxKey,
        encap: &Arc<EncapEntry>,
        vnetid: u64,
        port: Arc<Port>,
        threads: &Threads,
        offloads: &Offloads,
    ) -> CtlResult<Arc<Mux>> {
        let same_endpoint = |m: &&Arc<Mux>| {
            m.key.domain == key.domain
                && m.key.sotype == key.sotype
                && m.key.protocol == key.protocol
                && m.key.addr == key.addr
                && m.key.port == key.port
        };
        if let Some(m) = self.muxes.iter().find(same_endpoint) {
            if m.encap.meta.name != encap.meta.name {
                return Err(CtlError::exists(format!(
                    "{} is held by encapsulation {}",
                    key.endpoint(),
                    m.encap.meta.name
                )));
            }
            if m.key != key {
                return Err(CtlError::exists(format!(
                    "{} is open with other socket options",
                    key.endpoint()
                )));
            }
            m.insert(vnetid, port, threads);
            return Ok(m.clone());
        }
        let endpoint = key.endpoint();
        let open_error = |e: io::Error| {
            let hint = if e.raw_os_error() == Some(libc::EADDRINUSE) {
                " (another process, or a kernel vxlan device, uses it)"
            } else if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
                " (the listen address is not configured on this host)"
            } else {
                ""
            };
            CtlError::new(
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("cannot open {endpoint}: {e}{hint}"),
            )
        };
        let mux = Arc::new(Mux::open(key, encap.clone(), offloads).map_err(open_error)?);
        mux.insert(vnetid, port, threads);
        let reg = threads
            .add(mux.clone() as Arc<dyn Source>)
            .map_err(open_error)?;
        *mux.reg.lock().unwrap() = Some(reg);
        tracing::info!(
            "mux {} opened (UDP GRO {}, UDP GSO {})",
            mux.key.endpoint(),
            on_off(mux.gro),
            on_off(mux.gso())
        );
        self.muxes.push(mux.clone());
        Ok(mux)
    }

    /// Detaches a device; the mux closes when its last device leaves.
    pub fn leave(&mut self, mux: &Arc<Mux>, vnetid: u64, threads: &Threads) {
        mux.remove(vnetid, threads);
        if mux.devices() == 0 {
            if let Some(reg) = mux.reg.lock().unwrap().take() {
                threads.remove(reg);
            }
            self.muxes.retain(|m| !Arc::ptr_eq(m, mux));
            tracing::info!("mux {} closed", mux.key.endpoint());
        }
    }

    /// The open muxes.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Mux>> {
        self.muxes.iter()
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Binds `fd` to the mux's address and `port`.
fn bind(fd: &OwnedFd, key: &MuxKey, port: u16) -> io::Result<()> {
    let addr = InetAddr::new(key.domain, key.addr, port).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the underlay address {} is not of the socket's family",
                ip_from_in6(key.addr)
            ),
        )
    })?;
    socket::bind(fd.as_fd(), &addr)
}

/// `IPV6_V6ONLY` on an IPv6 socket: an IPv6 mux carries IPv6 only; IPv4
/// has its own mux, so a wildcard IPv6 listener does not swallow IPv4
/// traffic.
fn v6_only(fd: &OwnedFd, key: &MuxKey) -> io::Result<()> {
    if key.domain == libc::AF_INET6 {
        nixsock::setsockopt(fd, sockopt::Ipv6V6Only, &true)?;
    }
    Ok(())
}

fn open_rx(key: &MuxKey) -> io::Result<OwnedFd> {
    let fd = socket::socket(key.domain, key.sotype | libc::SOCK_NONBLOCK, key.protocol)?;
    v6_only(&fd, key)?;
    // Bursts from the underlay arrive faster than one wake-up; a larger
    // buffer absorbs them (the kernel caps it at rmem_max).
    let _ = nixsock::setsockopt(&fd, sockopt::RcvBuf, &(4 << 20));
    for (level, name, value) in &key.options {
        socket::setsockopt(fd.as_fd(), *level, *name, value.as_slice())?;
    }
    bind(&fd, key, key.port)?;
    Ok(fd)
}

fn open_tx(key: &MuxKey) -> io::Result<OwnedFd> {
    let fd = socket::socket(key.domain, libc::SOCK_RAW, libc::IPPROTO_UDP)?;
    // A raw UDP socket gets a copy of every UDP datagram the host receives.
    attach_drop_all(&fd)?;
    if key.domain == libc::AF_INET6 {
        // The UDP checksum is mandatory over IPv6; the kernel computes it
        // over the pseudo-header and stores it at offset 6 of the UDP header.
        socket::setsockopt(fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, &6i32)?;
    }
    let _ = nixsock::setsockopt(&fd, sockopt::SndBuf, &(4 << 20));
    let unspecified = ip_from_in6(key.addr).is_unspecified();
    if !unspecified {
        bind(&fd, key, 0)?;
    }
    Ok(fd)
}

/// A socket filter that drops every packet before it is queued: for
/// sockets that only send.
fn attach_drop_all(fd: &OwnedFd) -> io::Result<()> {
    let mut drop_all = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_mut_ptr(),
    };
    // The kernel copies the program it points to during the call.
    socket::setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// The outer UDP source port for a frame: a hash of its flow (Ethernet
/// addresses and type, then the IP addresses and protocol and the TCP/UDP
/// ports when present) mapped into `lo..=hi`, so that one flow keeps one
/// port and different flows spread over underlay paths (RFC 7348 §5).
#[inline]
pub fn source_port(frame: &[u8], lo: u16, hi: u16) -> u16 {
    let h = flow_hash(frame);
    let span = (hi.max(lo) - lo) as u32 + 1;
    lo + (h % span) as u16
}

/// Hash of the flow a frame belongs to.
#[inline]
pub fn flow_hash(frame: &[u8]) -> u32 {
    let mut h = Fnv::new();
    if frame.len() < ETH_HLEN {
        h.write(frame);
        return h.finish();
    }
    h.write(&frame[..ETH_HLEN]);
    let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let mut l3 = ETH_HLEN;
    if ethertype == 0x8100 && frame.len() >= ETH_HLEN + 4 {
        ethertype = u16::from_be_bytes([frame[16], frame[17]]);
        l3 += 4;
    }
    let (proto, l4) = match ethertype {
        0x0800 if frame.len() >= l3 + 20 => {
            let ihl = ((frame[l3] & 0x0f) as usize) * 4;
            h.write(&frame[l3 + 12..l3 + 20]);
            // Only the first fragment carries the ports.
            let frag = u16::from_be_bytes([frame[l3 + 6], frame[l3 + 7]]) & 0x1fff;
            (frame[l3 + 9], if frag == 0 { Some(l3 + ihl) } else { None })
        }
        0x86dd if frame.len() >= l3 + 40 => {
            h.write(&frame[l3 + 8..l3 + 40]);
            (frame[l3 + 6], Some(l3 + 40))
        }
        _ => return h.finish(),
    };
    h.write(&[proto]);
    if let (6 | 17 | 132, Some(at)) = (proto, l4) {
        if let Some(ports) = frame.get(at..at + 4) {
            h.write(ports);
        }
    }
    h.finish()
}

/// FNV-1a, 32 bits: tiny, allocation-free, and good enough to spread flows.
struct Fnv(u32);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0x811c_9dc5)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u32;
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
    fn finish(&self) -> u32 {
        // Mix the high bits down so that `% span` uses all of them.
        let mut x = self.0;
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb_352d);
        x ^= x >> 15;
        x
    }
}

/// Writes the 8-byte UDP header for a payload of `payload_len` bytes.
/// The checksum is 0: over IPv4 that means "none"; over IPv6 the kernel
/// fills it (`IPV6_CHECKSUM`).
#[inline]
pub fn udp_header(buf: &mut [u8], src: u16, dst: u16, payload_len: usize) {
    let len = (8 + payload_len) as u16;
    buf[0..2].copy_from_slice(&src.to_be_bytes());
    buf[2..4].copy_from_slice(&dst.to_be_bytes());
    buf[4..6].copy_from_slice(&len.to_be_bytes());
    buf[6..8].copy_from_slice(&[0, 0]);
}

/// A destination as a socket address for the raw transmit socket (port 0:
/// the UDP header carries the port).
pub fn raw_dest(domain: i32, ip: [u8; 16]) -> Option<InetAddr> {
    InetAddr::new(domain, ip, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&[192, 0, 2, 1]);
        f[30..34].copy_from_slice(&[192, 0, 2, 2]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn source_port_is_stable_per_flow_and_in_range() {
        let a = tcp_frame(40000, 5201);
        let b = tcp_frame(40001, 5201);
        let pa = source_port(&a, 49152, 65535);
        assert_eq!(pa, source_port(&a, 49152, 65535));
        assert!((49152..=65535).contains(&pa));
        // Different ports of the inner flow spread over the range.
        let ports: std::collections::HashSet<u16> = (0..64)
            .map(|i| source_port(&tcp_frame(40000 + i, 5201), 49152, 65535))
            .collect();
        assert!(ports.len() > 48, "only {} distinct ports", ports.len());
        assert_ne!(flow_hash(&a), flow_hash(&b));
        // A one-port range always yields that port; short frames still hash.
        assert_eq!(source_port(&a, 4789, 4789), 4789);
        let _ = source_port(&[1, 2, 3], 1, 10);
    }

    #[test]
    fn non_first_fragments_hash_without_ports() {
        let mut a = tcp_frame(1, 2);
        let mut b = tcp_frame(3, 4);
        for f in [&mut a, &mut b] {
            f[20] = 0x00;
            f[21] = 0x10; // fragment offset 16
        }
        assert_eq!(flow_hash(&a), flow_hash(&b));
    }

    #[test]
    fn udp_header_layout() {
        let mut b = [0xffu8; 8];
        udp_header(&mut b, 50000, 4789, 100);
        assert_eq!(b, [0xc3, 0x50, 0x12, 0xb5, 0, 108, 0, 0]);
    }

    #[test]
    fn raw_destinations_match_the_family() {
        let v4 = overlay_plugin_abi::prop::ip_to_in6("192.0.2.1".parse().unwrap());
        let v6 = overlay_plugin_abi::prop::ip_to_in6("2001:db8::1".parse().unwrap());
        assert!(raw_dest(libc::AF_INET, v4).is_some());
        assert!(raw_dest(libc::AF_INET6, v6).is_some());
        assert!(raw_dest(libc::AF_INET, v6).is_none());
        assert!(raw_dest(libc::AF_INET6, v4).is_none());
    }
}
