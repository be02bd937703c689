//! Attribute values and their policy-driven decoder.
//!
//! [`Attr`] is a generic attribute tree. It implements netlink-packet-core's
//! [`Nla`], so a slice of attributes emits with that crate's `Emitable`
//! (4-byte alignment, zeroed padding, `NLA_F_NESTED` on nested values).
//!
//! [`decode_attrs`] checks untrusted bytes against a policy once, strictly,
//! and reports the first offending attribute with its byte offset from the
//! start of the message; after that the values are plain Rust data.

use crate::spec::{AttrKind, AttrSpec};
use netlink_packet_core::{
    emit_u16, emit_u32, emit_u64, parse_u16, parse_u32, parse_u64, parse_u8, Emitable, Nla,
    NLA_F_NESTED, NLA_HEADER_SIZE, NLA_TYPE_MASK,
};

/// Longest attribute value that fits in `nla_len` (a u16 that counts the
/// 4-byte header).
pub const ATTR_VALUE_MAX: usize = u16::MAX as usize - NLA_HEADER_SIZE;

/// Rounds `len` up to the 4-byte netlink alignment.
pub const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// An attribute: its type number (without flags) and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// The attribute type (`nla_type & NLA_TYPE_MASK`).
    pub kind: u16,
    /// The decoded value.
    pub value: AttrValue,
}

/// The value of an attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrValue {
    /// 1 byte.
    U8(u8),
    /// 2 bytes, native order.
    U16(u16),
    /// 4 bytes, native order.
    U32(u32),
    /// 8 bytes, native order.
    U64(u64),
    /// A string, emitted with a terminating NUL. It must not contain NUL.
    Str(String),
    /// Opaque bytes.
    Bytes(Vec<u8>),
    /// No value.
    Flag,
    /// Nested attributes (also the entries of an nlctrl-style array, whose
    /// `kind` is the entry number).
    Nested(Vec<Attr>),
}

impl Attr {
    /// A u8 attribute.
    pub fn u8(kind: u16, v: u8) -> Attr {
        Attr {
            kind,
            value: AttrValue::U8(v),
        }
    }
    /// A u16 attribute.
    pub fn u16(kind: u16, v: u16) -> Attr {
        Attr {
            kind,
            value: AttrValue::U16(v),
        }
    }
    /// A u32 attribute.
    pub fn u32(kind: u16, v: u32) -> Attr {
        Attr {
            kind,
            value: AttrValue::U32(v),
        }
    }
    /// A u64 attribute.
    pub fn u64(kind: u16, v: u64) -> Attr {
        Attr {
            kind,
            value: AttrValue::U64(v),
        }
    }
    /// A string attribute (the NUL is added on emission).
    pub fn str(kind: u16, v: impl Into<String>) -> Attr {
        Attr {
            kind,
            value: AttrValue::Str(v.into()),
        }
    }
    /// A binary attribute.
    pub fn bytes(kind: u16, v: impl Into<Vec<u8>>) -> Attr {
        Attr {
            kind,
            value: AttrValue::Bytes(v.into()),
        }
    }
    /// A flag attribute.
    pub fn flag(kind: u16) -> Attr {
        Attr {
            kind,
            value: AttrValue::Flag,
        }
    }
    /// A nested attribute.
    pub fn nested(kind: u16, attrs: Vec<Attr>) -> Attr {
        Attr {
            kind,
            value: AttrValue::Nested(attrs),
        }
    }
    /// An nlctrl-style array: each element becomes a nested entry numbered
    /// from 1.
    pub fn indexed(kind: u16, entries: Vec<Vec<Attr>>) -> Attr {
        let entries = entries
            .into_iter()
            .zip(1u16..)
            .map(|(attrs, i)| Attr::nested(i, attrs))
            .collect();
        Attr::nested(kind, entries)
    }

    /// Bytes the attribute takes on the wire, padding included.
    pub fn wire_len(&self) -> usize {
        self.buffer_len()
    }

