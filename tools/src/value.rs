//! Property values: parsing command-line text into the wire encoding the
//! daemon expects for a property type, and formatting wire values back.
//!
//! The daemon reports each property's type (`PROP_TYPE`); values travel as
//! opaque `PROP_VALUE` bytes whose layout depends on that type. Parsing is
//! strict so that a typo is caught here, with a message naming the value,
//! rather than turning into an unexpected setting.

use nlproto::spec::overlay as ov;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Longest STRING value in bytes, not counting the NUL (`PROP_VALUE` holds
/// at most 256 bytes including it).
pub const STRING_MAX: usize = 255;

/// The type of a property, as reported in `PROP_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PropType {
    /// Signed integer, 8-byte native-endian `i64`.
    Int,
    /// Unsigned integer, 8-byte native-endian `u64`.
    Uint,
    /// IP address, 16-byte `in6_addr` in network order (IPv4 v4-mapped).
    Ip,
    /// NUL-terminated UTF-8 string.
    Str,
    /// A type number this client does not know (a newer daemon).
    Unknown(u32),
}

impl PropType {
    /// The type for a `PROP_TYPE` number (1 INT, 2 UINT, 3 IP, 4 STRING).
    pub fn from_wire(v: u32) -> PropType {
        match v {
            ov::PROP_TYPE_INT => PropType::Int,
            ov::PROP_TYPE_UINT => PropType::Uint,
            ov::PROP_TYPE_IP => PropType::Ip,
            ov::PROP_TYPE_STRING => PropType::Str,
            n => PropType::Unknown(n),
        }
    }

    /// The upper-case name shown to users (`UINT`).
    pub fn name(self) -> String {
        match self {
            PropType::Int => "INT".into(),
            PropType::Uint => "UINT".into(),
            PropType::Ip => "IP".into(),
            PropType::Str => "STRING".into(),
            PropType::Unknown(n) => format!("TYPE{n}"),
        }
    }
}

impl fmt::Display for PropType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Why a value could not be parsed. The text is meant to follow the value it
/// is about: `invalid value "abc" for UINT: ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueError(pub String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

fn invalid(text: &str, ty: PropType, why: impl fmt::Display) -> ValueError {
    ValueError(format!("invalid {ty} value \"{text}\": {why}"))
}

/// Splits an optional `0x`/`0X` prefix off, returning the digits and radix.
fn radix_of(digits: &str) -> (&str, u32) {
    match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => (hex, 16),
        None => (digits, 10),
    }
}

/// Parses the magnitude of an integer: decimal, or hex after `0x`.
///
/// `from_str_radix` accepts a leading `+`; it is refused here so that only
/// plain digits pass, and the caller handles the sign itself.
fn parse_magnitude(digits: &str) -> Result<u128, &'static str> {
    let (digits, radix) = radix_of(digits);
    if digits.is_empty() {
        return Err("no digits");
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(if radix == 16 {
            "expected hexadecimal digits after 0x"
        } else {
            "expected a decimal number (or 0x followed by hexadecimal digits)"
        });
    }
    // Anything that does not fit in u128 is far beyond every range checked
    // by the callers, so saturate and let them report the overflow.
    Ok(u128::from_str_radix(digits, radix).unwrap_or(u128::MAX))
}

/// Parses an unsigned 64-bit integer, decimal or `0x` hexadecimal.
pub fn parse_u64(text: &str) -> Result<u64, ValueError> {
    let ty = PropType::Uint;
    if text.starts_with('-') {
        return Err(invalid(text, ty, "must not be negative"));
    }
    let m = parse_magnitude(text).map_err(|why| invalid(text, ty, why))?;
    u64::try_from(m).map_err(|_| invalid(text, ty, format_args!("exceeds {}", u64::MAX)))
}

/// Parses a signed 64-bit integer, decimal or `0x` hexadecimal, with an
/// optional leading `-`.
pub fn parse_i64(text: &str) -> Result<i64, ValueError> {
    let ty = PropType::Int;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let m = parse_magnitude(digits).map_err(|why| invalid(text, ty, why))?;
    let out_of_range = || {
        invalid(
            text,
            ty,
            format_args!("outside {}..={}", i64::MIN, i64::MAX),
        )
    };
    if negative {
        // i64::MIN's magnitude is one more than i64::MAX, so negate in i128.
        i64::try_from(-i128::try_from(m).map_err(|_| out_of_range())?).map_err(|_| out_of_range())
    } else {
        i64::try_from(m).map_err(|_| out_of_range())
    }
}

