//! Which offloads the packet path uses: what the kernel supports, probed
//! once at start, less what the administrator turned off.
//!
//! * `tso`: the TAP hands over TCP (and UDP) super-frames of up to 64 KiB
//!   with partial checksums (`TUNSETOFFLOAD`), instead of MTU-sized frames.
//! * `udp-gso`: super-frames leave in one `sendmsg` with `UDP_SEGMENT`,
//!   the kernel cutting the datagrams.
//! * `udp-gro`: the underlay socket receives runs of datagrams in one read
//!   (`UDP_GRO`).
//! * `coalesce`: consecutive TCP segments of a flow are merged into one
//!   frame for the TAP (with a virtio-net GSO header), as GRO would.
//!
//! Each has a fallback that gives the same frames on the wire: MTU-sized
//! frames from the TAP, segmentation here and one datagram per segment,
//! one datagram per read, one TAP write per frame.

use crate::sys::socket;
use nix::sys::socket::{self as nixsock, sockopt, SetSockOpt};
use std::fmt;

/// The offloads in use (each true only when supported and not turned off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offloads {
    /// TAP segmentation and checksum offload.
    pub tso: bool,
    /// UDP GSO on the underlay.
    pub udp_gso: bool,
    /// UDP GRO on the underlay.
    pub udp_gro: bool,
    /// Receive coalescing into GSO frames for the TAP.
    pub coalesce: bool,
}

/// The offload names, as options and logs spell them.
pub const NAMES: [&str; 4] = ["tso", "udp-gso", "udp-gro", "coalesce"];

impl Default for Offloads {
    /// Everything on (before probing).
    fn default() -> Offloads {
        Offloads {
            tso: true,
            udp_gso: true,
            udp_gro: true,
            coalesce: true,
        }
    }
}

impl Offloads {
    /// Nothing on: every frame MTU-sized, one syscall per frame.
    pub fn none() -> Offloads {
        Offloads {
            tso: false,
            udp_gso: false,
            udp_gro: false,
            coalesce: false,
        }
    }

    /// Turns off the offload `name` (one of [`NAMES`]); an unknown name is
    /// an error that lists the known ones.
    pub fn disable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "tso" => self.tso = false,
            "udp-gso" => self.udp_gso = false,
            "udp-gro" => self.udp_gro = false,
            "coalesce" => self.coalesce = false,
            _ => {
                return Err(format!(
                    "unknown offload {name:?}: the offloads are {}",
                    NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// What the running kernel supports of `self`: `UDP_SEGMENT` and
    /// `UDP_GRO` are tried on a throwaway UDP socket. (TAP offloads are
    /// negotiated per TAP when it is created, with a fallback to none.)
    pub fn probe(self) -> Offloads {
        Offloads {
            udp_gso: self.udp_gso && udp_accepts(sockopt::UdpGsoSegment, &1400),
            udp_gro: self.udp_gro && udp_accepts(sockopt::UdpGroSegment, &true),
            ..self
        }
    }

    /// Per-offload on/off pairs, in [`NAMES`] order.
    pub fn list(&self) -> [(&'static str, bool); 4] {
        [
            (NAMES[0], self.tso),
            (NAMES[1], self.udp_gso),
            (NAMES[2], self.udp_gro),
            (NAMES[3], self.coalesce),
        ]
    }
}

impl fmt::Display for Offloads {
    /// `tso on, udp-gso on, udp-gro off, coalesce on`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, on)) in self.list().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name} {}", if *on { "on" } else { "off" })?;
        }
        Ok(())
    }
}

/// Whether a UDP socket accepts the option `opt` set to `value`.
fn udp_accepts<O: SetSockOpt>(opt: O, value: &O::Val) -> bool {
    socket::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
        .is_ok_and(|fd| nixsock::setsockopt(&fd, opt, value).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_turn_offloads_off() {
        let mut o = Offloads::default();
        o.disable("udp-gso").unwrap();
        o.disable("coalesce").unwrap();
        assert_eq!(
            o.to_string(),
            "tso on, udp-gso off, udp-gro on, coalesce off"
        );
        let e = o.disable("lro").unwrap_err();
        assert!(e.contains("tso, udp-gso, udp-gro, coalesce"), "{e}");
    }

    #[test]
    fn probing_keeps_what_is_off_off() {
        // This kernel has both UDP options; what was turned off stays off.
        assert!(Offloads::default().probe().udp_gso);
        assert!(Offloads::default().probe().udp_gro);
        assert_eq!(Offloads::none().probe(), Offloads::none());
    }
}