    /// Whether every value in the tree fits in a 16-bit `nla_len`.
    pub fn fits(&self) -> bool {
        self.value_len() <= ATTR_VALUE_MAX
            && match &self.value {
                AttrValue::Nested(v) => v.iter().all(Attr::fits),
                _ => true,
            }
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match &self.value {
            AttrValue::U8(_) => 1,
            AttrValue::U16(_) => 2,
            AttrValue::U32(_) => 4,
            AttrValue::U64(_) => 8,
            AttrValue::Str(s) => s.len() + 1,
            AttrValue::Bytes(b) => b.len(),
            AttrValue::Flag => 0,
            AttrValue::Nested(v) => v.as_slice().buffer_len(),
        }
    }

    fn kind(&self) -> u16 {
        let kind = self.kind & NLA_TYPE_MASK;
        match self.value {
            AttrValue::Nested(_) => kind | NLA_F_NESTED,
            _ => kind,
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        // The buffer is exactly value_len() bytes, so the emit helpers cannot fail.
        match &self.value {
            AttrValue::U8(v) => buf[0] = *v,
            AttrValue::U16(v) => emit_u16(buf, *v).expect("2-byte buffer"),
            AttrValue::U32(v) => emit_u32(buf, *v).expect("4-byte buffer"),
            AttrValue::U64(v) => emit_u64(buf, *v).expect("8-byte buffer"),
            AttrValue::Str(s) => {
                buf[..s.len()].copy_from_slice(s.as_bytes());
                buf[s.len()] = 0;
            }
            AttrValue::Bytes(b) => buf.copy_from_slice(b),
            AttrValue::Flag => {}
            AttrValue::Nested(v) => v.as_slice().emit(buf),
        }
    }
}

/// Emits attributes one after the other, appending to `out`.
///
/// # Panics
///
/// If an attribute value exceeds [`ATTR_VALUE_MAX`] bytes (see [`Attr::fits`]).
pub fn emit_attrs(attrs: &[Attr], out: &mut Vec<u8>) {
    for a in attrs {
        assert!(
            a.fits(),
            "attribute {} does not fit in a 16-bit nla_len",
            a.kind
        );
    }
    let start = out.len();
    out.resize(start + attrs.buffer_len(), 0);
    attrs.emit(&mut out[start..]);
}

/// An attribute that failed its policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct AttrError {
    /// Offset of the offending attribute (or of the truncated bytes) from the
    /// start of the message's nlmsghdr.
    pub offset: u32,
    /// What is wrong, naming the attribute: `attribute PROP_NAME (9): ...`.
    pub message: String,
}

/// What the decoder does with an attribute type the policy does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// Refuse it (requests: the daemon validates strictly).
    Reject,
    /// Keep its raw value as [`AttrValue::Bytes`] (replies: a newer daemon may
    /// add attributes an older client does not know).
    Keep,
}

/// Decodes `bytes` against `policy`, strictly: any violation of the policy is
/// an error.
///
/// `base_offset` is the offset of `bytes` from the start of the message's
/// nlmsghdr (20 for the attributes of a genetlink message without a family
/// header); error offsets are computed from it.
pub fn decode_attrs(
    policy: &'static [AttrSpec],
    bytes: &[u8],
    base_offset: usize,
) -> Result<Vec<Attr>, AttrError> {
    decode_attrs_with(policy, bytes, base_offset, Unknown::Reject)
}

/// Decodes `bytes` against `policy`, choosing what happens to unknown types.
pub fn decode_attrs_with(
    policy: &'static [AttrSpec],
    bytes: &[u8],
    base_offset: usize,
    unknown: Unknown,
) -> Result<Vec<Attr>, AttrError> {
    Decoder { unknown }.level(Level::Plain(policy), bytes, base_offset, None)
}