/// Parses an IPv4 or IPv6 address; IPv4 is returned v4-mapped.
pub fn parse_ip(text: &str) -> Result<Ipv6Addr, ValueError> {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Ok(v4.to_ipv6_mapped()),
        Ok(IpAddr::V6(v6)) => Ok(v6),
        Err(_) => Err(invalid(
            text,
            PropType::Ip,
            "expected an IPv4 (a.b.c.d) or IPv6 address",
        )),
    }
}

/// Encodes `text` as a value of type `ty`, ready for `PROP_VALUE`.
pub fn parse_value(ty: PropType, text: &str) -> Result<Vec<u8>, ValueError> {
    match ty {
        PropType::Uint => Ok(parse_u64(text)?.to_ne_bytes().to_vec()),
        PropType::Int => Ok(parse_i64(text)?.to_ne_bytes().to_vec()),
        PropType::Ip => Ok(parse_ip(text)?.octets().to_vec()),
        PropType::Str => {
            if text.len() > STRING_MAX {
                return Err(invalid(
                    text,
                    ty,
                    format_args!("longer than {STRING_MAX} bytes ({})", text.len()),
                ));
            }
            if text.contains('\0') {
                return Err(invalid(text, ty, "contains a NUL character"));
            }
            let mut v = Vec::with_capacity(text.len() + 1);
            v.extend_from_slice(text.as_bytes());
            v.push(0);
            Ok(v)
        }
        PropType::Unknown(n) => Err(ValueError(format!(
            "cannot encode \"{text}\": the daemon reports property type {n}, which this overlayctl does not know"
        ))),
    }
}

/// Lower-case hexadecimal of `bytes`, without separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The form used for a value whose size does not fit its type: `?` then hex.
pub fn raw(bytes: &[u8]) -> String {
    format!("?{}", hex(bytes))
}

/// Formats a wire value of type `ty` for display.
///
/// A value whose size or contents do not fit its type is shown as `?` and
/// hex rather than failing, so one odd property does not hide the others.
pub fn format_value(ty: PropType, bytes: &[u8]) -> String {
    match ty {
        PropType::Uint => match <[u8; 8]>::try_from(bytes) {
            Ok(b) => u64::from_ne_bytes(b).to_string(),
            Err(_) => raw(bytes),
        },
        PropType::Int => match <[u8; 8]>::try_from(bytes) {
            Ok(b) => i64::from_ne_bytes(b).to_string(),
            Err(_) => raw(bytes),
        },
        PropType::Ip => match <[u8; 16]>::try_from(bytes) {
            Ok(b) => format_ip(Ipv6Addr::from(b)),
            Err(_) => raw(bytes),
        },
        PropType::Str => match bytes.split_last() {
            Some((0, text)) if !text.contains(&0) => match std::str::from_utf8(text) {
                Ok(s) => s.to_string(),
                Err(_) => raw(bytes),
            },
            _ => raw(bytes),
        },
        PropType::Unknown(_) => raw(bytes),
    }
}

/// An address as dotted IPv4 when it is v4-mapped, else as IPv6.
pub fn format_ip(addr: Ipv6Addr) -> String {
    match addr.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => addr.to_string(),
    }
}

