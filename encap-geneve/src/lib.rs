//! Geneve encapsulation (RFC 8926) as an overlayd plugin.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Variable-Length Options                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The base header is 8 bytes; `Opt Len` counts the options that follow in
//! 4-byte words (at most 63, so 252 bytes). Each option is a 4-byte header
//! (class u16, type u8 whose top bit marks it critical, 3 reserved bits and a
//! 5-bit data length in words) and its data. This plugin carries Ethernet
//! frames only (protocol type 0x6558, Transparent Ethernet Bridging).
//!
//! **Sending.** The device property `geneve/options` lists options to put
//! in every packet, `class:type:hexdata[,class:type:hexdata...]`. They are
//! validated and encoded once, when the property is set; `encap` copies the
//! encoded bytes behind the base header and sets the C bit when one of them
//! is critical.
//!
//! **Receiving.** `decap` drops (returns an error for) a packet whose
//! version is not 0, that is shorter than its header says, whose options run
//! past the option length, whose protocol type is not 0x6558, or that
//! carries a critical option. This plugin understands no option, so every
//! critical option is unknown to it and RFC 8926 requires the drop; as the
//! plugin walks every option, it drops one even when the sender left the C
//! bit clear. Non-critical options are skipped. A valid
//! packet with the O bit (OAM) is reported with [`DECAP_F_OAM`] so the
//! daemon counts it and does not deliver it to the device.

use overlay_plugin_abi::{
    dest,
    kit::{Encap, EncapInstance},
    prop::{check_unicast_endpoint, perm, PropStore, PropValue},
    DecapInfo, EncapInfo, PluginError, PropInfo, SocketSpec, DECAP_F_OAM, ENCAP_F_VLAN_TAG,
};
use std::sync::RwLock;

/// Length of the base header, without options.
pub const BASE_LEN: usize = 8;
/// Most bytes of options one header carries (the 6-bit option length, in
/// 4-byte words).
pub const MAX_OPTIONS_LEN: usize = 63 * 4;
/// Most bytes of data one option carries (its 5-bit length, in words).
pub const MAX_OPTION_DATA_LEN: usize = 31 * 4;
/// Longest header this plugin writes or accepts.
pub const MAX_HEADER_LEN: usize = BASE_LEN + MAX_OPTIONS_LEN;
/// The only version RFC 8926 defines.
pub const VERSION: u8 = 0;
/// The O bit: an OAM (control) packet.
pub const FLAG_O: u8 = 0x80;
/// The C bit: at least one option is critical.
pub const FLAG_C: u8 = 0x40;
/// Protocol type of an Ethernet payload (Transparent Ethernet Bridging).
pub const PROTO_TEB: u16 = 0x6558;
/// Option type bit marking an option the receiver must understand.
pub const OPT_CRITICAL: u8 = 0x80;
/// The IANA-assigned Geneve port.
pub const DEFAULT_PORT: u16 = 6081;

const LISTEN_IP: &str = "geneve/listen_ip";
const LISTEN_PORT: &str = "geneve/listen_port";
const OPTIONS: &str = "geneve/options";

mod field {
    use std::ops::Range;
    /// Version (top 2 bits) and option length in words (low 6 bits).
    pub const VER_OPTLEN: usize = 0;
    /// O and C bits, then reserved bits.
    pub const FLAGS: usize = 1;
    pub const PROTO: Range<usize> = 2..4;
    pub const VNI: Range<usize> = 4..7;
    /// Option header: class, type, reserved bits and length in words.
    pub const OPT_CLASS: Range<usize> = 0..2;
    pub const OPT_TYPE: usize = 2;
    pub const OPT_LEN: usize = 3;
    pub const OPT_HEADER_LEN: usize = 4;
}