#[derive(Clone, Copy)]
enum Level {
    Plain(&'static [AttrSpec]),
    /// The entries of an nlctrl-style array, each described by the policy.
    Indexed(&'static [AttrSpec]),
}

impl Level {
    /// The policy entry of `kind` and its index; none for array entries,
    /// whose numbers are indices, not types.
    fn find(self, kind: u16) -> Option<(usize, &'static AttrSpec)> {
        match self {
            Level::Plain(p) => p.iter().enumerate().find(|(_, a)| a.id == kind),
            Level::Indexed(_) => None,
        }
    }
}

struct Decoder {
    unknown: Unknown,
}

fn label(spec: Option<&AttrSpec>, kind: u16, indexed: bool) -> String {
    match spec {
        _ if indexed => format!("entry {kind}"),
        Some(s) => format!("attribute {} ({})", s.name, s.id),
        None => format!("attribute type {kind}"),
    }
}

fn err(offset: usize, message: String) -> AttrError {
    AttrError {
        offset: u32::try_from(offset).unwrap_or(u32::MAX),
        message,
    }
}

impl Decoder {
    fn level(
        &self,
        level: Level,
        bytes: &[u8],
        base: usize,
        parent: Option<&str>,
    ) -> Result<Vec<Attr>, AttrError> {
        let within = |what: String| match parent {
            Some(p) => format!("{what} inside {p}"),
            None => what,
        };
        let end_of = || match parent {
            Some(p) => p.to_string(),
            None => "the message".to_string(),
        };
        let policy = match level {
            Level::Plain(p) | Level::Indexed(p) => p,
        };
        let indexed = matches!(level, Level::Indexed(_));
        let name_of = |kind: u16| label(level.find(kind).map(|(_, s)| s), kind, indexed);
        let mut seen = vec![false; policy.len()];
        let mut out = Vec::new();
        for item in raw_attrs(bytes) {
            let raw = match item {
                Ok(raw) => raw,
                Err(RawAttrError::Truncated { at, rest }) => {
                    return Err(err(
                        base + at,
                        within(format!(
                            "truncated attribute header: {} bytes left, an attribute header is 4 bytes",
                            rest.len()
                        )),
                    ));
                }
                Err(RawAttrError::BadLength {
                    at,
                    len,
                    raw_type,
                    rest,
                }) => {
                    let name = name_of(raw_type & NLA_TYPE_MASK);
                    return Err(if len < NLA_HEADER_SIZE {
                        err(
                            base + at,
                            within(format!(
                                "{name}: length {len} is shorter than the 4-byte attribute header"
                            )),
                        )
                    } else {
                        err(
                            base + at,
                            format!(
                                "{name}: length {len} runs past the end of {} ({} bytes left)",
                                end_of(),
                                rest.len()
                            ),
                        )
                    });
                }
            };
            let at = base + raw.at;
            let (kind, value, nested_flag) = (raw.kind(), raw.value, raw.nested());
            let spec = level.find(kind);
            let decoded = if indexed {
                let name = name_of(kind);
                if !nested_flag {
                    return Err(err(
                        at,
                        within(format!("{name}: array entry without NLA_F_NESTED")),
                    ));
                }
                let here = match parent {
                    Some(p) => format!("{name} of {p}"),
                    None => name.clone(),
                };
                Attr::nested(
                    kind,
                    self.level(
                        Level::Plain(policy),
                        value,
                        at + NLA_HEADER_SIZE,
                        Some(&here),
                    )?,
                )
            } else {
                match spec {
                    Some((i, s)) => {
                        if seen[i] && !s.repeat {
                            let name = name_of(kind);
                            return Err(err(at, within(format!("{name}: given more than once"))));
                        }
                        seen[i] = true;
                        Attr {
                            kind,
                            value: self.value(s, value, nested_flag, at)?,
                        }
                    }
                    None => match self.unknown {
                        Unknown::Keep => Attr::bytes(kind, value),
                        Unknown::Reject => {
                            return Err(err(at, within(format!("unknown attribute type {kind}"))));
                        }
                    },
                }
            };
            out.push(decoded);
        }
        Ok(out)
    }

    fn value(
        &self,
        spec: &AttrSpec,
        v: &[u8],
        nested_flag: bool,
        at: usize,
    ) -> Result<AttrValue, AttrError> {
        // The name is spelled out only for an error: a valid request
        // formats nothing.
        let name = || label(Some(spec), spec.id, false);
        let fail = |what: String| Err(err(at, format!("{}: {what}", name())));
        if spec.kind.is_nested() && !nested_flag {
            return fail("nested attribute without NLA_F_NESTED (0x8000)".into());
        }
        if !spec.kind.is_nested() && nested_flag {
            return fail(format!(
                "NLA_F_NESTED set on a {} attribute",
                spec.kind.type_name()
            ));
        }
        let fixed = |size: usize| {
            if v.len() == size {
                Ok(())
            } else {
                Err(err(
                    at,
                    format!(
                        "{}: a {} must be exactly {size} bytes, got {}",
                        name(),
                        spec.kind.type_name(),
                        v.len()
                    ),
                ))
            }
        };
        // Each parse_* below runs on a slice whose size was just checked.
        Ok(match spec.kind {
            AttrKind::U8 => {
                fixed(1)?;
                AttrValue::U8(parse_u8(v).expect("size checked"))
            }
            AttrKind::U16 => {
                fixed(2)?;
                AttrValue::U16(parse_u16(v).expect("size checked"))
            }
            AttrKind::U32 => {
                fixed(4)?;
                AttrValue::U32(parse_u32(v).expect("size checked"))
            }
            AttrKind::U64 => {
                fixed(8)?;
                AttrValue::U64(parse_u64(v).expect("size checked"))
            }
            AttrKind::Flag => {
                if !v.is_empty() {
                    return fail(format!("a flag carries no value, got {} bytes", v.len()));
                }
                AttrValue::Flag
            }
            AttrKind::Str { max } => {
                let Some((&0, text)) = v.split_last() else {
                    return fail("string is not NUL-terminated".into());
                };
                if text.len() > max {
                    return fail(format!("string exceeds {max} bytes"));
                }
                if text.contains(&0) {
                    return fail("string contains a NUL byte before its end".into());
                }
                match std::str::from_utf8(text) {
                    Ok(s) => AttrValue::Str(s.to_string()),
                    Err(_) => return fail("string is not valid UTF-8".into()),
                }
            }
            AttrKind::Binary { max } => {
                if v.len() > max {
                    return fail(format!("value exceeds {max} bytes (got {})", v.len()));
                }
                AttrValue::Bytes(v.to_vec())
            }
            AttrKind::Nested(p) => AttrValue::Nested(self.level(
                Level::Plain(p),
                v,
                at + NLA_HEADER_SIZE,
                Some(&name_of(spec)),
            )?),
            AttrKind::NestedIndexed(p) => AttrValue::Nested(self.level(
                Level::Indexed(p),
                v,
                at + NLA_HEADER_SIZE,
                Some(&name_of(spec)),
            )?),
        })
    }
}

fn name_of(spec: &AttrSpec) -> String {
    format!("{} ({})", spec.name, spec.id)
}

/// Getters on a list of decoded attributes. Each returns the first attribute
/// of the type, and `None` when it is absent or holds another kind of value.
pub trait AttrsExt {
    /// The first attribute of type `kind`.
    fn attr(&self, kind: u16) -> Option<&Attr>;
    /// Every attribute of type `kind`, in order.
    fn all(&self, kind: u16) -> impl Iterator<Item = &Attr>;
    /// A u8 value.
    fn get_u8(&self, kind: u16) -> Option<u8>;
    /// A u16 value.
    fn get_u16(&self, kind: u16) -> Option<u16>;
    /// A u32 value.
    fn get_u32(&self, kind: u16) -> Option<u32>;
    /// A u64 value.
    fn get_u64(&self, kind: u16) -> Option<u64>;
    /// A string value.
    fn get_str(&self, kind: u16) -> Option<&str>;
    /// A binary value.
    fn get_bytes(&self, kind: u16) -> Option<&[u8]>;
    /// The contents of a nested attribute.
    fn get_nested(&self, kind: u16) -> Option<&[Attr]>;
    /// Whether a flag (or any attribute) of type `kind` is present.
    fn has(&self, kind: u16) -> bool;
}

impl AttrsExt for [Attr] {
    fn attr(&self, kind: u16) -> Option<&Attr> {
        self.iter().find(|a| a.kind == kind)
    }
    fn all(&self, kind: u16) -> impl Iterator<Item = &Attr> {
        self.iter().filter(move |a| a.kind == kind)
    }
    fn get_u8(&self, kind: u16) -> Option<u8> {
        match self.attr(kind)?.value {
            AttrValue::U8(v) => Some(v),
            _ => None,
        }
    }
    fn get_u16(&self, kind: u16) -> Option<u16> {
        match self.attr(kind)?.value {
            AttrValue::U16(v) => Some(v),
            _ => None,
        }
    }
    fn get_u32(&self, kind: u16) -> Option<u32> {
        match self.attr(kind)?.value {
            AttrValue::U32(v) => Some(v),
            _ => None,
        }
    }
    fn get_u64(&self, kind: u16) -> Option<u64> {
        match self.attr(kind)?.value {
            AttrValue::U64(v) => Some(v),
            _ => None,
        }
    }
    fn get_str(&self, kind: u16) -> Option<&str> {
        match &self.attr(kind)?.value {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }
    fn get_bytes(&self, kind: u16) -> Option<&[u8]> {
        match &self.attr(kind)?.value {
            AttrValue::Bytes(b) => Some(b),
            _ => None,
        }
    }
    fn get_nested(&self, kind: u16) -> Option<&[Attr]> {
        match &self.attr(kind)?.value {
            AttrValue::Nested(v) => Some(v),
            _ => None,
        }
    }
    fn has(&self, kind: u16) -> bool {
        self.attr(kind).is_some()
    }
}

/// One attribute as it lies in a buffer, before any policy: the walk the
/// tools that list, summarise or rewrite raw bytes share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawAttr<'a> {
    /// Offset of the attribute header in the walked bytes.
    pub at: usize,
    /// `nla_len`: header and value, padding excluded.
    pub len: usize,
    /// `nla_type` with its flag bits.
    pub raw_type: u16,
    /// The value: `len - 4` bytes after the header.
    pub value: &'a [u8],
    /// The whole attribute, header and padding included (the padding
    /// stops at the end of the walked bytes).
    pub wire: &'a [u8],
}

impl<'a> RawAttr<'a> {
    /// The attribute type without flag bits.
    pub fn kind(&self) -> u16 {
        self.raw_type & NLA_TYPE_MASK
    }

    /// Whether `NLA_F_NESTED` is set.
    pub fn nested(&self) -> bool {
        self.raw_type & NLA_F_NESTED != 0
    }

    /// The padding after the value.
    pub fn padding(&self) -> &'a [u8] {
        &self.wire[self.len..]
    }
}

/// Where a walk of raw attributes stopped: what is left cannot be an
/// attribute. The walk ends after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawAttrError<'a> {
    /// Fewer than 4 bytes left: no room for an attribute header.
    Truncated {
        /// Offset of the stray bytes.
        at: usize,
        /// The stray bytes.
        rest: &'a [u8],
    },
    /// An `nla_len` below 4 or past the end of the bytes.
    BadLength {
        /// Offset of the attribute header.
        at: usize,
        /// The `nla_len` read.
        len: usize,
        /// The `nla_type` read, flags included.
        raw_type: u16,
        /// The bytes from the header to the end.
        rest: &'a [u8],
    },
}

