//! Ethernet addresses: the one type the daemon, its plugins and its tools
//! parse and print them with.
//!
//! The ABI itself carries addresses as `[u8; 6]` ([`crate::Point::mac`],
//! [`crate::LookupRequest::dst`]); [`Mac`] wraps the same six bytes for
//! code that reads, writes or compares them, and converts both ways for
//! free.
//!
//! ```
//! use overlay_plugin_abi::Mac;
//! let m: Mac = "2-0-5E-10-0-1".parse().unwrap();
//! assert_eq!(m.to_string(), "02:00:5e:10:00:01");
//! assert_eq!(Mac::parse("0200.5e10.0001"), Ok(m));
//! assert!(Mac::parse("02:00:5e:10:00").unwrap_err().contains("5 groups"));
//! ```

use std::{fmt, str::FromStr};

/// An Ethernet (MAC-48) address.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

/// How a MAC address may be written, for error messages.
pub const MAC_FORMS: &str = "six hexadecimal bytes separated by ':' or '-' (02:00:5e:10:00:01, \
     2-0-5e-10-0-1), three dot-separated groups of four digits (0200.5e10.0001) or twelve digits \
     (02005e100001)";

impl Mac {
    /// The all-zero address (no host has it; the daemon uses it as the key
    /// of a point-mode device's single target).
    pub const ZERO: Mac = Mac([0; 6]);
    /// The broadcast address.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// Parses the usual spellings, in either case: six groups of one or
    /// two hexadecimal digits separated by `:` or by `-` (the same one
    /// throughout), three dot-separated groups of four digits, or twelve
    /// digits. The error names the text, what is wrong with it and the
    /// accepted forms.
    pub fn parse(text: &str) -> Result<Mac, String> {
        let bad = |why: &str| format!("invalid MAC address \"{text}\": {why}; write {MAC_FORMS}");
        let digits = |g: &str, min: usize, max: usize| -> Result<u64, String> {
            if g.len() < min || g.len() > max || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
                let want = if min == max {
                    format!("{min}")
                } else {
                    format!("{min} or {max}")
                };
                return Err(bad(&format!("\"{g}\" is not {want} hexadecimal digits")));
            }
            Ok(u64::from_str_radix(g, 16).expect("checked hexadecimal digits"))
        };
        let (sep, groups, width) =
            match (text.contains(':'), text.contains('-'), text.contains('.')) {
                (false, false, false) => {
                    if text.len() != 12 {
                        return Err(bad("no separators, and not twelve digits"));
                    }
                    return Ok(Mac::from_u64(digits(text, 12, 12)?));
                }
                (true, false, false) => (':', 6, 8),
                (false, true, false) => ('-', 6, 8),
                (false, false, true) => ('.', 3, 16),
                _ => return Err(bad("separators mixed")),
            };
        let parts: Vec<&str> = text.split(sep).collect();
        if parts.len() != groups {
            return Err(bad(&format!("{} groups instead of {groups}", parts.len())));
        }
        let (min, max) = if groups == 6 { (1, 2) } else { (4, 4) };
        let mut value = 0u64;
        for g in parts {
            value = value << width | digits(g, min, max)?;
        }
        Ok(Mac::from_u64(value))
    }

    fn from_u64(v: u64) -> Mac {
        let mut m = [0u8; 6];
        m.copy_from_slice(&v.to_be_bytes()[2..]);
        Mac(m)
    }

    /// The destination MAC of an Ethernet frame, `None` when the frame is
    /// shorter than an address.
    pub fn dst_of(frame: &[u8]) -> Option<Mac> {
        Some(Mac(frame.get(..6)?.try_into().ok()?))
    }

    /// Reads six bytes (an attribute value); `None` for another length.
    pub fn from_slice(bytes: &[u8]) -> Option<Mac> {
        bytes.try_into().ok().map(Mac)
    }

    /// Whether it is a group (multicast or broadcast) address.
    pub fn is_group(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// Whether it is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Mac::BROADCAST
    }

    /// Whether it is the all-zero address.
    pub fn is_zero(&self) -> bool {
        *self == Mac::ZERO
    }

    /// The six bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

/// Lower case, zero-padded, `:`-separated: `02:00:5e:10:00:01`.
impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        Mac::parse(s)
    }
}

impl From<[u8; 6]> for Mac {
    fn from(b: [u8; 6]) -> Mac {
        Mac(b)
    }
}

impl From<Mac> for [u8; 6] {
    fn from(m: Mac) -> [u8; 6] {
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);

    #[test]
    fn every_usual_spelling_parses_to_the_same_address() {
        for s in [
            "02:00:5e:10:00:01",
            "02:00:5E:10:00:01",
            "2:0:5e:10:0:1",
            "02-00-5e-10-00-01",
            "2-0-5E-10-0-1",
            "0200.5e10.0001",
            "0200.5E10.0001",
            "02005e100001",
        ] {
            assert_eq!(Mac::parse(s), Ok(M), "{s}");
        }
        assert_eq!(M.to_string(), "02:00:5e:10:00:01");
        assert_eq!(format!("{M:?}"), "02:00:5e:10:00:01");
        assert_eq!(Mac::parse(&Mac::BROADCAST.to_string()), Ok(Mac::BROADCAST));
    }

    #[test]
    fn errors_name_the_text_and_what_is_wrong() {
        for (s, why) in [
            ("02:00:5e:10:00", "5 groups instead of 6"),
            ("02:00:5e:10:00:01:02", "7 groups instead of 6"),
            ("02:00-5e:10:00:01", "separators mixed"),
            ("02:00:5e:10:00:", "\"\" is not 1 or 2 hexadecimal digits"),
            ("02:00:5e:10:00:001", "\"001\" is not 1 or 2"),
            ("02:00:5e:10:00:0g", "\"0g\" is not 1 or 2"),
            ("0200.5e1.00001", "\"5e1\" is not 4"),
            ("0200.5e10", "2 groups instead of 3"),
            ("02005e1000", "not twelve digits"),
            ("02005e10000g", "\"02005e10000g\" is not 12"),
            ("", "not twelve digits"),
            ("+2:0:5e:10:0:1", "\"+2\" is not"),
        ] {
            let e = Mac::parse(s).unwrap_err();
            assert!(
                e.starts_with(&format!("invalid MAC address \"{s}\": ")),
                "{e}"
            );
            assert!(e.contains(why), "{s}: {e}");
            assert!(e.ends_with(MAC_FORMS), "{e}");
        }
    }

    #[test]
    fn group_zero_and_frames() {
        assert!(Mac::BROADCAST.is_group() && Mac::BROADCAST.is_broadcast());
        assert!(Mac([0x01, 0, 0x5e, 0, 0, 1]).is_group());
        assert!(!M.is_group() && !M.is_zero() && Mac::ZERO.is_zero());
        let mut frame = [0u8; 14];
        frame[..6].copy_from_slice(&M.0);
        assert_eq!(Mac::dst_of(&frame), Some(M));
        assert_eq!(Mac::dst_of(&frame[..5]), None);
        assert_eq!(Mac::from_slice(&M.0), Some(M));
        assert_eq!(Mac::from_slice(&[0; 7]), None);
        assert_eq!(<[u8; 6]>::from(M), M.octets());
    }
}