/// A view of a Geneve header over a byte buffer. Once [`Header::new_checked`]
/// accepts a buffer, it holds the base header and every option byte the
/// option length announces, so no accessor can panic.
pub struct Header<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps `buf` if it holds the base header and the options it announces.
    pub fn new_checked(buf: T) -> Result<Self, PluginError> {
        let len = buf.as_ref().len();
        if len < BASE_LEN {
            return Err(PluginError::invalid(format!(
                "packet of {len} bytes is shorter than the {BASE_LEN}-byte Geneve header"
            )));
        }
        let hdr = Header(buf);
        if hdr.header_len() > len {
            return Err(PluginError::invalid(format!(
                "Geneve option length {} bytes overruns the {len}-byte packet",
                hdr.options_len()
            )));
        }
        Ok(hdr)
    }

    /// The version field.
    pub fn version(&self) -> u8 {
        self.0.as_ref()[field::VER_OPTLEN] >> 6
    }

    /// Bytes of options after the base header.
    pub fn options_len(&self) -> usize {
        ((self.0.as_ref()[field::VER_OPTLEN] & 0x3f) as usize) * 4
    }

    /// Base header plus options: where the inner frame starts.
    pub fn header_len(&self) -> usize {
        BASE_LEN + self.options_len()
    }

    /// Whether the O (OAM) bit is set.
    pub fn oam(&self) -> bool {
        self.0.as_ref()[field::FLAGS] & FLAG_O != 0
    }

    /// Whether the C (critical options present) bit is set.
    pub fn critical(&self) -> bool {
        self.0.as_ref()[field::FLAGS] & FLAG_C != 0
    }

    /// The protocol type of the payload.
    pub fn protocol(&self) -> u16 {
        let b = &self.0.as_ref()[field::PROTO];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The 24-bit VNI.
    pub fn vni(&self) -> u32 {
        let b = &self.0.as_ref()[field::VNI];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        &self.0.as_ref()[BASE_LEN..self.header_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Writes a version-0 Ethernet header for `vni` followed by the encoded
    /// `options` (a whole number of words, at most [`MAX_OPTIONS_LEN`]),
    /// with the C bit when `critical`. The buffer must hold
    /// `BASE_LEN + options.len()` bytes.
    pub fn emit(&mut self, vni: u32, options: &[u8], critical: bool) {
        debug_assert!(options.len().is_multiple_of(4) && options.len() <= MAX_OPTIONS_LEN);
        let b = self.0.as_mut();
        let v = vni.to_be_bytes();
        let p = PROTO_TEB.to_be_bytes();
        let flags = if critical { FLAG_C } else { 0 };
        let words = (options.len() / 4) as u8;
        b[..BASE_LEN].copy_from_slice(&[
            VERSION << 6 | words,
            flags,
            p[0],
            p[1],
            v[1],
            v[2],
            v[3],
            0,
        ]);
        b[BASE_LEN..BASE_LEN + options.len()].copy_from_slice(options);
    }
}

/// One option as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    /// Option class (who defines the type).
    pub class: u16,
    /// Option type; [`OPT_CRITICAL`] is its top bit.
    pub otype: u8,
    /// Option data, a whole number of 4-byte words.
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    /// Whether the receiver must understand the option or drop the packet.
    pub fn is_critical(&self) -> bool {
        self.otype & OPT_CRITICAL != 0
    }
}

/// Walks the options of a header; yields an error (and then stops) where an
/// option's header or data runs past the end of the option bytes.
pub struct Options<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// The options in `bytes` (the option area of a header).
pub fn options(bytes: &[u8]) -> Options<'_> {
    Options {
        rest: bytes,
        failed: false,
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<GeneveOption<'a>, PluginError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let r = self.rest;
        if r.len() < field::OPT_HEADER_LEN {
            self.failed = true;
            return Some(Err(PluginError::invalid(format!(
                "Geneve option header overruns the option area ({} bytes left)",
                r.len()
            ))));
        }
        let data_len = ((r[field::OPT_LEN] & 0x1f) as usize) * 4;
        let end = field::OPT_HEADER_LEN + data_len;
        if end > r.len() {
            self.failed = true;
            return Some(Err(PluginError::invalid(format!(
                "Geneve option of {data_len} data bytes overruns the option area ({} bytes left)",
                r.len() - field::OPT_HEADER_LEN
            ))));
        }
        let c = &r[field::OPT_CLASS];
        let opt = GeneveOption {
            class: u16::from_be_bytes([c[0], c[1]]),
            otype: r[field::OPT_TYPE],
            data: &r[field::OPT_HEADER_LEN..end],
        };
        self.rest = &r[end..];
        Some(Ok(opt))
    }
}

