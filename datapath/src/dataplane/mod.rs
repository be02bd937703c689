//! The packet path: every active device's frames between its backend and
//! the underlay.
//!
//! ```text
//!  backend (TAP | AF_PACKET) --read_batch--> tx: size check, target, encap
//!     whole frames ----------------> sendmmsg on the mux's raw socket
//!     super-frames (TSO, 64 KiB) --> one UDP GSO sendmmsg on the flow's
//!                                    source-port socket (or cut here)
//!  underlay --recvmmsg (UDP GRO)--> rx: split, decap, device by vnetid
//!     TCP segments of one flow ----> merged, one GSO write to the backend
//!     anything else ---------------> one write per frame
//! ```
//!
//! Parts: [`backend`] (where frames enter and leave the host), [`offload`]
//! (the offload engine: pure functions on bytes), [`mux`] (underlay
//! endpoints and their sockets), [`tx`] and [`rx`] (the two directions),
//! [`threads`] (the fixed pool of packet threads that runs both for every
//! device and mux), [`probe`] (which offloads are in use).
//!
//! A device's attachment is a [`Dataplane`]: its transmit side registered
//! with one packet thread, its port in a mux. Reconfiguration (vnetid,
//! destination) swaps what the transmit side uses and waits until the
//! thread has finished the runs that began before: a frame is never sent
//! with a stale value, and nothing a run uses is closed while it runs.
//!
//! Frames can also be *injected* through an [`Injector`], from any thread:
//! outbound, down the transmit path as if the hosts had sent them (the
//! device's thread takes them at its next run and treats them exactly like
//! backend frames), or inbound, to the hosts as if they had come from the
//! underlay. Lookup proxies use this to answer ARP, NDP and DHCP, and to
//! resend frames a lookup held back.

pub mod backend;
pub mod mux;
pub mod offload;
pub mod probe;
pub mod rx;
pub mod threads;
pub mod tx;