/// Walks `bytes` attribute by attribute, each starting on a 4-byte
/// boundary; bytes that cannot be an attribute end the walk with one
/// [`RawAttrError`]. Never panics on any input.
pub fn raw_attrs(bytes: &[u8]) -> RawAttrs<'_> {
    RawAttrs { bytes, pos: 0 }
}

/// The iterator of [`raw_attrs`].
#[derive(Clone, Debug)]
pub struct RawAttrs<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RawAttrs<'a> {
    type Item = Result<RawAttr<'a>, RawAttrError<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.pos;
        let rest = self.bytes.get(at..).filter(|r| !r.is_empty())?;
        let Some(header) = rest.get(..NLA_HEADER_SIZE) else {
            self.pos = self.bytes.len();
            return Some(Err(RawAttrError::Truncated { at, rest }));
        };
        let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let raw_type = u16::from_ne_bytes([header[2], header[3]]);
        if len < NLA_HEADER_SIZE || len > rest.len() {
            self.pos = self.bytes.len();
            return Some(Err(RawAttrError::BadLength {
                at,
                len,
                raw_type,
                rest,
            }));
        }
        let padded = align4(len).min(rest.len());
        self.pos = at + padded;
        Some(Ok(RawAttr {
            at,
            len,
            raw_type,
            value: &rest[NLA_HEADER_SIZE..len],
            wire: &rest[..padded],
        }))
    }
}

#[cfg(test)]
mod tests;