/// Options encoded once for sending: what `geneve/options` says, in wire
/// form, in a fixed buffer so that `encap` copies without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedOptions {
    bytes: [u8; MAX_OPTIONS_LEN],
    len: usize,
    critical: bool,
}

impl Default for EncodedOptions {
    fn default() -> Self {
        EncodedOptions {
            bytes: [0; MAX_OPTIONS_LEN],
            len: 0,
            critical: false,
        }
    }
}

impl EncodedOptions {
    /// Parses `class:type:hexdata[,class:type:hexdata...]` (class and type
    /// in decimal or `0x` hex, data as hex digits, a whole number of 4-byte
    /// words, at most 124 bytes; all options together at most 252 bytes).
    /// The empty string means no options. Errors name the offending item.
    pub fn parse(text: &str) -> Result<EncodedOptions, String> {
        let mut out = EncodedOptions::default();
        if text.is_empty() {
            return Ok(out);
        }
        for (i, item) in text.split(',').enumerate() {
            let n = i + 1;
            let bad = |why: String| format!("option {n} \"{item}\": {why}");
            let parts: Vec<&str> = item.split(':').collect();
            let [class, otype, hex] = parts[..] else {
                return Err(bad(
                    "expected class:type:hexdata, e.g. 0x0102:0x80:deadbeef".into(),
                ));
            };
            let class =
                parse_num(class, u16::MAX as u64).map_err(|e| bad(format!("class {e}")))? as u16;
            let otype =
                parse_num(otype, u8::MAX as u64).map_err(|e| bad(format!("type {e}")))? as u8;
            let data = parse_hex(hex).map_err(bad)?;
            if !data.len().is_multiple_of(4) {
                return Err(bad(format!(
                    "data is {} bytes; it must be a whole number of 4-byte words (pad with zeros)",
                    data.len()
                )));
            }
            if data.len() > MAX_OPTION_DATA_LEN {
                return Err(bad(format!(
                    "data is {} bytes; an option carries at most {MAX_OPTION_DATA_LEN}",
                    data.len()
                )));
            }
            let need = field::OPT_HEADER_LEN + data.len();
            if out.len + need > MAX_OPTIONS_LEN {
                return Err(bad(format!(
                    "options add up to {} bytes; a Geneve header carries at most {MAX_OPTIONS_LEN} (63 words)",
                    out.len + need
                )));
            }
            let o = &mut out.bytes[out.len..out.len + need];
            o[field::OPT_CLASS].copy_from_slice(&class.to_be_bytes());
            o[field::OPT_TYPE] = otype;
            o[field::OPT_LEN] = (data.len() / 4) as u8;
            o[field::OPT_HEADER_LEN..].copy_from_slice(&data);
            out.len += need;
            out.critical |= otype & OPT_CRITICAL != 0;
        }
        Ok(out)
    }

    /// The options in wire form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Whether one of them is critical (the header gets the C bit).
    pub fn critical(&self) -> bool {
        self.critical
    }
}

/// A number in decimal or `0x` hex, at most `max`.
fn parse_num(text: &str, max: u64) -> Result<u64, String> {
    let v = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|_| format!("\"{text}\" is not a number (decimal, or hex with 0x)"))?;
    if v > max {
        return Err(format!("{text} is larger than {max:#x}"));
    }
    Ok(v)
}

/// Hex digits (an optional `0x` first) as bytes.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "data \"{text}\" has an odd number of hex digits; write two per byte"
        ));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("data \"{text}\" is not hex digits"))
        })
        .collect()
}

/// The plugin object shared by every Geneve device.
pub struct Geneve;

impl Geneve {
    fn properties() -> Vec<PropInfo> {
        vec![
            PropInfo::ip(LISTEN_IP).perm(perm::RRW),
            PropInfo::uint(LISTEN_PORT)
                .perm(perm::RRW)
                .default_uint(DEFAULT_PORT as u64)
                .range(1, 65535),
            // The options only change what later packets carry, so they
            // may change while the device is active.
            PropInfo::string(OPTIONS)
                .perm(perm::RW | perm::RUNTIME)
                .default_str(""),
        ]
    }
}