use crate::{
    dataplane::backend::{Backend, ETH_HLEN, VLAN_TAGSZ},
    dataplane::mux::{Mux, MuxSet, Port},
    error::{CtlError, CtlResult},
    plugins::EncapInstance,
    stats::{add, DeviceStats},
    sys::socket::InetAddr,
    target::{DynTarget, PacketPath},
};
use overlay_plugin_abi::Point;
use probe::Offloads;
use std::{
    io,
    sync::{
        atomic::{AtomicU32, AtomicUsize, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Duration,
};
use threads::{More, Registration, Scratch, Source, Threads};
use tx::{DeviceTx, SingleDest, TxConf};

/// Most frames waiting in a device's outbound injection queue; beyond,
/// injection fails with `ENOBUFS`.
pub const INJECT_QUEUE_MAX: usize = 1024;

/// The packet path of the whole daemon: the packet threads, the muxes and
/// the offloads in use. Owned by the device registry (the control thread).
pub struct Engine {
    /// The packet threads.
    pub threads: Threads,
    /// The open muxes.
    pub muxes: MuxSet,
    /// The offloads in use.
    pub offloads: Offloads,
    /// The interface group of the daemon's TAPs.
    pub tap_group: u32,
    /// How long a packet thread polls after its last work before it sleeps.
    pub busy_poll: Duration,
}

impl Engine {
    /// Starts `threads` packet threads using `offloads` (already probed),
    /// each polling for `busy_poll` after its last work before it sleeps.
    pub fn start(threads: usize, offloads: Offloads, busy_poll: Duration) -> io::Result<Engine> {
        Ok(Engine {
            threads: Threads::start(threads, busy_poll, || Scratch {
                tx: tx::TxScratch::new(),
                rx: rx::RxScratch::new(),
            })?,
            muxes: MuxSet::default(),
            offloads,
            tap_group: tap_group(std::process::id()),
            busy_poll,
        })
    }

    /// Deletes every TAP interface of the daemon in one batch (the kernel
    /// unregisters a batch of interfaces far faster than one at a time), so
    /// that the devices deactivated next close their TAPs at no cost.
    /// Frames still in flight are lost: for a stop.
    pub fn release_taps(&self) {
        match crate::sys::rtnl::delete_group(self.tap_group) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
            Err(e) => tracing::warn!(
                "cannot delete the TAP interfaces of group {} at once: {e}",
                self.tap_group
            ),
        }
    }

    /// Stops the packet threads.
    pub fn shutdown(&self) {
        self.threads.shutdown();
    }
}

/// The interface group the TAPs of the daemon with process id `pid` join:
/// `0x6f76` ("ov") in the high half, the low half of the pid below, so that
/// two daemons in one network namespace have groups of their own.
pub fn tap_group(pid: u32) -> u32 {
    0x6f76_0000 | (pid & 0xffff)
}

/// Settings the transmit side reads on every batch.
pub struct TxTunables {
    /// Largest frame accepted from the hosts (MTU + Ethernet header, + a
    /// VLAN tag when the encapsulation allows one).
    pub max_frame: AtomicUsize,
    /// Outer UDP source port range, `lo << 16 | hi`.
    pub sport_range: AtomicU32,
}

impl TxTunables {
    /// Tunables for an MTU and a source port range.
    pub fn new(mtu: u64, vlan: bool, lo: u16, hi: u16) -> TxTunables {
        let t = TxTunables {
            max_frame: AtomicUsize::new(0),
            sport_range: AtomicU32::new(0),
        };
        t.set_mtu(mtu, vlan);
        t.set_sport_range(lo, hi);
        t
    }

    /// Follows a change of the device MTU.
    pub fn set_mtu(&self, mtu: u64, vlan: bool) {
        let extra = ETH_HLEN + if vlan { VLAN_TAGSZ } else { 0 };
        self.max_frame
            .store(mtu as usize + extra, Ordering::Relaxed);
    }

    /// Follows a change of the source port range.
    pub fn set_sport_range(&self, lo: u16, hi: u16) {
        self.sport_range
            .store((lo as u32) << 16 | hi as u32, Ordering::Relaxed);
    }
}

/// What the transmit side sends with; replaced only through
/// [`Dataplane::retarget`].
#[derive(Clone)]
pub struct TxTarget {
    /// Virtual network id written into every header.
    pub vnetid: u64,
    /// Where frames go.
    pub dest: TxDest,
}

/// Where a device's frames go, by its lookup mode.
#[derive(Clone)]
pub enum TxDest {
    /// Point mode: every frame to this one destination.
    Point(Point),
    /// Dynamic mode: each frame where the target cache says.
    Dynamic(Arc<DynTarget>),
}

impl TxTarget {
    /// The single destination, in point mode.
    pub fn point(&self) -> Option<Point> {
        match &self.dest {
            TxDest::Point(p) => Some(*p),
            TxDest::Dynamic(_) => None,
        }
    }

    /// The target cache, in dynamic mode.
    pub fn dynamic(&self) -> Option<&Arc<DynTarget>> {
        match &self.dest {
            TxDest::Point(_) => None,
            TxDest::Dynamic(d) => Some(d),
        }
    }
}

/// A device's transmit side as a packet thread runs it.
struct TxSource(Arc<DeviceTx>);

impl Source for TxSource {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.fd()
    }

    fn run(&self, scratch: &mut Scratch) -> More {
        let pending = self.0.run(&mut scratch.tx);
        if self.0.failed.load(Ordering::Relaxed) {
            More::Stop
        } else if pending {
            More::Yes
        } else {
            More::No
        }
    }
}

/// A running packet path.
pub struct Dataplane {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// The mux the device is attached to.
    pub mux: Arc<Mux>,
    /// The device as the mux sees it.
    pub port: Arc<Port>,
    tx: Arc<DeviceTx>,
    target: TxTarget,
    injector: Arc<Injector>,
    reg: Option<Registration>,
}

/// Puts frames into a running packet path from outside it. Cheap to clone
/// (as an `Arc`) and usable from any thread; once the device is
/// deactivated every call fails with `ENXIO` and the backend is no longer
/// touched.
pub struct Injector {
    /// The backend, until the packet path stops.
    backend: RwLock<Option<Arc<dyn Backend>>>,
    /// Frames waiting for the transmit side.
    queue: Mutex<Vec<Vec<u8>>>,
    /// The transmit side's place in the packet threads, once registered.
    wake: RwLock<Option<Registration>>,
    tunables: Arc<TxTunables>,
    stats: Arc<DeviceStats>,
}

impl Injector {
    fn new(
        backend: Arc<dyn Backend>,
        tunables: Arc<TxTunables>,
        stats: Arc<DeviceStats>,
    ) -> Injector {
        Injector {
            backend: RwLock::new(Some(backend)),
            queue: Mutex::new(Vec::new()),
            wake: RwLock::new(None),
            tunables,
            stats,
        }
    }

