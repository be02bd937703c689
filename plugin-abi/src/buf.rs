//! Bounds-checked big-endian field access for writing and parsing
//! encapsulation headers.
//!
//! Headers on the wire are big-endian ("network order"). An encap plugin
//! writes its header into the slice the daemon hands to
//! [`EncapDevice::encap`](crate::EncapDevice::encap), and its `decap`
//! parses bytes that came off the network: both must never index out of
//! bounds, because a panic on the packet path costs the packet and degrades
//! the device. Every function here checks the bounds first and returns a
//! [`PluginError`] (`EINVAL`) naming the field's offset and size instead of
//! panicking. They are `#[inline]`, so a sequence of them compiles to a
//! bounds check and a store each.
//!
//! ```
//! use overlay_plugin_abi::buf;
//!
//! let mut header = [0u8; 8];
//! buf::put_u16(&mut header, 0, 0xcafe).unwrap();
//! buf::put_u32(&mut header, 4, 42).unwrap();
//! assert_eq!(header, [0xca, 0xfe, 0, 0, 0, 0, 0, 42]);
//! assert_eq!(buf::get_u32(&header, 4).unwrap(), 42);
//! // Out of bounds is an error, not a panic.
//! assert!(buf::put_u32(&mut header, 6, 1).is_err());
//! ```

use crate::PluginError;

/// Checks that `buf` holds at least `need` bytes; `what` names the buffer
/// in the error ("VXLAN header", "packet").
#[inline]
pub fn check_len(buf: &[u8], need: usize, what: &str) -> Result<(), PluginError> {
    if buf.len() < need {
        return Err(PluginError::invalid(format!(
            "{what} of {} bytes is shorter than the {need} bytes needed",
            buf.len()
        )));
    }
    Ok(())
}

#[cold]
fn out_of_bounds(len: usize, at: usize, size: usize) -> PluginError {
    PluginError::invalid(format!(
        "a {size}-byte field at offset {at} does not fit in a buffer of {len} bytes"
    ))
}

#[inline]
fn field_mut(buf: &mut [u8], at: usize, size: usize) -> Result<&mut [u8], PluginError> {
    let len = buf.len();
    at.checked_add(size)
        .and_then(|end| buf.get_mut(at..end))
        .ok_or_else(|| out_of_bounds(len, at, size))
}

#[inline]
fn field(buf: &[u8], at: usize, size: usize) -> Result<&[u8], PluginError> {
    at.checked_add(size)
        .and_then(|end| buf.get(at..end))
        .ok_or_else(|| out_of_bounds(buf.len(), at, size))
}

/// Writes `bytes` at offset `at`.
#[inline]
pub fn put_bytes(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), PluginError> {
    field_mut(buf, at, bytes.len())?.copy_from_slice(bytes);
    Ok(())
}

/// Writes one byte at offset `at`.
#[inline]
pub fn put_u8(buf: &mut [u8], at: usize, v: u8) -> Result<(), PluginError> {
    put_bytes(buf, at, &[v])
}

/// Writes a big-endian `u16` at offset `at`.
#[inline]
pub fn put_u16(buf: &mut [u8], at: usize, v: u16) -> Result<(), PluginError> {
    put_bytes(buf, at, &v.to_be_bytes())
}

/// Writes a big-endian `u32` at offset `at`.
#[inline]
pub fn put_u32(buf: &mut [u8], at: usize, v: u32) -> Result<(), PluginError> {
    put_bytes(buf, at, &v.to_be_bytes())
}

/// Writes a big-endian `u64` at offset `at`.
#[inline]
pub fn put_u64(buf: &mut [u8], at: usize, v: u64) -> Result<(), PluginError> {
    put_bytes(buf, at, &v.to_be_bytes())
}

/// Writes the low `width` bytes (1 to 8) of `v`, big-endian, at offset
/// `at`: a 24-bit VNI is `put_uint(buf, 4, vni, 3)`. Fails when `v` does
/// not fit in `width` bytes.
#[inline]
pub fn put_uint(buf: &mut [u8], at: usize, v: u64, width: usize) -> Result<(), PluginError> {
    if !(1..=8).contains(&width) {
        return Err(PluginError::invalid(format!(
            "field width {width} is not 1 to 8 bytes"
        )));
    }
    if width < 8 && v >> (8 * width) != 0 {
        return Err(PluginError::invalid(format!(
            "{v} does not fit in a {width}-byte field"
        )));
    }
    put_bytes(buf, at, &v.to_be_bytes()[8 - width..])
}

/// Sets all `len` bytes at offset `at` to zero (reserved fields).
#[inline]
pub fn zero(buf: &mut [u8], at: usize, len: usize) -> Result<(), PluginError> {
    field_mut(buf, at, len)?.fill(0);
    Ok(())
}

/// Reads one byte at offset `at`.
#[inline]
pub fn get_u8(buf: &[u8], at: usize) -> Result<u8, PluginError> {
    Ok(field(buf, at, 1)?[0])
}

/// Reads a big-endian `u16` at offset `at`.
#[inline]
pub fn get_u16(buf: &[u8], at: usize) -> Result<u16, PluginError> {
    let b = field(buf, at, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian `u32` at offset `at`.
#[inline]
pub fn get_u32(buf: &[u8], at: usize) -> Result<u32, PluginError> {
    let b = field(buf, at, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a big-endian `u64` at offset `at`.
#[inline]
pub fn get_u64(buf: &[u8], at: usize) -> Result<u64, PluginError> {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(field(buf, at, 8)?);
    Ok(u64::from_be_bytes(raw))
}

/// Reads a big-endian unsigned integer of `width` bytes (1 to 8) at `at`.
#[inline]
pub fn get_uint(buf: &[u8], at: usize, width: usize) -> Result<u64, PluginError> {
    if !(1..=8).contains(&width) {
        return Err(PluginError::invalid(format!(
            "field width {width} is not 1 to 8 bytes"
        )));
    }
    let mut raw = [0u8; 8];
    raw[8 - width..].copy_from_slice(field(buf, at, width)?);
    Ok(u64::from_be_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_big_endian_and_bounded() {
        let mut b = [0xffu8; 12];
        put_u8(&mut b, 0, 0x08).unwrap();
        zero(&mut b, 1, 3).unwrap();
        put_uint(&mut b, 4, 0x123456, 3).unwrap();
        put_u16(&mut b, 7, 0xbeef).unwrap();
        put_u8(&mut b, 9, 0).unwrap();
        assert_eq!(&b[..10], &[8, 0, 0, 0, 0x12, 0x34, 0x56, 0xbe, 0xef, 0]);
        assert_eq!(&b[10..], &[0xff, 0xff], "nothing written past the fields");
        put_u64(&mut b, 4, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(get_u64(&b, 4).unwrap(), 0x0102_0304_0506_0708);
        assert_eq!(get_uint(&b, 4, 3).unwrap(), 0x010203);
        assert_eq!(get_u16(&b, 0).unwrap(), 0x0800);

        let e = put_u32(&mut b, 10, 1).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        assert!(e.msg.contains("offset 10"), "{}", e.msg);
        assert!(put_u16(&mut b, usize::MAX, 1).is_err(), "no overflow");
        assert!(get_u32(&b, 9).is_err());
        assert!(put_uint(&mut b, 0, 0x100_0000, 3).is_err());
        assert!(put_uint(&mut b, 0, 1, 9).is_err());
        assert!(get_uint(&b, 0, 0).is_err());
        assert!(check_len(&b, 13, "header")
            .unwrap_err()
            .msg
            .contains("12 bytes"));
        check_len(&b, 12, "header").unwrap();
    }
}