/// Formats a `PROP_RANGE_MIN`/`PROP_RANGE_MAX` bound: the wire carries a
/// u64, which holds an i64 in the same 8 bytes for an INT property.
pub fn format_bound(ty: PropType, v: u64) -> String {
    match ty {
        PropType::Int => (v as i64).to_string(),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn enc(ty: PropType, s: &str) -> Vec<u8> {
        parse_value(ty, s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(ty: PropType, s: &str) -> String {
        parse_value(ty, s).expect_err(s).0
    }

    #[test]
    fn uint_parse() {
        assert_eq!(enc(PropType::Uint, "0"), 0u64.to_ne_bytes());
        assert_eq!(enc(PropType::Uint, "1400"), 1400u64.to_ne_bytes());
        assert_eq!(enc(PropType::Uint, "0x12b5"), 4789u64.to_ne_bytes());
        assert_eq!(enc(PropType::Uint, "0XFF"), 255u64.to_ne_bytes());
        assert_eq!(enc(PropType::Uint, "007"), 7u64.to_ne_bytes());
        assert_eq!(
            enc(PropType::Uint, "18446744073709551615"),
            u64::MAX.to_ne_bytes()
        );
        assert_eq!(
            enc(PropType::Uint, "0xffffffffffffffff"),
            u64::MAX.to_ne_bytes()
        );
    }

    #[test]
    fn uint_reject() {
        assert!(err(PropType::Uint, "-1").contains("must not be negative"));
        assert!(err(PropType::Uint, "-0").contains("must not be negative"));
        assert!(
            err(PropType::Uint, "18446744073709551616").contains("exceeds 18446744073709551615")
        );
        assert!(err(PropType::Uint, "0x10000000000000000").contains("exceeds"));
        assert!(err(
            PropType::Uint,
            "99999999999999999999999999999999999999999999"
        )
        .contains("exceeds"));
        for bad in [
            "", "abc", "12a", "+5", " 5", "5 ", "0x", "0xg", "1_000", "1.5", "1e3",
        ] {
            let e = err(PropType::Uint, bad);
            assert!(
                e.starts_with(&format!("invalid UINT value \"{bad}\": ")),
                "{e}"
            );
        }
    }

    #[test]
    fn int_parse() {
        assert_eq!(enc(PropType::Int, "0"), 0i64.to_ne_bytes());
        assert_eq!(enc(PropType::Int, "-1"), (-1i64).to_ne_bytes());
        assert_eq!(enc(PropType::Int, "42"), 42i64.to_ne_bytes());
        assert_eq!(enc(PropType::Int, "-0x10"), (-16i64).to_ne_bytes());
        assert_eq!(
            enc(PropType::Int, "9223372036854775807"),
            i64::MAX.to_ne_bytes()
        );
        assert_eq!(
            enc(PropType::Int, "-9223372036854775808"),
            i64::MIN.to_ne_bytes()
        );
    }

    #[test]
    fn int_reject() {
        assert!(err(PropType::Int, "9223372036854775808").contains("outside"));
        assert!(err(PropType::Int, "-9223372036854775809").contains("outside"));
        assert!(
            err(PropType::Int, "-999999999999999999999999999999999999999999").contains("outside")
        );
        for bad in ["", "-", "--1", "+1", "x", "0x", "1-"] {
            let e = err(PropType::Int, bad);
            assert!(
                e.starts_with(&format!("invalid INT value \"{bad}\": ")),
                "{e}"
            );
        }
    }

    #[test]
    fn ip_parse() {
        let v = enc(PropType::Ip, "10.200.0.1");
        assert_eq!(v, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 200, 0, 1]);
        let v = enc(PropType::Ip, "::1");
        assert_eq!(v, Ipv6Addr::LOCALHOST.octets());
        let v = enc(PropType::Ip, "fe80::1:2");
        assert_eq!(v[..2], [0xfe, 0x80]);
        assert_eq!(v[12..], [0, 1, 0, 2]);
        assert_eq!(
            enc(PropType::Ip, "0.0.0.0"),
            enc(PropType::Ip, "::ffff:0.0.0.0")
        );
        assert_eq!(enc(PropType::Ip, "::"), [0; 16]);
        for bad in [
            "",
            "1.2.3",
            "1.2.3.256",
            "10.0.0.1/24",
            "[::1]",
            "::1%eth0",
            "host",
            "1.2.3.4 ",
        ] {
            let e = err(PropType::Ip, bad);
            assert!(
                e.starts_with(&format!("invalid IP value \"{bad}\": ")),
                "{e}"
            );
        }
    }

    #[test]
    fn string_parse() {
        assert_eq!(enc(PropType::Str, "vxlan"), b"vxlan\0");
        assert_eq!(enc(PropType::Str, ""), b"\0");
        assert_eq!(enc(PropType::Str, "é"), "é\0".as_bytes());
        let max = "a".repeat(STRING_MAX);
        assert_eq!(enc(PropType::Str, &max).len(), 256);
        assert!(err(PropType::Str, &"a".repeat(256)).contains("longer than 255 bytes (256)"));
        // 128 two-byte characters: 128 characters but 256 bytes.
        assert!(err(PropType::Str, &"é".repeat(128)).contains("longer than 255 bytes"));
        assert!(err(PropType::Str, "a\0b").contains("NUL"));
    }

    #[test]
    fn unknown_type_parse() {
        assert!(err(PropType::Unknown(9), "1").contains("property type 9"));
    }

    #[test]
    fn format_uint_int() {
        assert_eq!(format_value(PropType::Uint, &1400u64.to_ne_bytes()), "1400");
        assert_eq!(
            format_value(PropType::Uint, &u64::MAX.to_ne_bytes()),
            "18446744073709551615"
        );
        assert_eq!(format_value(PropType::Int, &(-5i64).to_ne_bytes()), "-5");
        assert_eq!(
            format_value(PropType::Int, &i64::MIN.to_ne_bytes()),
            "-9223372036854775808"
        );
        assert_eq!(format_value(PropType::Uint, &[1, 2, 3, 4]), "?01020304");
        assert_eq!(
            format_value(PropType::Int, &[0xab; 9]),
            format!("?{}", "ab".repeat(9))
        );
        assert_eq!(format_value(PropType::Uint, &[]), "?");
    }

    #[test]
    fn format_ip_values() {
        let v4 = Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped().octets();
        assert_eq!(format_value(PropType::Ip, &v4), "192.0.2.7");
        assert_eq!(format_value(PropType::Ip, &[0; 16]), "::");
        assert_eq!(
            format_value(PropType::Ip, &Ipv6Addr::LOCALHOST.octets()),
            "::1"
        );
        let v6: Ipv6Addr = "2001:db8::42".parse().unwrap();
        assert_eq!(format_value(PropType::Ip, &v6.octets()), "2001:db8::42");
        assert_eq!(format_value(PropType::Ip, &[10, 0, 0, 1]), "?0a000001");
    }

    #[test]
    fn format_strings() {
        assert_eq!(format_value(PropType::Str, b"direct\0"), "direct");
        assert_eq!(format_value(PropType::Str, b"\0"), "");
        assert_eq!(format_value(PropType::Str, b"abc"), "?616263");
        assert_eq!(format_value(PropType::Str, b"a\0b\0"), "?61006200");
        assert_eq!(format_value(PropType::Str, &[0xff, 0]), "?ff00");
        assert_eq!(format_value(PropType::Str, &[]), "?");
    }

    #[test]
    fn format_unknown_type() {
        assert_eq!(format_value(PropType::Unknown(7), &[1, 2]), "?0102");
        assert_eq!(PropType::Unknown(7).name(), "TYPE7");
    }

    #[test]
    fn round_trips() {
        for (ty, s) in [
            (PropType::Uint, "0"),
            (PropType::Uint, "18446744073709551615"),
            (PropType::Int, "-9223372036854775808"),
            (PropType::Int, "9223372036854775807"),
            (PropType::Ip, "10.0.0.1"),
            (PropType::Ip, "2001:db8::1"),
            (PropType::Str, "hello world"),
        ] {
            assert_eq!(format_value(ty, &enc(ty, s)), s);
        }
        assert_eq!(
            format_value(PropType::Uint, &enc(PropType::Uint, "0x10")),
            "16"
        );
    }

    #[test]
    fn bounds() {
        assert_eq!(
            format_bound(PropType::Uint, u64::MAX),
            "18446744073709551615"
        );
        assert_eq!(format_bound(PropType::Int, (-3i64) as u64), "-3");
    }

    #[test]
    fn type_numbers() {
        assert_eq!(PropType::from_wire(1), PropType::Int);
        assert_eq!(PropType::from_wire(2), PropType::Uint);
        assert_eq!(PropType::from_wire(3), PropType::Ip);
        assert_eq!(PropType::from_wire(4), PropType::Str);
        assert_eq!(PropType::from_wire(0), PropType::Unknown(0));
        assert_eq!(PropType::Str.to_string(), "STRING");
    }
}