    fn refuse(&self, e: CtlError) -> CtlError {
        add(&self.stats.drop_inject, 1);
        e
    }

    /// Takes every waiting frame, in order.
    fn take(&self, into: &mut Vec<Vec<u8>>) {
        let mut q = self.queue.lock().unwrap();
        std::mem::swap(&mut *q, into);
    }

    /// Refuses everything from now on and forgets the waiting frames.
    fn close(&self) {
        *self.backend.write().unwrap() = None;
        *self.wake.write().unwrap() = None;
        let dropped = std::mem::take(&mut *self.queue.lock().unwrap());
        add(&self.stats.drop_inject, dropped.len() as u64);
    }
}

impl PacketPath for Injector {
    /// Queues `frame` for the transmit path, as if the hosts had sent it:
    /// it is encapsulated with the device's current virtual network id and
    /// sent to its current destination, in order with other injected
    /// frames. Fails with `EINVAL` for a frame shorter than an Ethernet
    /// header or longer than the MTU allows, `ENOBUFS` when
    /// [`INJECT_QUEUE_MAX`] frames are already waiting, and `ENXIO` once
    /// the device is no longer active.
    fn outbound(&self, frame: &[u8]) -> CtlResult<()> {
        let max = self.tunables.max_frame.load(Ordering::Relaxed);
        if frame.len() < ETH_HLEN || frame.len() > max {
            return Err(self.refuse(CtlError::invalid(format!(
                "an injected frame must be {ETH_HLEN} to {max} bytes (the MTU plus the Ethernet header), not {}",
                frame.len()
            ))));
        }
        if self.backend.read().unwrap().is_none() {
            return Err(self.refuse(not_active()));
        }
        let mut q = self.queue.lock().unwrap();
        if q.len() >= INJECT_QUEUE_MAX {
            return Err(self.refuse(CtlError::new(
                libc::ENOBUFS,
                format!(
                    "{INJECT_QUEUE_MAX} injected frames are already waiting to be sent; retry later"
                ),
            )));
        }
        q.push(frame.to_vec());
        drop(q);
        self.wake();
        Ok(())
    }

    /// Delivers `frames` to the hosts, as if they had been received and
    /// decapsulated. Returns how many the backend took; the others are
    /// counted as `drop_backend`. Fails with `ENXIO` once the device is no
    /// longer active.
    fn inbound(&self, frames: &[&[u8]]) -> CtlResult<usize> {
        let guard = self.backend.read().unwrap();
        let Some(backend) = guard.as_ref() else {
            return Err(self.refuse(not_active()));
        };
        let n = backend
            .write_batch(frames)
            .map_err(|e| CtlError::io("cannot inject into the backend", &e))?;
        let bytes: usize = frames[..n].iter().map(|f| f.len()).sum();
        add(&self.stats.rx_injected, n as u64);
        add(&self.stats.rx_packets, n as u64);
        add(&self.stats.rx_bytes, bytes as u64);
        add(&self.stats.drop_backend, (frames.len() - n) as u64);
        Ok(n)
    }

    /// Wakes the transmit side (frames were queued or answered for it).
    fn wake(&self) {
        if let Some(r) = self.wake.read().unwrap().as_ref() {
            r.notify();
        }
    }
}

fn not_active() -> CtlError {
    CtlError::new(
        libc::ENXIO,
        "the device is not active: activate it before injecting frames",
    )
}

/// What the transmit side works with, for `target`.
fn tx_conf(mux: &Mux, target: &TxTarget) -> CtlResult<TxConf> {
    // Dynamic mode has no single destination: each frame's comes from
    // the cache.
    let single = match target.point() {
        None => None,
        Some(p) => {
            let wrong_family = || {
                CtlError::invalid(format!(
                    "the destination {} and the listen address of {} are not of the same IP version",
                    overlay_plugin_abi::prop::ip_from_in6(p.ip),
                    mux.key.endpoint()
                ))
            };
            let raw = mux::raw_dest(mux.key.domain, p.ip).ok_or_else(wrong_family)?;
            let udp = InetAddr::new(mux.key.domain, p.ip, p.port).ok_or_else(wrong_family)?;
            Some(SingleDest {
                raw,
                udp,
                port: p.port,
            })
        }
    };
    Ok(TxConf {
        vnetid: target.vnetid,
        single,
        dynamic: target.dynamic().cloned(),
    })
}

