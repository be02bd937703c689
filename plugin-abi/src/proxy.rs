//! Answers a lookup plugin gives on behalf of the hosts it knows: ARP
//! replies, IPv6 Neighbour Advertisements, and broadcast DHCP requests
//! re-addressed to a server.
//!
//! A dynamic lookup plugin that keeps a table of its overlay's hosts (MAC,
//! overlay IPv4 and IPv6 addresses) can stop address resolution from being
//! broadcast across the underlay: instead of replicating an ARP request or a
//! Neighbour Solicitation to every host, it answers it from the table. These
//! functions do the frame work; the plugin supplies the answer through a
//! resolver closure and returns the result as a [`LookupAnswer`]:
//!
//! | helper | result | answer with |
//! |---|---|---|
//! | [`proxy_arp`] | an ARP reply | [`LookupAnswer::inject`] |
//! | [`proxy_ndp`] | a Neighbour Advertisement | [`LookupAnswer::inject`] |
//! | [`proxy_dhcp`] | the request, unicast to the server | [`LookupAnswer::resend`] |
//!
//! [`dhcp_reply`] reads a DHCP server's reply (the client, the address it
//! is given, the message type), with the same checks as [`proxy_dhcp`], so
//! that a plugin can learn from the leases a server behind its device
//! hands out.
//!
//! Every helper takes the whole frame as the daemon passes it to
//! [`LookupDevice::lookup`] (Ethernet header first, possibly with one VLAN
//! tag), checks it fully before it reads a field, and never panics on any
//! input. A frame it will not answer is a [`ProxyError`] saying what was
//! wrong; [`ProxyError::is_other_traffic`] separates frames the helper does
//! not answer at all (another protocol, destination or port), which the
//! plugin may forward by other means, from requests of the helper's
//! protocol that are malformed or unanswerable, which a plugin that owns
//! address resolution drops and counts.
//!
//! [`LookupAnswer`]: crate::LookupAnswer
//! [`LookupAnswer::inject`]: crate::LookupAnswer::inject
//! [`LookupAnswer::resend`]: crate::LookupAnswer::resend
//! [`LookupDevice::lookup`]: crate::LookupDevice::lookup

use crate::{csum, LookupRequest};
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Bytes of an ARP message for Ethernet and IPv4.
const ARP_LEN: usize = 28;
/// Bytes of an IPv6 header.
const IPV6_LEN: usize = 40;
/// Bytes of a Neighbour Solicitation or Advertisement before its options.
const ND_LEN: usize = 24;
/// Bytes of the fixed part of a BOOTP/DHCP message (op through `file`).
const BOOTP_FIXED_LEN: usize = 236;
/// IPv6 next header value of ICMPv6.
const IPPROTO_ICMPV6: u8 = 58;
/// IPv4 protocol number of UDP.
const IPPROTO_UDP: u8 = 17;
const ICMPV6_ROUTER_SOLICIT: u8 = 133;
const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;
const ICMPV6_REDIRECT: u8 = 137;
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;
/// Neighbour Advertisement flags: Solicited and Override.
const NA_FLAGS_SOLICITED_OVERRIDE: u8 = 0x60;
const DHCP_CLIENT_PORT: u16 = 68;
const DHCP_SERVER_PORT: u16 = 67;
/// BOOTP `op` of a server's reply.
const BOOTREPLY: u8 = 2;
/// The magic cookie that starts DHCP's options (RFC 2131 §3).
const DHCP_MAGIC: [u8; 4] = [99, 130, 83, 99];
const DHCP_OPT_PAD: u8 = 0;
const DHCP_OPT_END: u8 = 255;
/// Option overload: more options in `file` (1), `sname` (2) or both (3).
const DHCP_OPT_OVERLOAD: u8 = 52;
const DHCP_OPT_MESSAGE_TYPE: u8 = 53;
/// DHCP message type (option 53) of a server's offer.
pub const DHCPOFFER: u8 = 2;
/// DHCP message type (option 53) of a server's acknowledgement: the
/// client has the address.
pub const DHCPACK: u8 = 5;
/// DHCP message type (option 53) of a server's refusal.
pub const DHCPNAK: u8 = 6;