impl Encap for Geneve {
    type Instance = GeneveDevice;

    fn info(&self) -> EncapInfo {
        EncapInfo {
            id_size: 3,
            flags: ENCAP_F_VLAN_TAG,
            dest: dest::IP | dest::PORT,
            max_header_len: MAX_HEADER_LEN as u32,
            properties: Self::properties().into(),
        }
    }

    fn new_instance(&self) -> Result<GeneveDevice, PluginError> {
        Ok(GeneveDevice {
            props: PropStore::new(Self::properties()),
            options: RwLock::new(EncodedOptions::default()),
        })
    }

    fn decap(&self, packet: &[u8]) -> Result<DecapInfo, PluginError> {
        let hdr = Header::new_checked(packet)?;
        if hdr.version() != VERSION {
            return Err(PluginError::invalid(format!(
                "Geneve version {} (only version 0 exists)",
                hdr.version()
            )));
        }
        if hdr.protocol() != PROTO_TEB {
            return Err(PluginError::invalid(format!(
                "Geneve protocol type {:#06x}, not Ethernet ({PROTO_TEB:#06x})",
                hdr.protocol()
            )));
        }
        for opt in options(hdr.options()) {
            let opt = opt?;
            if opt.is_critical() {
                return Err(PluginError::invalid(format!(
                    "unknown critical Geneve option class {:#06x} type {:#04x}",
                    opt.class, opt.otype
                )));
            }
        }
        Ok(DecapInfo {
            vnetid: hdr.vni() as u64,
            header_len: hdr.header_len() as u32,
            flags: if hdr.oam() { DECAP_F_OAM } else { 0 },
        })
    }
}

/// One device's Geneve state: its properties and its encoded options.
pub struct GeneveDevice {
    props: PropStore,
    /// What `geneve/options` says, encoded; read by `encap` on every frame.
    options: RwLock<EncodedOptions>,
}

impl GeneveDevice {
    fn current_options(&self) -> EncodedOptions {
        *self.options.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl EncapInstance for GeneveDevice {
    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        self.props.get(name)
    }

    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
        // Held across the store so the text and the encoded form change
        // together.
        let mut cache = self.options.write().unwrap_or_else(|e| e.into_inner());
        let mut encoded = None;
        self.props.set_with(name, value, |v| match v {
            // The unspecified address binds the wildcard, as the reference
            // allows.
            PropValue::Ip(ip) => check_unicast_endpoint(*ip),
            PropValue::Str(text) if name == OPTIONS => {
                encoded = Some(EncodedOptions::parse(text)?);
                Ok(())
            }
            _ => Ok(()),
        })?;
        if let Some(e) = encoded {
            *cache = e;
        }
        Ok(())
    }

    fn missing_required(&self) -> Vec<String> {
        self.props.missing_required()
    }

    fn socket(&self) -> Result<SocketSpec, PluginError> {
        SocketSpec::udp_from_props(&self.props, LISTEN_IP, LISTEN_PORT, DEFAULT_PORT)
    }

    fn header_len(&self) -> usize {
        BASE_LEN + self.current_options().len
    }

    fn encap(&self, vnetid: u64, _frame: &[u8], header: &mut [u8]) -> Result<usize, PluginError> {
        let vni = u32::try_from(vnetid)
            .ok()
            .filter(|v| *v <= 0xff_ffff)
            .ok_or_else(|| PluginError::invalid(format!("VNI {vnetid} exceeds 24 bits")))?;
        let guard = self.options.read().unwrap_or_else(|e| e.into_inner());
        let len = BASE_LEN + guard.len;
        if header.len() < len {
            return Err(PluginError::invalid(format!(
                "header buffer of {} bytes is shorter than the {len}-byte Geneve header",
                header.len()
            )));
        }
        Header(header).emit(vni, guard.as_bytes(), guard.critical);
        Ok(len)
    }
}

