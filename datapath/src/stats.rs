//! Counters, per device and per mux: plain atomics, written by the packet
//! threads with relaxed ordering and read by the control thread. A packet
//! thread adds a whole batch at once, so the cost is a few atomic adds per
//! batch, not per frame.

use std::sync::{
    atomic::{
        AtomicU64,
        Ordering::{Acquire, Relaxed, Release},
    },
    Mutex,
};

macro_rules! counters {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: AtomicU64,)*
        }

        impl $name {
            /// Every counter as (name, value), in declaration order; the
            /// names are those of the STATS reply and `overlayctl show -s -j`.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field.load(Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Counters of one device.
    DeviceStats {
        /// Frames delivered to the device's hosts (decapsulated).
        rx_packets,
        /// Bytes of those frames.
        rx_bytes,
        /// Frames encapsulated and sent.
        tx_packets,
        /// Bytes of those frames (inner frames, without encapsulation).
        tx_bytes,
        /// Frames from the hosts larger than MTU + Ethernet header (+ VLAN tag).
        drop_mtu,
        /// Frames shorter than an Ethernet header.
        drop_runt,
        /// Frames the encapsulation plugin refused.
        drop_encap,
        /// Frames with no usable destination (address family of the underlay).
        drop_no_destination,
        /// Frames the underlay socket refused to send.
        drop_send,
        /// Decapsulated frames the backend could not take.
        drop_backend,
        /// Plugin calls on the packet path that panicked.
        plugin_panics,
        /// Frames injected down the transmit path and sent.
        tx_injected,
        /// Frames injected towards the hosts and delivered.
        rx_injected,
        /// Injected frames refused (bad size, queue full, device stopping).
        drop_inject,
        /// Dynamic mode: lookups requested (cache misses that needed one,
        /// and frames left queued after a drop or proxy answer).
        lookup_requests,
        /// Lookups answered with a destination.
        lookup_answers,
        /// Lookups answered by dropping the frame (including proxy and
        /// redirect answers, which replace it).
        lookup_drops,
        /// Frames replicated to every destination (flooding).
        lookup_replicated,
        /// Proxy answers (ARP, NDP) delivered to the hosts.
        lookup_proxied,
        /// Lookups not answered within `lookup_timeout` and asked again.
        lookup_timeouts,
        /// Lookups that failed in the plugin or gave an unusable answer.
        lookup_errors,
        /// Super-frames from the hosts (TSO, up to 64 KiB) sent with one
        /// UDP GSO send each.
        tx_gso,
        /// Super-frames cut into segments here (UDP GSO off or refused).
        tx_segmented,
        /// Frames written to the hosts as one GSO frame, each standing for
        /// several received TCP segments merged.
        rx_gso,
        /// Frames from the hosts whose virtio-net header puts the partial
        /// checksum outside the frame.
        drop_vnet_csum,
        /// Super-frames whose segment size is 0 or larger than the frame.
        drop_vnet_gso_size,
        /// Super-frames whose GSO type is unknown or does not match their
        /// headers.
        drop_vnet_gso_type,
    }
}

counters! {
    /// Counters of one mux (underlay socket).
    MuxStats {
        /// Underlay packets received.
        rx_packets,
        /// Bytes of those packets (UDP payload).
        rx_bytes,
        /// Packets whose virtual network id matches no device.
        drop_unknown_vnetid,
        /// Packets whose encapsulation header the plugin refused.
        drop_bad_header,
        /// Packets too short to hold an inner Ethernet frame.
        drop_short,
        /// OAM packets, never delivered to a device.
        drop_oam,
        /// `decap` calls that panicked in the encapsulation plugin (the
        /// packet's device is not known yet, so they are counted here and
        /// every device of the mux is degraded).
        plugin_panics,
        /// Underlay packets sent.
        tx_packets,
        /// Bytes sent (UDP payload).
        tx_bytes,
        /// Reads that returned several datagrams at once (UDP GRO).
        rx_gro,
        /// Sends that carried several datagrams at once (UDP GSO).
        tx_gso,
    }
}