/// Why a proxy helper did not answer a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// The frame ends before a header it must carry.
    Truncated {
        /// The header that does not fit.
        what: &'static str,
        /// Bytes needed, from the start of the frame.
        need: usize,
        /// Bytes the frame has.
        have: usize,
    },
    /// The frame carries another protocol than the helper answers.
    Ethertype {
        /// The ethertype the helper answers.
        expected: u16,
        /// The frame's ethertype (after a VLAN tag).
        found: u16,
    },
    /// The Ethernet destination is not the kind the request is sent to.
    Destination {
        /// What it has to be.
        expected: &'static str,
        /// The frame's destination.
        found: [u8; 6],
    },
    /// An ARP message for other than Ethernet and IPv4 addresses.
    ArpFormat {
        /// Hardware type (1 is Ethernet).
        htype: u16,
        /// Protocol type (0x0800 is IPv4).
        ptype: u16,
        /// Hardware address length (6).
        hlen: u8,
        /// Protocol address length (4).
        plen: u8,
    },
    /// An ARP message other than a request (a reply, RARP, ...).
    ArpNotRequest {
        /// The operation code (1 is a request).
        op: u16,
    },
    /// A gratuitous ARP request (sender and target addresses equal): an
    /// announcement, not a question.
    GratuitousArp(Ipv4Addr),
    /// The IP header's version field does not match the ethertype.
    IpVersion {
        /// The version the ethertype implies.
        expected: u8,
        /// The header's version field.
        found: u8,
    },
    /// The IPv6 header is not directly followed by ICMPv6 (another
    /// protocol, or extension headers, which Neighbour Discovery never
    /// carries).
    NextHeader(u8),
    /// An ICMPv6 message that is not Neighbour Discovery.
    NotNeighborDiscovery {
        /// The ICMPv6 type.
        icmp_type: u8,
    },
    /// A Neighbour Discovery message other than a Neighbour Solicitation
    /// (router messages, advertisements, redirects).
    NotSolicitation {
        /// The ICMPv6 type.
        icmp_type: u8,
    },
    /// A Neighbour Solicitation with a code other than 0.
    IcmpCode(u8),
    /// A Neighbour Solicitation whose hop limit is not 255, so it may come
    /// from off-link (RFC 4861 §7.1.1).
    HopLimit(u8),
    /// A Neighbour Solicitation not sent to a solicited-node multicast
    /// address (`ff02::1:ffXX:XXXX`).
    NotSolicitedNode(Ipv6Addr),
    /// The IP header claims more payload than the frame holds, or less
    /// than the message needs.
    PayloadLength {
        /// Bytes the header claims.
        claimed: usize,
        /// Bytes the frame holds after the header (or the least the message
        /// needs, when the claim is too small).
        available: usize,
    },
    /// A Neighbour Solicitation from the unspecified address (duplicate
    /// address detection), which is never answered for another host.
    UnspecifiedSource,
    /// The solicited target is multicast, IPv4-mapped or loopback.
    BadTarget(Ipv6Addr),
    /// A Neighbour Solicitation without a Source Link-Layer Address option,
    /// so there is no unicast address to answer.
    NoSourceLinkLayer,
    /// A Neighbour Discovery option with a zero length, or one running past
    /// the end of the message.
    BadOption {
        /// Offset of the option from the start of the ICMPv6 message.
        offset: usize,
        /// Its length in bytes (the length field times 8).
        len: usize,
    },
    /// An IPv4 header length below 20 bytes.
    Ipv4HeaderLength(usize),
    /// Not UDP inside IPv4.
    Protocol(u8),
    /// An IPv4 fragment, which has no complete UDP message.
    Fragment,
    /// UDP ports other than a DHCP client's request (68 to 67).
    UdpPorts {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// UDP ports other than a DHCP server's reply (67 to 68).
    DhcpReplyPorts {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// A BOOTP message that is not a reply about an Ethernet client.
    BootpFormat {
        /// Operation (2 is a reply).
        op: u8,
        /// Hardware type (1 is Ethernet).
        htype: u8,
        /// Hardware address length (6).
        hlen: u8,
    },
    /// A BOOTP message without DHCP's magic cookie or message type option.
    NotDhcp,
    /// A DHCP option that runs past the end of the field holding it.
    BadDhcpOption {
        /// Offset of the option from the start of the BOOTP message.
        offset: usize,
    },
    /// The resolver has no answer for this address.
    Unresolved(IpAddr),
    /// The client has no DHCP server to redirect its requests to.
    NoDhcpServer([u8; 6]),
}

impl ProxyError {
    /// Whether the frame is not a request the helper answers at all
    /// (another ethertype, Ethernet destination, protocol or port, or a
    /// DHCP client without a server to redirect to), so the caller may
    /// handle it by other means, such as replicating it to every host. For
    /// every other refusal the frame is a request of the helper's protocol
    /// (ARP, Neighbour Discovery, DHCP) that is malformed or has no answer;
    /// a plugin that owns address resolution drops it.
    pub fn is_other_traffic(&self) -> bool {
        matches!(
            self,
            ProxyError::Ethertype { .. }
                | ProxyError::Destination { .. }
                | ProxyError::NextHeader(_)
                | ProxyError::NotNeighborDiscovery { .. }
                | ProxyError::Protocol(_)
                | ProxyError::Fragment
                | ProxyError::UdpPorts { .. }
                | ProxyError::DhcpReplyPorts { .. }
                | ProxyError::NoDhcpServer(_)
        )
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Truncated { what, need, have } => write!(
                f,
                "frame too short for its {what}: {have} bytes, {need} needed"
            ),
            ProxyError::Ethertype { expected, found } => {
                write!(f, "ethertype {found:#06x}, not {expected:#06x}")
            }
            ProxyError::Destination { expected, found } => write!(
                f,
                "Ethernet destination {} is not {expected}",
                crate::Mac(*found)
            ),
            ProxyError::ArpFormat {
                htype,
                ptype,
                hlen,
                plen,
            } => write!(
                f,
                "ARP for hardware type {htype} ({hlen}-byte addresses) and protocol \
                 {ptype:#06x} ({plen}-byte addresses), not Ethernet and IPv4"
            ),
            ProxyError::ArpNotRequest { op } => {
                write!(f, "ARP operation {op} is not a request (1)")
            }
            ProxyError::GratuitousArp(ip) => write!(
                f,
                "gratuitous ARP for {ip} (sender and target are the same address)"
            ),
            ProxyError::IpVersion { expected, found } => {
                write!(f, "IP version {found} in an IPv{expected} frame")
            }
            ProxyError::NextHeader(nh) => write!(
                f,
                "IPv6 next header {nh}, not ICMPv6 (58) without extension headers"
            ),
            ProxyError::NotNeighborDiscovery { icmp_type } => {
                write!(f, "ICMPv6 type {icmp_type} is not Neighbour Discovery")
            }
            ProxyError::NotSolicitation { icmp_type } => write!(
                f,
                "Neighbour Discovery type {icmp_type} is not a Neighbour Solicitation (135)"
            ),
            ProxyError::IcmpCode(code) => {
                write!(f, "Neighbour Solicitation with code {code}, not 0")
            }
            ProxyError::HopLimit(h) => {
                write!(f, "Neighbour Solicitation with hop limit {h}, not 255")
            }
            ProxyError::NotSolicitedNode(ip) => write!(
                f,
                "Neighbour Solicitation sent to {ip}, not a solicited-node multicast address"
            ),
            ProxyError::PayloadLength { claimed, available } => write!(
                f,
                "IP payload length {claimed} does not fit: {available} bytes available or needed"
            ),
            ProxyError::UnspecifiedSource => write!(
                f,
                "Neighbour Solicitation from the unspecified address (duplicate address detection)"
            ),
            ProxyError::BadTarget(ip) => write!(
                f,
                "solicited target {ip} is multicast, IPv4-mapped or loopback"
            ),
            ProxyError::NoSourceLinkLayer => write!(
                f,
                "Neighbour Solicitation without a Source Link-Layer Address option"
            ),
            ProxyError::BadOption { offset, len } => write!(
                f,
                "Neighbour Discovery option at offset {offset} has an invalid length of {len} bytes"
            ),
            ProxyError::Ipv4HeaderLength(len) => {
                write!(f, "IPv4 header length {len}, less than 20")
            }
            ProxyError::Protocol(p) => write!(f, "IPv4 protocol {p}, not UDP (17)"),
            ProxyError::Fragment => write!(f, "an IPv4 fragment"),
            ProxyError::UdpPorts { src, dst } => write!(
                f,
                "UDP ports {src} to {dst}, not a DHCP client request (68 to 67)"
            ),
            ProxyError::DhcpReplyPorts { src, dst } => write!(
                f,
                "UDP ports {src} to {dst}, not a DHCP server's reply (67 to 68)"
            ),
            ProxyError::BootpFormat { op, htype, hlen } => write!(
                f,
                "BOOTP message with op {op}, hardware type {htype} and address length {hlen}, \
                 not a reply (2) about an Ethernet client (1, 6)"
            ),
            ProxyError::NotDhcp => write!(
                f,
                "BOOTP message without DHCP's magic cookie and message type option"
            ),
            ProxyError::BadDhcpOption { offset } => write!(
                f,
                "DHCP option at offset {offset} runs past the end of its field"
            ),
            ProxyError::Unresolved(ip) => write!(f, "no answer for {ip}"),
            ProxyError::NoDhcpServer(mac) => {
                write!(f, "no DHCP server to redirect {} to", crate::Mac(*mac))
            }
        }
    }
}

impl std::error::Error for ProxyError {}