impl Dataplane {
    /// Attaches the device to the packet threads and starts transmitting.
    /// The caller has already joined the mux (so that a failed join leaves
    /// nothing).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        threads: &Threads,
        backend: Arc<dyn Backend>,
        mux: Arc<Mux>,
        port: Arc<Port>,
        encap: Arc<EncapInstance>,
        tunables: Arc<TxTunables>,
        stats: Arc<DeviceStats>,
        target: TxTarget,
    ) -> CtlResult<Dataplane> {
        let conf = tx_conf(&mux, &target)?;
        let injector = Arc::new(Injector::new(
            backend.clone(),
            tunables.clone(),
            stats.clone(),
        ));
        let tx = Arc::new(DeviceTx::new(
            backend.clone(),
            mux.clone(),
            port.clone(),
            encap,
            tunables,
            stats,
            injector.clone(),
            conf,
        ));
        let reg = threads
            .add(Arc::new(TxSource(tx.clone())))
            .map_err(|e| CtlError::io("cannot register the device with the packet threads", &e))?;
        *injector.wake.write().unwrap() = Some(reg.clone());
        if let Some(d) = target.dynamic() {
            d.attach(injector.clone());
        }
        Ok(Dataplane {
            backend,
            mux,
            port,
            tx,
            target,
            injector,
            reg: Some(reg),
        })
    }

    /// The current target.
    pub fn target(&self) -> &TxTarget {
        &self.target
    }

    /// The tunables.
    pub fn tunables(&self) -> &TxTunables {
        &self.tx.tunables
    }

    /// The handle that injects frames into this packet path.
    pub fn injector(&self) -> Arc<Injector> {
        self.injector.clone()
    }

    /// Whether the backend failed for good (its interface deleted from
    /// outside): the packet path no longer moves frames.
    pub fn backend_failed(&self) -> bool {
        self.tx.failed.load(Ordering::Relaxed)
    }

    /// The packet thread that runs the device's transmit side.
    pub fn thread(&self) -> Option<usize> {
        self.reg.as_ref().map(|r| r.thread())
    }

    /// Changes the virtual network id or destination: the transmit side
    /// takes the new values from its next run, the mux is re-keyed, and
    /// this returns once no run with the old values is under way.
    pub fn retarget(&mut self, threads: &Threads, target: TxTarget) -> CtlResult<()> {
        let conf = tx_conf(&self.mux, &target)?;
        *self.tx.conf.write().unwrap() = Arc::new(conf);
        if let Some(r) = &self.reg {
            threads.sync(r);
        }
        if target.vnetid != self.target.vnetid {
            self.mux.remove(self.target.vnetid, threads);
            self.mux.insert(target.vnetid, self.port.clone(), threads);
        }
        self.target = target;
        Ok(())
    }

    /// Stops transmitting and leaves the mux. Once this returns, no frame
    /// of the device is sent or delivered; the backend closes when the
    /// returned value is dropped.
    pub fn stop(mut self, engine: &mut Engine) -> Arc<dyn Backend> {
        if let Some(d) = self.target.dynamic() {
            d.detach();
        }
        self.injector.close();
        if let Some(r) = self.reg.take() {
            engine.threads.remove(r);
        }
        engine
            .muxes
            .leave(&self.mux, self.target.vnetid, &engine.threads);
        self.backend.clone()
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.injector.close();
        if self.reg.is_some() {
            // Dropped without stop (an activation that failed half way):
            // the thread keeps no reference once the device's descriptor
            // closes, but it must not run the device again.
            self.tx.failed.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        dataplane::backend::tap::Tap,
        dataplane::mux::MuxKey,
        plugins::{EncapEntry, EncapPlugin, Faults, LookupPlugin, PluginMeta},
        sys::testnet,
        target::{Answer, Mac},
    };
    use overlay_plugin_abi::prop::ip_to_in6;
    use std::{
        net::{IpAddr, Ipv4Addr, UdpSocket},
        time::{Duration, Instant},
    };

    const VNI: u64 = 42;
    const LISTEN_PORT: u16 = 4789;
    const PEER_PORT: u16 = 4790;
    const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    fn loopback() -> [u8; 16] {
        ip_to_in6(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A packet path for a TAP `ifname` with the linked-in VXLAN plugin,
    /// sending to a UDP socket on the loopback that stands for the peer.
    fn start(ifname: &str) -> (Dataplane, Engine, Arc<DeviceStats>, UdpSocket) {
        start_with(ifname, |_| None)
    }

    /// As [`start`], in dynamic mode when `dynamic` makes a target (given
    /// the device's counters).
    fn start_with(
        ifname: &str,
        dynamic: impl FnOnce(&Arc<DeviceStats>) -> Option<Arc<DynTarget>>,
    ) -> (Dataplane, Engine, Arc<DeviceStats>, UdpSocket) {
        let plugin = EncapPlugin::linked(|| overlay_vxlan::Vxlan);
        let entry = Arc::new(EncapEntry {
            meta: PluginMeta {
                name: "vxlan".into(),
                version: "test".into(),
                abi_version: "test".into(),
                path: "linked-in".into(),
            },
            info: plugin.info(),
            plugin,
        });
        // No IPv6 on the TAP: the host stack's own multicast (router
        // solicitations, MLD) would go down the transmit path and count as
        // lookups in the middle of the tests' counts. (The tests run inside
        // their namespace, so this is the namespace's setting.)
        std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").unwrap();
        let backend: Arc<dyn Backend> = Arc::new(Tap::create(ifname, 1500, true, None).unwrap());
        let stats = Arc::new(DeviceStats::default());
        let port = Arc::new(Port {
            backend: backend.clone(),
            stats: stats.clone(),
            health: Arc::new(crate::stats::Health::default()),
        });
        let faults = Faults::new(ifname, port.health.clone(), stats.clone());
        let encap = Arc::new(entry.plugin.new_device(faults).unwrap());
        let key = MuxKey {
            domain: libc::AF_INET,
            sotype: libc::SOCK_DGRAM,
            protocol: libc::IPPROTO_UDP,
            addr: loopback(),
            port: LISTEN_PORT,
            options: Vec::new(),
        };
        let mut engine = Engine::start(1, Offloads::default().probe(), Duration::ZERO).unwrap();
        let mux = engine
            .muxes
            .join(
                key,
                &entry,
                VNI,
                port.clone(),
                &engine.threads,
                &engine.offloads,
            )
            .unwrap();
        let peer = UdpSocket::bind(("127.0.0.1", PEER_PORT)).unwrap();
        peer.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let dest = match dynamic(&stats) {
            Some(d) => TxDest::Dynamic(d),
            None => TxDest::Point(Point {
                mac: [0; 6],
                ip: loopback(),
                port: PEER_PORT,
            }),
        };
        let target = TxTarget { vnetid: VNI, dest };
        let tunables = Arc::new(TxTunables::new(1500, true, 49152, 65535));
        let dp = Dataplane::start(
            &engine.threads,
            backend,
            mux,
            port,
            encap,
            tunables,
            stats.clone(),
            target,
        )
        .unwrap();
        (dp, engine, stats, peer)
    }

    /// As [`start`], in dynamic mode: the device (link 1, named
    /// `ifname`) has a target cache whose lookups `service` serves.
    fn start_dynamic(
        ifname: &str,
        service: &Arc<crate::target::lookup::LookupService>,
    ) -> (
        Dataplane,
        Engine,
        Arc<DeviceStats>,
        UdpSocket,
        Arc<DynTarget>,
    ) {
        let mut made = None;
        let (dp, muxes, stats, peer) = start_with(ifname, |stats| {
            let t = Arc::new(DynTarget::new(
                crate::target::DynIdentity {
                    linkid: 1,
                    name: ifname.into(),
                    needs: 6,
                    domain: libc::AF_INET,
                },
                crate::target::CacheLimits::default(),
                stats.clone(),
                Arc::new(crate::stats::Health::default()),
                service,
            ));
            made = Some(t.clone());
            Some(t)
        });
        (dp, muxes, stats, peer, made.unwrap())
    }

    /// The inner frames the peer receives within `wait` that `keep` accepts,
    /// after checking each VXLAN header carries [`VNI`].
    fn receive(
        peer: &UdpSocket,
        want: usize,
        wait: Duration,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < want && Instant::now() < deadline {
            let Ok(n) = peer.recv(&mut buf) else { continue };
            let h = overlay_vxlan::Header::new_checked(&buf[..n]).unwrap();
            assert!(h.vni_valid());
            assert_eq!(h.vni() as u64, VNI);
            let inner = &buf[overlay_vxlan::HEADER_LEN..n];
            if keep(inner) {
                got.push(inner.to_vec());
            }
        }
        got
    }

    fn test_frame(i: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x09]);
        f[6..12].copy_from_slice(&HOST_MAC);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental
        f[14] = i;
        f
    }

    #[test]
    fn outbound_injection_is_encapsulated_in_order() {
        testnet::run("outbound_injection_is_encapsulated_in_order", |ns| {
            ns.ip(&["link", "set", "lo", "up"]);
            let (dp, mut engine, stats, peer) = start("inj0");
            let inj = dp.injector();
            for i in 0..5 {
                inj.outbound(&test_frame(i)).unwrap();
            }
            let got = receive(&peer, 5, Duration::from_secs(5), |f| {
                f[12..14] == [0x88, 0xb5]
            });
            let want: Vec<Vec<u8>> = (0..5).map(test_frame).collect();
            assert_eq!(got, want);
            // The thread counts a batch just after sending it.
            let deadline = Instant::now() + Duration::from_secs(2);
            while stats.tx_injected.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(stats.tx_injected.load(Ordering::Relaxed), 5);
            assert!(stats.tx_packets.load(Ordering::Relaxed) >= 5);

            // Bad sizes are refused and counted; nothing is queued.
            let e = inj.outbound(&[0u8; 10]).unwrap_err();
            assert_eq!(e.errno, libc::EINVAL, "{}", e.msg);
            assert!(e.msg.contains("14 to 1518"), "{}", e.msg);
            let e = inj.outbound(&vec![0u8; 1519]).unwrap_err();
            assert_eq!(e.errno, libc::EINVAL);
            assert_eq!(stats.drop_inject.load(Ordering::Relaxed), 2);

            // Once stopped, injection fails and nothing more is sent.
            let _backend = dp.stop(&mut engine);
            let e = inj.outbound(&test_frame(9)).unwrap_err();
            assert_eq!(e.errno, libc::ENXIO, "{}", e.msg);
            let e = inj.inbound(&[&test_frame(9)]).unwrap_err();
            assert_eq!(e.errno, libc::ENXIO);
            let ours = |f: &[u8]| f[12..14] == [0x88, 0xb5];
            assert!(receive(&peer, 1, Duration::from_millis(400), ours).is_empty());
        });
    }

    #[test]
    fn inbound_injection_reaches_the_hosts() {
        testnet::run("inbound_injection_reaches_the_hosts", |ns| {
            ns.ip(&["link", "set", "lo", "up"]);
            let (dp, mut engine, stats, peer) = start("inj1");
            ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "inj1"]);
            ns.wait_up("inj1");
            // An ARP request injected towards the hosts is answered by the
            // host stack, and the answer comes back down the transmit path.
            let request = testnet::arp_request(HOST_MAC, [192, 0, 2, 2], [192, 0, 2, 1]);
            assert_eq!(dp.injector().inbound(&[&request]).unwrap(), 1);
            let got = receive(&peer, 1, Duration::from_secs(5), |f| {
                testnet::arp_reply(f).is_some()
            });
            assert_eq!(got.len(), 1, "no ARP reply came back");
            let (sha, spa, dst) = testnet::arp_reply(&got[0]).unwrap();
            assert_eq!(spa, [192, 0, 2, 1]);
            assert_eq!(sha, dp.backend.link_addr());
            assert_eq!(dst, HOST_MAC);
            assert_eq!(stats.rx_injected.load(Ordering::Relaxed), 1);
            let _backend = dp.stop(&mut engine);
        });
    }

    #[test]
    fn a_full_injection_queue_refuses_more() {
        testnet::run("a_full_injection_queue_refuses_more", |_ns| {
            let backend: Arc<dyn Backend> =
                Arc::new(Tap::create("inj2", 1500, true, None).unwrap());
            let stats = Arc::new(DeviceStats::default());
            let tunables = Arc::new(TxTunables::new(1500, false, 49152, 65535));
            // No packet thread drains this injector.
            let inj = Injector::new(backend, tunables, stats.clone());
            for i in 0..INJECT_QUEUE_MAX {
                inj.outbound(&test_frame(i as u8)).unwrap();
            }
            let e = inj.outbound(&test_frame(0)).unwrap_err();
            assert_eq!(e.errno, libc::ENOBUFS, "{}", e.msg);
            assert_eq!(stats.drop_inject.load(Ordering::Relaxed), 1);
            // Closing forgets the waiting frames, counting them.
            inj.close();
            assert_eq!(
                stats.drop_inject.load(Ordering::Relaxed),
                1 + INJECT_QUEUE_MAX as u64
            );
        });
    }

    #[test]
    fn dynamic_mode_counts_refused_sizes_without_a_single_destination() {
        testnet::run(
            "dynamic_mode_counts_refused_sizes_without_a_single_destination",
            |ns| {
                use crate::target::lookup::LookupService;
                ns.ip(&["link", "set", "lo", "up"]);
                let service = LookupService::new(1);
                let (dp, mut engine, stats, peer, target) = start_dynamic("dyn1", &service);
                // The batch is sent here, not by the packet thread.
                let conf = dp.tx.conf.read().unwrap().clone();
                assert!(
                    conf.single.is_none(),
                    "dynamic mode has no single destination"
                );
                let known = [0x02, 0, 0, 0, 0, 0x09];
                let peer_point = Point {
                    mac: [0; 6],
                    ip: loopback(),
                    port: PEER_PORT,
                };
                target.set(&Mac(known), Answer::To(peer_point));
                let mut big = vec![0u8; 1519];
                big[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
                let runt = vec![0x02u8; 10];
                let frames = [runt, test_frame(1), big];
                let before = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                let (mtu, runts, no_dest, tx) = (
                    before(&stats.drop_mtu),
                    before(&stats.drop_runt),
                    before(&stats.drop_no_destination),
                    before(&stats.tx_packets),
                );
                let mut scratch = tx::TxScratch::new();
                let sent = dp
                    .tx
                    .classify_and_send(&conf, &mut scratch.bufs, frames.len(), |i| &frames[i][..]);
                assert_eq!(sent, 1);
                assert_eq!(before(&stats.drop_mtu) - mtu, 1);
                assert_eq!(before(&stats.drop_runt) - runts, 1);
                assert_eq!(before(&stats.drop_no_destination) - no_dest, 0);
                assert_eq!(before(&stats.tx_packets) - tx, 1);
                // Refused frames never reach the cache.
                assert_eq!(target.entry(&Mac([0x02, 0, 0, 0, 0, 0x0b])), None);
                let got = receive(&peer, 1, Duration::from_secs(5), |f| {
                    f[12..14] == [0x88, 0xb5]
                });
                assert_eq!(got, vec![test_frame(1)]);
                let _backend = dp.stop(&mut engine);
                service.shutdown();
            },
        );
    }

    #[test]
    fn dynamic_mode_looks_up_misses_and_sends_in_order() {
        testnet::run("dynamic_mode_looks_up_misses_and_sends_in_order", |ns| {
            use crate::target::lookup::LookupService;
            ns.ip(&["link", "set", "lo", "up"]);
            let service = LookupService::new(2);
            let plugin = LookupPlugin::linked(|| crate::target::lookup::tests::Table {
                peer_port: PEER_PORT,
            });
            let (dp, mut engine, stats, peer, target) = start_dynamic("dyn0", &service);
            let faults = Faults::new(
                "dyn0",
                Arc::new(crate::stats::Health::default()),
                stats.clone(),
            );
            let inst = Arc::new(plugin.new_device(6, VNI, faults).unwrap());
            service.add_device(target.clone(), inst, "table", false);
            let inj = dp.injector();
            // Five frames to a MAC not yet known: one lookup, then all
            // five go out in order.
            for i in 0..5 {
                inj.outbound(&test_frame(i)).unwrap();
            }
            let got = receive(&peer, 5, Duration::from_secs(5), |f| {
                f[12..14] == [0x88, 0xb5]
            });
            assert_eq!(got, (0..5).map(test_frame).collect::<Vec<_>>());
            assert_eq!(stats.lookup_requests.load(Ordering::Relaxed), 1);
            assert_eq!(stats.lookup_answers.load(Ordering::Relaxed), 1);
            let mac = [0x02, 0, 0, 0, 0, 0x09];
            assert!(matches!(
                target.entry(&Mac(mac)),
                Some((crate::target::State::Valid(_), 0))
            ));
            // A hit now needs no lookup.
            // (The host stack's own multicast, replicated by the table,
            // is told apart by its ethertype.)
            let ours = |f: &[u8]| f[12..14] == [0x88, 0xb5];
            inj.outbound(&test_frame(5)).unwrap();
            assert_eq!(receive(&peer, 1, Duration::from_secs(5), ours).len(), 1);
            assert_eq!(stats.lookup_requests.load(Ordering::Relaxed), 1);

            // An unknown MAC is dropped by the lookup; nothing is sent.
            let mut unknown = test_frame(7);
            unknown[5] = 0x0a;
            inj.outbound(&unknown).unwrap();
            assert!(receive(&peer, 1, Duration::from_millis(400), ours).is_empty());
            assert_eq!(stats.lookup_drops.load(Ordering::Relaxed), 1);

            // Broadcast is replicated, frame by frame, and never cached.
            let mut bcast = test_frame(8);
            bcast[..6].copy_from_slice(&[0xff; 6]);
            inj.outbound(&bcast).unwrap();
            inj.outbound(&bcast).unwrap();
            let got = receive(&peer, 2, Duration::from_secs(5), ours);
            assert_eq!(got, vec![bcast.clone(), bcast.clone()]);
            assert!(stats.lookup_replicated.load(Ordering::Relaxed) >= 2);
            assert!(!matches!(
                target.entry(&Mac::BROADCAST),
                Some((crate::target::State::Valid(_), _))
            ));
            service.remove_device(1);
            let _backend = dp.stop(&mut engine);
            service.shutdown();
        });
    }

    /// One GRO train (a single `UDP_SEGMENT` send that the mux's
    /// `UDP_GRO` socket receives whole) mixing a good datagram, one whose
    /// header the plugin refuses, one for an unknown VNI, another good one
    /// and a short last datagram: each is judged on its own, the bad ones
    /// dropped and counted by reason, the good ones delivered.
    #[test]
    fn a_gro_train_is_handled_datagram_by_datagram() {
        testnet::run("a_gro_train_is_handled_datagram_by_datagram", |ns| {
            ns.ip(&["link", "set", "lo", "up"]);
            let (dp, mut engine, stats, _peer) = start("gro1");
            assert!(engine.offloads.udp_gro, "the kernel has UDP_GRO");
            ns.wait_up("gro1");
            let frame = testnet::arp_request(HOST_MAC, [192, 0, 2, 2], [192, 0, 2, 1]);
            let vxlan = |flags: u8, vni: u32| {
                let mut d = vec![flags, 0, 0, 0];
                d.extend_from_slice(&(vni << 8).to_be_bytes());
                d.extend_from_slice(&frame);
                d
            };
            let good = vxlan(0x08, VNI as u32);
            let seg = good.len();
            let mut train = Vec::new();
            train.extend_from_slice(&good);
            train.extend_from_slice(&vxlan(0x00, VNI as u32)); // no I flag
            train.extend_from_slice(&vxlan(0x08, 43)); // no such device
            train.extend_from_slice(&good);
            train.extend_from_slice(&good[..12]); // header and 4 bytes
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            use nix::sys::socket::{setsockopt, sockopt};
            setsockopt(&sock, sockopt::UdpGsoSegment, &(seg as libc::c_int)).expect("UDP_SEGMENT");
            assert_eq!(
                sock.send_to(&train, ("127.0.0.1", LISTEN_PORT)).unwrap(),
                train.len()
            );
            let m = &dp.mux.stats;
            let deadline = Instant::now() + Duration::from_secs(5);
            while m.rx_packets.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(m.rx_packets.load(Ordering::Relaxed), 5);
            assert_eq!(m.rx_gro.load(Ordering::Relaxed), 1, "one read, one train");
            assert_eq!(m.drop_bad_header.load(Ordering::Relaxed), 1);
            assert_eq!(m.drop_unknown_vnetid.load(Ordering::Relaxed), 1);
            assert_eq!(m.drop_short.load(Ordering::Relaxed), 1);
            assert_eq!(stats.rx_packets.load(Ordering::Relaxed), 2, "the good two");
            assert_eq!(
                stats.rx_bytes.load(Ordering::Relaxed),
                2 * frame.len() as u64
            );
            let _backend = dp.stop(&mut engine);
        });
    }
}