counters! {
    /// Counters of the control server, since the daemon started.
    ServerCounters {
        /// Connections accepted (handles opened).
        connections,
        /// Request messages received (every netlink message of every
        /// request datagram, well-formed or not).
        requests,
        /// Requests answered with an error (`NLMSG_ERROR` with an errno).
        errors,
        /// Notifications not queued for a handle that was not reading
        /// them (its overrun report included).
        notifications_dropped,
    }
}

/// The control server's figures, written by the control thread and read
/// by the `SERVER_STATS` handler.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// The counters.
    pub counters: ServerCounters,
    /// Handles (connections) open now.
    pub handles: AtomicU64,
}

/// How many times any device's health changed in this process. The
/// control thread looks at every device's health after each request only
/// when this moved (or the device table changed) since it last looked, so
/// that a request to a daemon with thousands of devices does not walk them
/// all.
static HEALTH_CHANGES: AtomicU64 = AtomicU64::new(0);

/// What wakes the control loop when a device's health changes, so that
/// the change is notified at once rather than with the next request (set
/// once, by the daemon).
static HEALTH_WAKER: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>> = std::sync::OnceLock::new();

/// Sets what [`Health::degrade`] and [`Health::restore`] call after a
/// change (the control loop's waker). Only the first call counts.
pub fn on_health_change(wake: Box<dyn Fn() + Send + Sync>) {
    let _ = HEALTH_WAKER.set(wake);
}

fn health_changed() {
    HEALTH_CHANGES.fetch_add(1, Release);
    if let Some(wake) = HEALTH_WAKER.get() {
        wake();
    }
}

/// The number of health changes so far, of every device (see
/// [`Health`]): equal numbers mean no device's health changed in between.
pub fn health_changes() -> u64 {
    HEALTH_CHANGES.load(Acquire)
}

/// A device's health, shared by the control thread and the packet threads:
/// the most recent fault, if any. A packet thread touches it only when a
/// plugin call has already failed by panicking, never on the normal path.
#[derive(Debug, Default)]
pub struct Health {
    fault: Mutex<Option<String>>,
    /// Changes made so far: lets a reader that saw one version know the
    /// fault is unchanged without locking and copying it.
    version: AtomicU64,
}

impl Health {
    /// Records a fault (replacing an older one). Returns whether the device
    /// was healthy before, so that the caller logs a transition once rather
    /// than once per packet.
    pub fn degrade(&self, msg: &str) -> bool {
        let mut fault = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        let was_ok = fault.is_none();
        *fault = Some(msg.to_string());
        self.version.fetch_add(1, Relaxed);
        drop(fault);
        health_changed();
        was_ok
    }

    /// Clears the fault: the device is healthy again. Returns whether it
    /// was degraded.
    pub fn restore(&self) -> bool {
        let mut fault = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        let was_degraded = fault.take().is_some();
        if was_degraded {
            self.version.fetch_add(1, Relaxed);
        }
        drop(fault);
        if was_degraded {
            health_changed();
        }
        was_degraded
    }

    /// A number that changes whenever the fault may have: equal versions
    /// mean an equal [`Health::fault`].
    pub fn version(&self) -> u64 {
        self.version.load(Relaxed)
    }

    /// The most recent fault, if the device is degraded.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Adds `n` to a counter.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.fetch_add(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_and_values() {
        let s = MuxStats::default();
        add(&s.rx_packets, 3);
        add(&s.drop_unknown_vnetid, 1);
        let snap = s.snapshot();
        assert_eq!(snap[0], ("rx_packets", 3));
        assert!(snap.contains(&("drop_unknown_vnetid", 1)));
        assert_eq!(snap.len(), 11);
        assert!(snap.contains(&("plugin_panics", 0)));
    }

    #[test]
    fn health_reports_the_latest_fault_and_the_first_transition() {
        let h = Health::default();
        assert_eq!(h.fault(), None);
        assert!(h.degrade("first"));
        assert!(!h.degrade("second"));
        assert_eq!(h.fault().as_deref(), Some("second"));
    }
}