fn need(frame: &[u8], len: usize, what: &'static str) -> Result<(), ProxyError> {
    if frame.len() < len {
        return Err(ProxyError::Truncated {
            what,
            need: len,
            have: frame.len(),
        });
    }
    Ok(())
}

/// The Ethernet header of `frame`, checked to carry `ethertype`.
fn ethernet(frame: &[u8], ethertype: u16) -> Result<LookupRequest, ProxyError> {
    let eth = LookupRequest::parse(0, frame, 0).ok_or(ProxyError::Truncated {
        what: "Ethernet header",
        need: if frame.len() >= 14 { 18 } else { 14 },
        have: frame.len(),
    })?;
    if eth.ethertype != ethertype {
        return Err(ProxyError::Ethertype {
            expected: ethertype,
            found: eth.ethertype,
        });
    }
    Ok(eth)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// Answers an ARP request for an IPv4 address the caller knows.
///
/// `frame` must be an ARP request for Ethernet and IPv4 (hardware type 1,
/// protocol 0x0800, address lengths 6 and 4, operation 1) that is not
/// gratuitous (sender and target addresses differ). `resolve` is asked for
/// the MAC owning the target address; the result is the reply that host
/// would send: operation 2, sender = the answer and the target address,
/// target = the requester's addresses, Ethernet destination = the
/// requester, source = the answer, a VLAN tag kept, any trailing padding
/// kept.
pub fn proxy_arp(
    frame: &[u8],
    resolve: impl FnOnce(Ipv4Addr) -> Option<[u8; 6]>,
) -> Result<Vec<u8>, ProxyError> {
    let eth = ethernet(frame, ETHERTYPE_ARP)?;
    let h = eth.hdr_len as usize;
    need(frame, h + ARP_LEN, "ARP message")?;
    let arp = &frame[h..h + ARP_LEN];
    let (htype, ptype, hlen, plen) = (be16(arp, 0), be16(arp, 2), arp[4], arp[5]);
    if (htype, ptype, hlen, plen) != (1, ETHERTYPE_IPV4, 6, 4) {
        return Err(ProxyError::ArpFormat {
            htype,
            ptype,
            hlen,
            plen,
        });
    }
    let op = be16(arp, 6);
    if op != 1 {
        return Err(ProxyError::ArpNotRequest { op });
    }
    let sha: [u8; 6] = array(arp, 8);
    let spa: [u8; 4] = array(arp, 14);
    let tpa: [u8; 4] = array(arp, 24);
    if spa == tpa {
        return Err(ProxyError::GratuitousArp(Ipv4Addr::from(tpa)));
    }
    let target = Ipv4Addr::from(tpa);
    let answer = resolve(target).ok_or(ProxyError::Unresolved(IpAddr::V4(target)))?;

    let mut out = frame.to_vec();
    out[0..6].copy_from_slice(&eth.src);
    out[6..12].copy_from_slice(&answer);
    let arp = &mut out[h..h + ARP_LEN];
    arp[6..8].copy_from_slice(&2u16.to_be_bytes());
    arp[8..14].copy_from_slice(&answer);
    arp[14..18].copy_from_slice(&tpa);
    arp[18..24].copy_from_slice(&sha);
    arp[24..28].copy_from_slice(&spa);
    Ok(out)
}

/// Whether `ip` is a solicited-node multicast address, `ff02::1:ffXX:XXXX`.
fn is_solicited_node(ip: &Ipv6Addr) -> bool {
    let o = ip.octets();
    o[..11] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0] && o[11] == 1 && o[12] == 0xff
}

/// Answers a Neighbour Solicitation for an IPv6 address the caller knows.
///
/// `frame` must be an IPv6 frame to a `33:33:..` Ethernet address, with
/// version 6, hop limit 255, next header ICMPv6 and no extension headers,
/// a payload length that fits in the frame, sent to a solicited-node
/// multicast address from a unicast source, holding a Neighbour
/// Solicitation (type 135, code 0) whose target is not multicast,
/// IPv4-mapped or loopback, and whose options, walked with every length
/// checked, include a Source Link-Layer Address (so duplicate address
/// detection probes, which carry none, are not answered). `resolve` is
/// asked for the MAC owning the target; the result is the Neighbour
/// Advertisement that host would send: Ethernet destination = the
/// requester, source = the answer (a VLAN tag kept); IPv6 source = the
/// target, destination = the requester, hop limit 255, traffic class and
/// flow label copied; type 136, code 0, flags Solicited and Override, a
/// Target Link-Layer Address option with the answer; payload length 32 and
/// the ICMPv6 checksum computed.
pub fn proxy_ndp(
    frame: &[u8],
    resolve: impl FnOnce(Ipv6Addr) -> Option<[u8; 6]>,
) -> Result<Vec<u8>, ProxyError> {
    let eth = ethernet(frame, ETHERTYPE_IPV6)?;
    if eth.dst[..2] != [0x33, 0x33] {
        return Err(ProxyError::Destination {
            expected: "an IPv6 multicast address (33:33:..)",
            found: eth.dst,
        });
    }
    let h = eth.hdr_len as usize;
    need(frame, h + IPV6_LEN, "IPv6 header")?;
    let ip6 = &frame[h..h + IPV6_LEN];
    let version = ip6[0] >> 4;
    if version != 6 {
        return Err(ProxyError::IpVersion {
            expected: 6,
            found: version,
        });
    }
    if ip6[6] != IPPROTO_ICMPV6 {
        return Err(ProxyError::NextHeader(ip6[6]));
    }
    let payload_len = be16(ip6, 4) as usize;
    let available = frame.len() - h - IPV6_LEN;
    if payload_len > available {
        return Err(ProxyError::PayloadLength {
            claimed: payload_len,
            available,
        });
    }
    let icmp = &frame[h + IPV6_LEN..h + IPV6_LEN + payload_len];
    if icmp.is_empty() {
        return Err(ProxyError::Truncated {
            what: "ICMPv6 message",
            need: h + IPV6_LEN + 1,
            have: h + IPV6_LEN + payload_len,
        });
    }
    let icmp_type = icmp[0];
    if !(ICMPV6_ROUTER_SOLICIT..=ICMPV6_REDIRECT).contains(&icmp_type) {
        return Err(ProxyError::NotNeighborDiscovery { icmp_type });
    }
    if icmp_type != ICMPV6_NEIGHBOR_SOLICIT {
        return Err(ProxyError::NotSolicitation { icmp_type });
    }
    if payload_len < ND_LEN {
        return Err(ProxyError::PayloadLength {
            claimed: payload_len,
            available: ND_LEN,
        });
    }
    if icmp[1] != 0 {
        return Err(ProxyError::IcmpCode(icmp[1]));
    }
    if ip6[7] != 255 {
        return Err(ProxyError::HopLimit(ip6[7]));
    }
    let src = Ipv6Addr::from(array::<16>(ip6, 8));
    let dst = Ipv6Addr::from(array::<16>(ip6, 24));
    if !is_solicited_node(&dst) {
        return Err(ProxyError::NotSolicitedNode(dst));
    }
    if src.is_unspecified() {
        return Err(ProxyError::UnspecifiedSource);
    }
    let target = Ipv6Addr::from(array::<16>(icmp, 8));
    if target.is_multicast() || target.to_ipv4_mapped().is_some() || target.is_loopback() {
        return Err(ProxyError::BadTarget(target));
    }
    let mut has_slla = false;
    let mut at = ND_LEN;
    while at < icmp.len() {
        // Every option is at least 8 bytes: type, length in units of 8,
        // then its data. A length of 0 would never advance; one past the
        // end reads outside the message. Both end the walk with a refusal.
        let len = icmp.get(at + 1).map_or(0, |&l| l as usize * 8);
        if len == 0 || at + len > icmp.len() {
            return Err(ProxyError::BadOption { offset: at, len });
        }
        if icmp[at] == ND_OPT_SOURCE_LINKADDR {
            has_slla = true;
        }
        at += len;
    }
    if !has_slla {
        return Err(ProxyError::NoSourceLinkLayer);
    }
    let answer = resolve(target).ok_or(ProxyError::Unresolved(IpAddr::V6(target)))?;

    let na_len = ND_LEN + 8;
    let mut out = Vec::with_capacity(h + IPV6_LEN + na_len);
    out.extend_from_slice(&eth.src);
    out.extend_from_slice(&answer);
    out.extend_from_slice(&frame[12..h]);
    // IPv6: version, traffic class and flow label as the request had them.
    out.extend_from_slice(&ip6[0..4]);
    out.extend_from_slice(&(na_len as u16).to_be_bytes());
    out.push(IPPROTO_ICMPV6);
    out.push(255);
    out.extend_from_slice(&target.octets());
    out.extend_from_slice(&src.octets());
    let icmp_at = out.len();
    out.extend_from_slice(&[ICMPV6_NEIGHBOR_ADVERT, 0, 0, 0]);
    out.extend_from_slice(&[NA_FLAGS_SOLICITED_OVERRIDE, 0, 0, 0]);
    out.extend_from_slice(&target.octets());
    out.extend_from_slice(&[ND_OPT_TARGET_LINKADDR, 1]);
    out.extend_from_slice(&answer);
    let sum = icmpv6_checksum(&target, &src, &out[icmp_at..]);
    out[icmp_at + 2..icmp_at + 4].copy_from_slice(&sum.to_be_bytes());
    Ok(out)
}