overlay_plugin_abi::export_encap_plugin! {
    name: "geneve",
    version: env!("CARGO_PKG_VERSION"),
    new: Geneve,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> Vec<u8> {
        PropValue::Str(s.into()).encode()
    }

    /// A good packet: version 0, two options (one non-critical with data,
    /// one empty), VNI 0x00002a, then the start of an inner frame.
    const WITH_OPTIONS: [u8; 30] = [
        0x03, 0x00, 0x65, 0x58, 0x00, 0x00, 0x2a, 0x00, // 3 words of options
        0x01, 0x02, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef, // class 0x0102 type 1, 1 word
        0xff, 0xff, 0x7f, 0x00, // class 0xffff type 0x7f, no data
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn encap_without_options_writes_the_base_header() {
        let dev = Geneve.new_instance().unwrap();
        assert_eq!(dev.header_len(), 8);
        let mut hdr = [0xaa; 16];
        assert_eq!(dev.encap(0x123456, &[0; 14], &mut hdr).unwrap(), 8);
        assert_eq!(&hdr[..8], &[0x00, 0x00, 0x65, 0x58, 0x12, 0x34, 0x56, 0x00]);
        assert_eq!(hdr[8], 0xaa, "nothing written past the header");
        assert!(dev
            .encap(0x100_0000, &[], &mut hdr)
            .unwrap_err()
            .msg
            .contains("24 bits"));
        assert!(dev
            .encap(1, &[], &mut hdr[..7])
            .unwrap_err()
            .msg
            .contains("shorter"));
    }

    #[test]
    fn encap_with_options_writes_them_and_the_c_bit() {
        let dev = Geneve.new_instance().unwrap();
        dev.setprop(OPTIONS, &string("0x0102:0x01:deadbeef,65535:127:"))
            .unwrap();
        assert_eq!(dev.header_len(), 20);
        let mut hdr = [0xaa; 24];
        assert_eq!(dev.encap(42, &[], &mut hdr).unwrap(), 20);
        assert_eq!(&hdr[..20], &WITH_OPTIONS[..20]);
        assert_eq!(hdr[20], 0xaa);
        assert!(dev.encap(42, &[], &mut hdr[..19]).is_err());

        // A critical option sets the C bit.
        dev.setprop(OPTIONS, &string("0x0102:0x80:deadbeef"))
            .unwrap();
        assert_eq!(dev.encap(0xabcdef, &[], &mut hdr).unwrap(), 16);
        assert_eq!(
            &hdr[..16],
            &[
                0x02, 0x40, 0x65, 0x58, 0xab, 0xcd, 0xef, 0x00, //
                0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef
            ]
        );
        // Back to none.
        dev.setprop(OPTIONS, &string("")).unwrap();
        assert_eq!(dev.encap(1, &[], &mut hdr).unwrap(), 8);
        assert_eq!(hdr[0], 0);
        assert_eq!(hdr[1], 0);
    }

    #[test]
    fn decap_of_good_packets_with_options() {
        let info = Geneve.decap(&WITH_OPTIONS).unwrap();
        assert_eq!(
            info,
            DecapInfo {
                vnetid: 42,
                header_len: 20,
                flags: 0
            }
        );
        let hdr = Header::new_checked(&WITH_OPTIONS[..]).unwrap();
        let opts: Vec<GeneveOption> = options(hdr.options()).map(Result::unwrap).collect();
        assert_eq!(
            opts,
            [
                GeneveOption {
                    class: 0x0102,
                    otype: 1,
                    data: &[0xde, 0xad, 0xbe, 0xef]
                },
                GeneveOption {
                    class: 0xffff,
                    otype: 0x7f,
                    data: &[]
                }
            ]
        );
        // Reserved bits are ignored, and the C bit without a critical
        // option does not drop.
        let mut p = WITH_OPTIONS;
        p[1] = 0x3f;
        p[7] = 0xff;
        p[19] = 0xe0; // reserved bits of the second option's length byte
        assert_eq!(Geneve.decap(&p).unwrap().header_len, 20);
        // Without options; a header with nothing after it parses (the mux
        // counts the missing frame).
        let base = [0x00, 0x00, 0x65, 0x58, 0xff, 0xff, 0xff, 0x00];
        assert_eq!(Geneve.decap(&base).unwrap().vnetid, 0xff_ffff);
    }

    #[test]
    fn decap_rejects_version_1() {
        let mut p = WITH_OPTIONS;
        p[0] |= 0x40;
        let e = Geneve.decap(&p).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        assert!(e.msg.contains("version 1"), "{}", e.msg);
    }

    #[test]
    fn decap_rejects_an_unknown_critical_option() {
        let mut p = WITH_OPTIONS;
        p[1] = FLAG_C;
        p[10] = 0x81;
        let e = Geneve.decap(&p).unwrap_err();
        assert!(e.msg.contains("critical"), "{}", e.msg);
        assert!(e.msg.contains("0x0102"), "{}", e.msg);
        // Dropped even when the sender forgot the C bit.
        p[1] = 0;
        assert!(Geneve.decap(&p).is_err());
    }

    #[test]
    fn decap_rejects_options_overrunning_the_header() {
        // The first option claims 2 words of data; the option area has 1
        // after it, then the second option's header.
        let mut p = WITH_OPTIONS;
        p[11] = 0x03;
        let e = Geneve.decap(&p).unwrap_err();
        assert!(e.msg.contains("overruns the option area"), "{}", e.msg);
        // The last option's data runs past the option area by one word.
        let mut q = WITH_OPTIONS;
        q[19] = 0x01;
        let e = Geneve.decap(&q).unwrap_err();
        assert!(e.msg.contains("4 data bytes overruns"), "{}", e.msg);
        // Option areas come in whole words, so a cut option header only
        // occurs in a slice handed to the walker directly.
        let mut walk = options(&WITH_OPTIONS[8..10]);
        let e = walk.next().unwrap().unwrap_err();
        assert!(e.msg.contains("option header overruns"), "{}", e.msg);
        assert!(walk.next().is_none(), "the walk stops at the first error");
    }

    #[test]
    fn decap_rejects_short_packets() {
        let e = Geneve.decap(&WITH_OPTIONS[..7]).unwrap_err();
        assert!(e.msg.contains("shorter"), "{}", e.msg);
        assert!(Geneve.decap(&[]).is_err());
        // The option length says 3 words, the packet ends after 2.
        let e = Geneve.decap(&WITH_OPTIONS[..16]).unwrap_err();
        assert!(e.msg.contains("overruns the 16-byte packet"), "{}", e.msg);
        let mut p = WITH_OPTIONS;
        p[0] = 0x3f; // 252 bytes of options in a 30-byte packet
        assert!(Geneve.decap(&p).is_err());
    }

    #[test]
    fn decap_rejects_a_wrong_protocol_type() {
        let mut p = WITH_OPTIONS;
        p[2..4].copy_from_slice(&[0x08, 0x00]);
        let e = Geneve.decap(&p).unwrap_err();
        assert!(e.msg.contains("0x0800"), "{}", e.msg);
    }

    #[test]
    fn decap_flags_oam_packets() {
        let mut p = WITH_OPTIONS;
        p[1] = FLAG_O;
        assert_eq!(
            Geneve.decap(&p).unwrap(),
            DecapInfo {
                vnetid: 42,
                header_len: 20,
                flags: DECAP_F_OAM
            }
        );
        // OAM does not excuse a malformed header.
        p[0] |= 0x80;
        assert!(Geneve.decap(&p).is_err());
    }

    #[test]
    fn encap_decap_round_trip() {
        let dev = Geneve.new_instance().unwrap();
        let mut all = String::new();
        // 2 options of 124 bytes: 256 bytes, too many; 124 + 120 = 252 fits.
        all.push_str(&format!("1:2:{}", "ab".repeat(124)));
        assert!(EncodedOptions::parse(&format!("{all},3:4:{}", "cd".repeat(124))).is_err());
        let full = EncodedOptions::parse(&format!("{all},3:4:{}", "cd".repeat(120))).unwrap();
        assert_eq!(full.as_bytes().len(), MAX_OPTIONS_LEN);
        for (opts, vni) in [
            ("", 0u64),
            ("7:8:00000000", 0xff_ffff),
            ("0xffff:0x7f:0102030405060708", 9),
        ] {
            dev.setprop(OPTIONS, &string(opts)).unwrap();
            let mut hdr = [0u8; MAX_HEADER_LEN];
            let n = dev.encap(vni, &[], &mut hdr).unwrap();
            let info = Geneve.decap(&hdr[..n]).unwrap();
            assert_eq!((info.vnetid, info.header_len as usize), (vni, n));
        }
        // The full 252 bytes of options survive the round trip too.
        let mut hdr = [0u8; MAX_HEADER_LEN];
        Header(&mut hdr[..]).emit(5, full.as_bytes(), full.critical());
        assert_eq!(
            Geneve.decap(&hdr).unwrap().header_len as usize,
            MAX_HEADER_LEN
        );
    }

    #[test]
    fn options_property_is_validated_with_errors_naming_the_item() {
        let dev = Geneve.new_instance().unwrap();
        assert_eq!(dev.getprop(OPTIONS).unwrap(), b"\0");
        for (text, needles) in [
            ("0x0102:0x80", &["option 1", "class:type:hexdata"][..]),
            (
                "1:1:00000000,0x0102:0x80:dead",
                &["option 2", "0x0102:0x80:dead", "2 bytes", "4-byte words"],
            ),
            ("1:1:abc", &["option 1", "odd number"]),
            ("1:1:zzzz0000", &["not hex"]),
            ("0x10000:1:", &["class", "larger than 0xffff"]),
            ("1:256:", &["type", "larger than 0xff"]),
            ("x:1:", &["class", "\"x\" is not a number"]),
            ("1:1:,", &["option 2", "class:type:hexdata"]),
        ] {
            let e = dev.setprop(OPTIONS, &string(text)).unwrap_err();
            assert_eq!(e.errno, libc::EINVAL);
            assert!(e.msg.starts_with("geneve/options: "), "{}", e.msg);
            for n in needles {
                assert!(e.msg.contains(n), "{text}: {} lacks {n}", e.msg);
            }
        }
        let long = format!("1:1:{}", "00".repeat(128));
        let e = EncodedOptions::parse(&long).unwrap_err();
        assert!(e.contains("128 bytes") && e.contains("at most 124"), "{e}");
        // A failed set keeps the old value and the old encoded options.
        dev.setprop(OPTIONS, &string("0x0102:0x01:deadbeef"))
            .unwrap();
        assert!(dev.setprop(OPTIONS, &string("bad")).is_err());
        assert_eq!(
            dev.getprop(OPTIONS).unwrap(),
            string("0x0102:0x01:deadbeef")
        );
        assert_eq!(dev.header_len(), 16);
    }

    #[test]
    fn properties_and_socket() {
        let info = Geneve.info();
        assert_eq!((info.id_size, info.dest), (3, dest::IP | dest::PORT));
        assert_eq!(info.max_header_len, 260);
        let dev = Geneve.new_instance().unwrap();
        assert_eq!(dev.missing_required(), vec![LISTEN_IP.to_string()]);
        assert_eq!(dev.socket().unwrap_err().errno, libc::EINVAL);
        assert_eq!(dev.getprop(LISTEN_PORT).unwrap(), 6081u64.to_ne_bytes());
        let ip = |s: &str| overlay_plugin_abi::prop::ip_to_in6(s.parse().unwrap());
        assert!(dev.setprop(LISTEN_IP, &ip("224.0.0.1")).is_err());
        assert!(dev.setprop(LISTEN_PORT, &0u64.to_ne_bytes()).is_err());
        assert!(dev.setprop(LISTEN_PORT, &65536u64.to_ne_bytes()).is_err());
        dev.setprop(LISTEN_IP, &ip("10.0.0.1")).unwrap();
        let s = dev.socket().unwrap();
        assert_eq!((s.domain, s.port), (libc::AF_INET, 6081));
        assert_eq!(s.addr, ip("10.0.0.1"));
        dev.setprop(LISTEN_IP, &ip("2001:db8::1")).unwrap();
        dev.setprop(LISTEN_PORT, &7000u64.to_ne_bytes()).unwrap();
        let s = dev.socket().unwrap();
        assert_eq!((s.domain, s.port), (libc::AF_INET6, 7000));
        assert!(dev.missing_required().is_empty());
        assert_eq!(dev.getprop("geneve/nope").unwrap_err().errno, libc::ENOENT);
    }
}