/// The ICMPv6 checksum of `msg` (its checksum field zero) between `src`
/// and `dst`: the ones' complement of the ones' complement sum over the
/// pseudo-header (addresses, upper-layer length, next header) and the
/// message (RFC 8200 §8.1).
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let mut addrs = [0u8; 32];
    addrs[..16].copy_from_slice(&src.octets());
    addrs[16..].copy_from_slice(&dst.octets());
    let pseudo = csum::pseudo_sum(&addrs, IPPROTO_ICMPV6, msg.len());
    !csum::fold(csum::ones_sum(msg, pseudo))
}

/// The BOOTP message of `frame`, whose Ethernet header (`h` bytes) says
/// IPv4: version 4, a header of at least 20 bytes and a total length that
/// fit in the frame, protocol UDP, not a fragment, UDP ports `ports`
/// (else `wrong_ports`), and room for the fixed part of a BOOTP message.
fn bootp(
    frame: &[u8],
    h: usize,
    ports: (u16, u16),
    wrong_ports: fn(u16, u16) -> ProxyError,
) -> Result<&[u8], ProxyError> {
    need(frame, h + 20, "IPv4 header")?;
    let ip = &frame[h..];
    let version = ip[0] >> 4;
    if version != 4 {
        return Err(ProxyError::IpVersion {
            expected: 4,
            found: version,
        });
    }
    if ip[9] != IPPROTO_UDP {
        return Err(ProxyError::Protocol(ip[9]));
    }
    let ihl = (ip[0] & 0x0f) as usize * 4;
    if ihl < 20 {
        return Err(ProxyError::Ipv4HeaderLength(ihl));
    }
    let total = be16(ip, 2) as usize;
    if total > ip.len() || total < ihl {
        return Err(ProxyError::PayloadLength {
            claimed: total,
            available: ip.len(),
        });
    }
    // More-fragments set, or a non-zero offset.
    if be16(ip, 6) & 0x3fff != 0 {
        return Err(ProxyError::Fragment);
    }
    let udp = &ip[ihl..total];
    if udp.len() < 8 {
        return Err(ProxyError::Truncated {
            what: "UDP header",
            need: h + ihl + 8,
            have: h + total,
        });
    }
    let (sport, dport) = (be16(udp, 0), be16(udp, 2));
    if (sport, dport) != ports {
        return Err(wrong_ports(sport, dport));
    }
    let udp_len = be16(udp, 4) as usize;
    if udp_len > udp.len() || udp_len < 8 + BOOTP_FIXED_LEN {
        return Err(ProxyError::Truncated {
            what: "BOOTP message",
            need: h + ihl + 8 + BOOTP_FIXED_LEN,
            have: h + ihl + udp_len.min(udp.len()),
        });
    }
    Ok(&udp[8..udp_len])
}

/// Redirects a client's broadcast DHCP request to its server.
///
/// `frame` must be IPv4 to `ff:ff:ff:ff:ff:ff` with version 4, a header of
/// at least 20 bytes and a total length that fit in the frame, protocol
/// UDP, not a fragment, ports 68 to 67, and room for the fixed part of a
/// BOOTP message (236 bytes). `resolve` is asked, with the client's
/// Ethernet source, for the MAC of its DHCP server; the result is the same
/// frame with the Ethernet destination rewritten to it, to be sent down
/// the transmit path again so that it reaches the server as unicast. The
/// IP and UDP headers are not touched, so their checksums stay valid.
pub fn proxy_dhcp(
    frame: &[u8],
    resolve: impl FnOnce([u8; 6]) -> Option<[u8; 6]>,
) -> Result<Vec<u8>, ProxyError> {
    let eth = ethernet(frame, ETHERTYPE_IPV4)?;
    if !eth.is_broadcast() {
        return Err(ProxyError::Destination {
            expected: "the broadcast address",
            found: eth.dst,
        });
    }
    bootp(
        frame,
        eth.hdr_len as usize,
        (DHCP_CLIENT_PORT, DHCP_SERVER_PORT),
        |src, dst| ProxyError::UdpPorts { src, dst },
    )?;
    let server = resolve(eth.src).ok_or(ProxyError::NoDhcpServer(eth.src))?;
    let mut out = frame.to_vec();
    out[0..6].copy_from_slice(&server);
    Ok(out)
}

/// A DHCP server's reply to a client, as [`dhcp_reply`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpReply {
    /// The DHCP message type (option 53): [`DHCPOFFER`], [`DHCPACK`],
    /// [`DHCPNAK`], ...
    pub message_type: u8,
    /// `chaddr`: the client's MAC.
    pub client: [u8; 6],
    /// `yiaddr`: the address the server gives the client (unspecified in
    /// a refusal, and in the answer to a client that has its address).
    pub your_ip: Ipv4Addr,
    /// `giaddr`: the relay agent the reply goes through, unspecified when
    /// the server is on the client's link.
    pub relay: Ipv4Addr,
}

/// Reads a DHCP server's reply to a client.
///
/// `frame` must be IPv4 to any Ethernet destination (a server answers
/// broadcast or unicast) with the checks of [`proxy_dhcp`], UDP ports 67
/// to 68, a BOOTP reply (op 2) about an Ethernet client (hardware type 1,
/// address length 6), DHCP's magic cookie, and a message type option;
/// options are read with every length checked, in the `file` and `sname`
/// fields too when the option overload option says so.
pub fn dhcp_reply(frame: &[u8]) -> Result<DhcpReply, ProxyError> {
    let eth = ethernet(frame, ETHERTYPE_IPV4)?;
    let msg = bootp(
        frame,
        eth.hdr_len as usize,
        (DHCP_SERVER_PORT, DHCP_CLIENT_PORT),
        |src, dst| ProxyError::DhcpReplyPorts { src, dst },
    )?;
    let (op, htype, hlen) = (msg[0], msg[1], msg[2]);
    if (op, htype, hlen) != (BOOTREPLY, 1, 6) {
        return Err(ProxyError::BootpFormat { op, htype, hlen });
    }
    Ok(DhcpReply {
        message_type: dhcp_message_type(msg)?,
        client: array(msg, 28),
        your_ip: Ipv4Addr::from(array::<4>(msg, 16)),
        relay: Ipv4Addr::from(array::<4>(msg, 24)),
    })
}

/// The DHCP message type of the BOOTP message `msg` (at least its fixed
/// part long).
fn dhcp_message_type(msg: &[u8]) -> Result<u8, ProxyError> {
    const OPTIONS: usize = BOOTP_FIXED_LEN + 4;
    if msg.len() < OPTIONS || msg[BOOTP_FIXED_LEN..OPTIONS] != DHCP_MAGIC {
        return Err(ProxyError::NotDhcp);
    }
    // (field, its offset in the message): options, then file and sname
    // when overloaded (RFC 2131 §4.1 gives this order).
    let mut fields = [(&msg[OPTIONS..], OPTIONS), (&[][..], 0), (&[][..], 0)];
    if let Some(v) = dhcp_option(&msg[OPTIONS..], OPTIONS, DHCP_OPT_OVERLOAD)? {
        let overload = v.1.first().copied().unwrap_or(0);
        if overload & 1 != 0 {
            fields[1] = (&msg[108..BOOTP_FIXED_LEN], 108);
        }
        if overload & 2 != 0 {
            fields[2] = (&msg[44..108], 44);
        }
    }
    for (field, at) in fields {
        if let Some((offset, v)) = dhcp_option(field, at, DHCP_OPT_MESSAGE_TYPE)? {
            return match v {
                [t] => Ok(*t),
                _ => Err(ProxyError::BadDhcpOption { offset }),
            };
        }
    }
    Err(ProxyError::NotDhcp)
}

/// The first option `code` in `field` (at offset `at` of the message):
/// its offset and value. The field ends at its end or an end option.
fn dhcp_option(field: &[u8], at: usize, code: u8) -> Result<Option<(usize, &[u8])>, ProxyError> {
    let mut i = 0;
    while i < field.len() {
        match field[i] {
            DHCP_OPT_PAD => i += 1,
            DHCP_OPT_END => break,
            c => {
                let offset = at + i;
                let len = *field
                    .get(i + 1)
                    .ok_or(ProxyError::BadDhcpOption { offset })?
                    as usize;
                let end = i + 2 + len;
                if end > field.len() {
                    return Err(ProxyError::BadDhcpOption { offset });
                }
                if c == code {
                    return Ok(Some((offset, &field[i + 2..end])));
                }
                i = end;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_A: [u8; 6] = [0x02, 0, 0x5e, 0x10, 0, 0x01];
    const HOST_B: [u8; 6] = [0x02, 0, 0x5e, 0x10, 0, 0x02];
    const BCAST: [u8; 6] = [0xff; 6];

    fn eth(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        if let Some(v) = vlan {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn arp_request(vlan: Option<u16>, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = eth(BCAST, HOST_A, vlan, ETHERTYPE_ARP);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&HOST_A);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }

    const SPA: [u8; 4] = [192, 0, 2, 11];
    const TPA: [u8; 4] = [192, 0, 2, 12];

    fn resolve_b(ip: Ipv4Addr) -> Option<[u8; 6]> {
        (ip == Ipv4Addr::from(TPA)).then_some(HOST_B)
    }

    #[test]
    fn arp_request_gets_the_reply_the_owner_would_send() {
        for vlan in [None, Some(0x0123)] {
            let req = arp_request(vlan, SPA, TPA);
            let reply = proxy_arp(&req, resolve_b).unwrap();
            let h = if vlan.is_some() { 18 } else { 14 };
            assert_eq!(reply.len(), req.len());
            assert_eq!(&reply[0..6], &HOST_A, "to the requester");
            assert_eq!(&reply[6..12], &HOST_B, "from the owner");
            assert_eq!(&reply[12..h], &req[12..h], "VLAN tag and ethertype kept");
            let a = &reply[h..];
            assert_eq!(&a[0..6], &[0, 1, 8, 0, 6, 4]);
            assert_eq!(&a[6..8], &[0, 2], "operation reply");
            assert_eq!(&a[8..14], &HOST_B);
            assert_eq!(&a[14..18], &TPA);
            assert_eq!(&a[18..24], &HOST_A);
            assert_eq!(&a[24..28], &SPA);
        }
    }

    #[test]
    fn arp_padding_is_kept() {
        let mut req = arp_request(None, SPA, TPA);
        req.extend_from_slice(&[0; 18]);
        let reply = proxy_arp(&req, resolve_b).unwrap();
        assert_eq!(reply.len(), 60);
    }

    #[test]
    fn arp_refusals() {
        let good = arp_request(None, SPA, TPA);
        let short = &good[..good.len() - 1];
        assert_eq!(
            proxy_arp(short, resolve_b),
            Err(ProxyError::Truncated {
                what: "ARP message",
                need: 42,
                have: 41
            })
        );
        assert!(matches!(
            proxy_arp(&good[..10], resolve_b),
            Err(ProxyError::Truncated { need: 14, .. })
        ));
        let mut ipv4 = good.clone();
        ipv4[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let e = proxy_arp(&ipv4, resolve_b).unwrap_err();
        assert!(e.is_other_traffic(), "{e}");
        // Each field of the fixed header in turn.
        for (at, value) in [(14, 6u8), (16, 0x86), (18, 8), (19, 16)] {
            let mut f = good.clone();
            f[at] = value;
            let e = proxy_arp(&f, resolve_b).unwrap_err();
            assert!(matches!(e, ProxyError::ArpFormat { .. }), "{at}: {e}");
            assert!(!e.is_other_traffic());
        }
        let mut reply = good.clone();
        reply[21] = 2;
        assert_eq!(
            proxy_arp(&reply, resolve_b),
            Err(ProxyError::ArpNotRequest { op: 2 })
        );
        let gratuitous = arp_request(None, TPA, TPA);
        assert_eq!(
            proxy_arp(&gratuitous, resolve_b),
            Err(ProxyError::GratuitousArp(Ipv4Addr::from(TPA)))
        );
        let unknown = arp_request(None, SPA, [192, 0, 2, 99]);
        let e = proxy_arp(&unknown, resolve_b).unwrap_err();
        assert_eq!(e.to_string(), "no answer for 192.0.2.99");
        assert!(!e.is_other_traffic());
    }

    const NS_SRC: &str = "2001:db8::11";
    const NS_TARGET: &str = "2001:db8::12";

    /// A Neighbour Solicitation for `NS_TARGET` from `NS_SRC`, with
    /// `options` after the fixed part.
    fn ns(vlan: Option<u16>, options: &[u8]) -> Vec<u8> {
        let target: Ipv6Addr = NS_TARGET.parse().unwrap();
        let t = target.octets();
        let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | t[13] as u16, 0x0012);
        let dst_mac = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
        let mut f = eth(dst_mac, HOST_A, vlan, ETHERTYPE_IPV6);
        let payload = (ND_LEN + options.len()) as u16;
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&payload.to_be_bytes());
        f.extend_from_slice(&[IPPROTO_ICMPV6, 255]);
        f.extend_from_slice(&NS_SRC.parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&group.octets());
        f.extend_from_slice(&[ICMPV6_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&t);
        f.extend_from_slice(options);
        f
    }

    fn slla() -> Vec<u8> {
        let mut o = vec![ND_OPT_SOURCE_LINKADDR, 1];
        o.extend_from_slice(&HOST_A);
        o
    }

    fn resolve_v6(ip: Ipv6Addr) -> Option<[u8; 6]> {
        (ip == NS_TARGET.parse::<Ipv6Addr>().unwrap()).then_some(HOST_B)
    }

    #[test]
    fn ns_gets_the_advertisement_the_owner_would_send() {
        for vlan in [None, Some(7)] {
            let mut opts = vec![14, 1, 1, 2, 3, 4, 5, 6]; // a nonce option first
            opts.extend_from_slice(&slla());
            let req = ns(vlan, &opts);
            let na = proxy_ndp(&req, resolve_v6).unwrap();
            let h = if vlan.is_some() { 18 } else { 14 };
            assert_eq!(na.len(), h + 40 + 32);
            assert_eq!(&na[0..6], &HOST_A);
            assert_eq!(&na[6..12], &HOST_B);
            assert_eq!(&na[12..h], &req[12..h]);
            let ip6 = &na[h..h + 40];
            assert_eq!(&ip6[0..4], &[0x60, 0, 0, 0]);
            assert_eq!(&ip6[4..6], &[0, 32], "payload length");
            assert_eq!(ip6[6], 58);
            assert_eq!(ip6[7], 255, "hop limit");
            let target: Ipv6Addr = NS_TARGET.parse().unwrap();
            let src: Ipv6Addr = NS_SRC.parse().unwrap();
            assert_eq!(&ip6[8..24], &target.octets(), "from the target");
            assert_eq!(&ip6[24..40], &src.octets(), "to the requester");
            let icmp = &na[h + 40..];
            assert_eq!(&icmp[0..2], &[136, 0]);
            assert_eq!(&icmp[4..8], &[0x60, 0, 0, 0], "Solicited | Override");
            assert_eq!(&icmp[8..24], &target.octets());
            assert_eq!(&icmp[24..26], &[2, 1], "target link-layer option");
            assert_eq!(&icmp[26..32], &HOST_B);
            // Checksum: the whole pseudo-header plus message, with the
            // checksum in place, must sum to zero.
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&target.octets());
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&32u32.to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 58]);
            pseudo.extend_from_slice(icmp);
            assert_eq!(crate::csum::reference(&pseudo, 0), 0xffff);
            assert_ne!(&icmp[2..4], &[0, 0]);
        }
    }

    #[test]
    fn checksum_of_a_known_message() {
        // An odd-length message exercises the trailing byte.
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::2".parse().unwrap();
        let msg = [0x80, 0, 0, 0, 0x12, 0x34, 0, 1, 0xab];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&dst.octets());
        pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(&msg);
        assert_eq!(
            icmpv6_checksum(&src, &dst, &msg),
            !crate::csum::reference(&pseudo, 0)
        );
    }

    fn ndp_err(f: &[u8]) -> ProxyError {
        proxy_ndp(f, resolve_v6).unwrap_err()
    }

    #[test]
    fn ns_refusals() {
        let good = ns(None, &slla());
        assert!(proxy_ndp(&good, resolve_v6).is_ok());

        let mut unicast = good.clone();
        unicast[0..6].copy_from_slice(&HOST_B);
        assert!(ndp_err(&unicast).is_other_traffic());
        let mut v4 = good.clone();
        v4[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        assert!(ndp_err(&v4).is_other_traffic());
        assert!(matches!(
            ndp_err(&good[..14 + 39]),
            ProxyError::Truncated {
                what: "IPv6 header",
                ..
            }
        ));
        let mut version = good.clone();
        version[14] = 0x40;
        assert_eq!(
            ndp_err(&version),
            ProxyError::IpVersion {
                expected: 6,
                found: 4
            }
        );
        // A hop-by-hop header (as MLD carries) is not Neighbour Discovery.
        let mut hbh = good.clone();
        hbh[14 + 6] = 0;
        assert_eq!(ndp_err(&hbh), ProxyError::NextHeader(0));
        assert!(ndp_err(&hbh).is_other_traffic());
        let mut long = good.clone();
        long[14 + 5] += 1;
        assert_eq!(
            ndp_err(&long),
            ProxyError::PayloadLength {
                claimed: 33,
                available: 32
            }
        );
        let mut echo = good.clone();
        echo[54] = 128;
        assert!(ndp_err(&echo).is_other_traffic());
        // Other Neighbour Discovery is consumed, not forwarded.
        for t in [133, 134, 136, 137] {
            let mut other = good.clone();
            other[54] = t;
            let e = ndp_err(&other);
            assert_eq!(e, ProxyError::NotSolicitation { icmp_type: t });
            assert!(!e.is_other_traffic());
        }
        // Row 25: a wrong code alone is enough to refuse.
        let mut code = good.clone();
        code[55] = 1;
        assert_eq!(ndp_err(&code), ProxyError::IcmpCode(1));
        let mut hops = good.clone();
        hops[14 + 7] = 64;
        assert_eq!(ndp_err(&hops), ProxyError::HopLimit(64));
        let mut all_nodes = good.clone();
        all_nodes[14 + 24..14 + 40]
            .copy_from_slice(&"ff02::1".parse::<Ipv6Addr>().unwrap().octets());
        assert!(matches!(
            ndp_err(&all_nodes),
            ProxyError::NotSolicitedNode(_)
        ));
        let mut dad = ns(None, &[]);
        dad[14 + 8..14 + 24].copy_from_slice(&[0; 16]);
        assert_eq!(ndp_err(&dad), ProxyError::UnspecifiedSource);
        for bad in ["ff02::1", "::ffff:192.0.2.1", "::1"] {
            let mut f = good.clone();
            f[62..78].copy_from_slice(&bad.parse::<Ipv6Addr>().unwrap().octets());
            assert!(matches!(ndp_err(&f), ProxyError::BadTarget(_)), "{bad}");
        }
        assert_eq!(ndp_err(&ns(None, &[])), ProxyError::NoSourceLinkLayer);
        let mut nonce_only = vec![14, 1, 1, 2, 3, 4, 5, 6];
        assert_eq!(
            ndp_err(&ns(None, &nonce_only)),
            ProxyError::NoSourceLinkLayer
        );
        // Row 26: a zero length, or one past the end, refuses.
        nonce_only[1] = 0;
        assert_eq!(
            ndp_err(&ns(None, &nonce_only)),
            ProxyError::BadOption { offset: 24, len: 0 }
        );
        let mut overlong = slla();
        overlong[1] = 2;
        assert_eq!(
            ndp_err(&ns(None, &overlong)),
            ProxyError::BadOption {
                offset: 24,
                len: 16
            }
        );
        let mut dangling = slla();
        dangling.push(1);
        assert_eq!(
            ndp_err(&ns(None, &dangling)),
            ProxyError::BadOption { offset: 32, len: 0 }
        );
        let mut short = ns(None, &[]);
        short.truncate(14 + 40 + 20);
        short[14 + 5] = 20;
        assert!(matches!(ndp_err(&short), ProxyError::PayloadLength { .. }));
        let mut unknown = good.clone();
        unknown[62 + 15] = 0x99;
        assert!(matches!(ndp_err(&unknown), ProxyError::Unresolved(_)));
    }

    /// A DHCP request from `HOST_A`, its BOOTP part `bootp` bytes long.
    fn dhcp(vlan: Option<u16>, bootp: usize, sport: u16, dport: u16) -> Vec<u8> {
        let mut f = eth(BCAST, HOST_A, vlan, ETHERTYPE_IPV4);
        let total = (20 + 8 + bootp) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0]);
        f.extend_from_slice(&[0, 0, 0, 0, 255, 255, 255, 255]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&((8 + bootp) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        let mut msg = vec![0u8; bootp];
        msg[0] = 1;
        f.extend_from_slice(&msg);
        f
    }

    fn server_of(client: [u8; 6]) -> Option<[u8; 6]> {
        (client == HOST_A).then_some(HOST_B)
    }

    #[test]
    fn dhcp_request_is_readdressed_to_the_server() {
        for vlan in [None, Some(3)] {
            let req = dhcp(vlan, 300, 68, 67);
            let out = proxy_dhcp(&req, server_of).unwrap();
            assert_eq!(&out[0..6], &HOST_B);
            assert_eq!(&out[6..], &req[6..], "everything else untouched");
        }
        assert!(proxy_dhcp(&dhcp(None, BOOTP_FIXED_LEN, 68, 67), server_of).is_ok());
    }

    fn dhcp_err(f: &[u8]) -> ProxyError {
        proxy_dhcp(f, server_of).unwrap_err()
    }

    #[test]
    fn dhcp_refusals() {
        let good = dhcp(None, 300, 68, 67);
        let mut unicast = good.clone();
        unicast[0..6].copy_from_slice(&HOST_B);
        assert!(dhcp_err(&unicast).is_other_traffic());
        let mut v6 = good.clone();
        v6[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        assert!(dhcp_err(&v6).is_other_traffic());
        assert!(matches!(
            dhcp_err(&good[..33]),
            ProxyError::Truncated {
                what: "IPv4 header",
                ..
            }
        ));
        // Row 25: a wrong version alone, or a wrong protocol alone, refuses.
        let mut version = good.clone();
        version[14] = 0x65;
        assert_eq!(
            dhcp_err(&version),
            ProxyError::IpVersion {
                expected: 4,
                found: 6
            }
        );
        assert!(!dhcp_err(&version).is_other_traffic());
        let mut tcp = good.clone();
        tcp[14 + 9] = 6;
        assert_eq!(dhcp_err(&tcp), ProxyError::Protocol(6));
        assert!(dhcp_err(&tcp).is_other_traffic());
        let mut ihl = good.clone();
        ihl[14] = 0x44;
        assert_eq!(dhcp_err(&ihl), ProxyError::Ipv4HeaderLength(16));
        let mut total = good.clone();
        total[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert!(matches!(
            dhcp_err(&total),
            ProxyError::PayloadLength { claimed: 1000, .. }
        ));
        let mut frag = good.clone();
        frag[14 + 6] = 0x20;
        assert_eq!(dhcp_err(&frag), ProxyError::Fragment);
        for (s, d) in [(67, 68), (68, 53), (1000, 67)] {
            let e = dhcp_err(&dhcp(None, 300, s, d));
            assert_eq!(e, ProxyError::UdpPorts { src: s, dst: d });
            assert!(e.is_other_traffic());
        }
        let e = dhcp_err(&dhcp(None, BOOTP_FIXED_LEN - 1, 68, 67));
        assert!(
            matches!(
                e,
                ProxyError::Truncated {
                    what: "BOOTP message",
                    ..
                }
            ),
            "{e}"
        );
        let mut udp_len = good.clone();
        udp_len[14 + 24..14 + 26].copy_from_slice(&2000u16.to_be_bytes());
        assert!(matches!(dhcp_err(&udp_len), ProxyError::Truncated { .. }));
        let mut other_client = good.clone();
        other_client[6..12].copy_from_slice(&HOST_B);
        let e = dhcp_err(&other_client);
        assert_eq!(e, ProxyError::NoDhcpServer(HOST_B));
        assert!(e.is_other_traffic());
        assert_eq!(
            e.to_string(),
            "no DHCP server to redirect 02:00:5e:10:00:02 to"
        );
    }

    const LEASED: [u8; 4] = [192, 0, 2, 200];

    /// A server's (`HOST_B`) reply to `HOST_A` with DHCP `options` after
    /// the magic cookie, unicast to the client.
    fn dhcp_server_reply(vlan: Option<u16>, options: &[u8]) -> Vec<u8> {
        let mut msg = vec![0u8; BOOTP_FIXED_LEN];
        msg[..4].copy_from_slice(&[BOOTREPLY, 1, 6, 0]);
        msg[16..20].copy_from_slice(&LEASED);
        msg[28..34].copy_from_slice(&HOST_A);
        msg.extend_from_slice(&DHCP_MAGIC);
        msg.extend_from_slice(options);
        let mut f = eth(HOST_A, HOST_B, vlan, ETHERTYPE_IPV4);
        let total = (20 + 8 + msg.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0]);
        f.extend_from_slice(&[192, 0, 2, 1]);
        f.extend_from_slice(&LEASED);
        f.extend_from_slice(&DHCP_SERVER_PORT.to_be_bytes());
        f.extend_from_slice(&DHCP_CLIENT_PORT.to_be_bytes());
        f.extend_from_slice(&((8 + msg.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&msg);
        f
    }

    /// Options of an ACK: message type, a server identifier, end.
    const ACK_OPTIONS: [u8; 10] = [53, 1, DHCPACK, 54, 4, 192, 0, 2, 1, 255];

    #[test]
    fn a_server_s_reply_gives_the_client_and_its_address() {
        for vlan in [None, Some(7)] {
            let ack = dhcp_server_reply(vlan, &ACK_OPTIONS);
            assert_eq!(
                dhcp_reply(&ack),
                Ok(DhcpReply {
                    message_type: DHCPACK,
                    client: HOST_A,
                    your_ip: Ipv4Addr::from(LEASED),
                    relay: Ipv4Addr::UNSPECIFIED,
                })
            );
        }
        // Broadcast too, with pads before the type.
        let mut offer = dhcp_server_reply(None, &[0, 0, 53, 1, DHCPOFFER, 255]);
        offer[0..6].copy_from_slice(&BCAST);
        assert_eq!(dhcp_reply(&offer).unwrap().message_type, DHCPOFFER);
        // The type in `file`, which the overload option announces.
        let mut overloaded = dhcp_server_reply(None, &[52, 1, 1, 255]);
        let file = 14 + 20 + 8 + 108;
        overloaded[file..file + 4].copy_from_slice(&[53, 1, DHCPNAK, 255]);
        assert_eq!(dhcp_reply(&overloaded).unwrap().message_type, DHCPNAK);
        // Without the overload option, `file` is not read.
        let mut not_overloaded = dhcp_server_reply(None, &[255]);
        not_overloaded[file..file + 4].copy_from_slice(&[53, 1, DHCPNAK, 255]);
        assert_eq!(dhcp_reply(&not_overloaded), Err(ProxyError::NotDhcp));
    }

    #[test]
    fn dhcp_reply_refusals() {
        let request = dhcp(None, 300, 68, 67);
        let e = dhcp_reply(&request).unwrap_err();
        assert_eq!(e, ProxyError::DhcpReplyPorts { src: 68, dst: 67 });
        assert!(e.is_other_traffic());
        assert_eq!(
            e.to_string(),
            "UDP ports 68 to 67, not a DHCP server's reply (67 to 68)"
        );
        let mut op = dhcp_server_reply(None, &ACK_OPTIONS);
        op[42] = 1;
        assert_eq!(
            dhcp_reply(&op),
            Err(ProxyError::BootpFormat {
                op: 1,
                htype: 1,
                hlen: 6
            })
        );
        let mut cookie = dhcp_server_reply(None, &ACK_OPTIONS);
        cookie[42 + BOOTP_FIXED_LEN] = 0;
        assert_eq!(dhcp_reply(&cookie), Err(ProxyError::NotDhcp));
        // BOOTP without options, and DHCP without a message type.
        let bootp_only = &cookie[..42 + BOOTP_FIXED_LEN];
        let mut bootp_only = bootp_only.to_vec();
        let (total, udp) = (
            (20 + 8 + BOOTP_FIXED_LEN) as u16,
            (8 + BOOTP_FIXED_LEN) as u16,
        );
        bootp_only[16..18].copy_from_slice(&total.to_be_bytes());
        bootp_only[38..40].copy_from_slice(&udp.to_be_bytes());
        assert_eq!(dhcp_reply(&bootp_only), Err(ProxyError::NotDhcp));
        let no_type = dhcp_server_reply(None, &[54, 4, 192, 0, 2, 1, 255]);
        assert_eq!(dhcp_reply(&no_type), Err(ProxyError::NotDhcp));
        // An option running past the message, and a type of two bytes.
        let runs_over = dhcp_server_reply(None, &[54, 9, 192, 0, 2, 1]);
        let e = dhcp_reply(&runs_over).unwrap_err();
        assert_eq!(e, ProxyError::BadDhcpOption { offset: 240 });
        assert!(!e.is_other_traffic());
        let no_len = dhcp_server_reply(None, &[0, 54]);
        assert_eq!(
            dhcp_reply(&no_len),
            Err(ProxyError::BadDhcpOption { offset: 241 })
        );
        let long_type = dhcp_server_reply(None, &[53, 2, DHCPACK, 0, 255]);
        assert_eq!(
            dhcp_reply(&long_type),
            Err(ProxyError::BadDhcpOption { offset: 240 })
        );
        // The IPv4 and UDP checks are those of proxy_dhcp.
        let mut frag = dhcp_server_reply(None, &ACK_OPTIONS);
        frag[14 + 6] = 0x20;
        assert_eq!(dhcp_reply(&frag), Err(ProxyError::Fragment));
    }

    #[test]
    fn every_prefix_is_refused_and_no_input_panics() {
        let arp = arp_request(Some(1), SPA, TPA);
        let ns = ns(Some(1), &slla());
        let dhcp = dhcp(Some(1), 240, 68, 67);
        let ack = dhcp_server_reply(Some(1), &ACK_OPTIONS);
        assert!(dhcp_reply(&ack).is_ok());
        assert!(proxy_arp(&arp, resolve_b).is_ok());
        assert!(proxy_ndp(&ns, resolve_v6).is_ok());
        assert!(proxy_dhcp(&dhcp, server_of).is_ok());
        for n in 0..arp.len() {
            assert!(proxy_arp(&arp[..n], resolve_b).is_err(), "{n}");
        }
        for n in 0..ns.len() {
            assert!(proxy_ndp(&ns[..n], resolve_v6).is_err(), "{n}");
        }
        for n in 0..dhcp.len() {
            assert!(proxy_dhcp(&dhcp[..n], server_of).is_err(), "{n}");
        }
        for n in 0..ack.len() {
            assert!(dhcp_reply(&ack[..n]).is_err(), "{n}");
        }
        // Any single corrupted byte is answered or refused, never a panic.
        for f in [&arp, &ns, &dhcp, &ack] {
            for i in 0..f.len() {
                let mut g = f.clone();
                g[i] ^= 0xff;
                let _ = proxy_arp(&g, resolve_b);
                let _ = proxy_ndp(&g, resolve_v6);
                let _ = proxy_dhcp(&g, server_of);
                let _ = dhcp_reply(&g);
            }
        }
    }
}
