use super::*;
use crate::spec::{ctrl, overlay, AttrKind, AttrSpec};
use proptest::prelude::*;

fn emit(attrs: &[Attr]) -> Vec<u8> {
    let mut out = Vec::new();
    emit_attrs(attrs, &mut out);
    out
}

/// A raw attribute: header and value, padded.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((value.len() + 4) as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(value);
    v.resize(align4(v.len()), 0);
    v
}

fn nested(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
    nla(kind | NLA_F_NESTED, &parts.concat())
}

fn strict(policy: &'static [AttrSpec], bytes: &[u8]) -> Result<Vec<Attr>, AttrError> {
    decode_attrs(policy, bytes, 20)
}

fn fails(policy: &'static [AttrSpec], bytes: &[u8], offset: u32, message: &str) {
    let e = strict(policy, bytes).expect_err("decode should fail");
    assert_eq!(
        e,
        AttrError {
            offset,
            message: message.to_string()
        }
    );
}

#[cfg(target_endian = "little")]
#[test]
fn emits_known_bytes() {
    assert_eq!(
        emit(&[Attr::str(9, "mtu")]),
        [8, 0, 9, 0, b'm', b't', b'u', 0]
    );
    assert_eq!(
        emit(&[Attr::u64(5, 0x0102_0304_0506_0708)]),
        [12, 0, 5, 0, 8, 7, 6, 5, 4, 3, 2, 1]
    );
    assert_eq!(emit(&[Attr::u16(1, 33)]), [6, 0, 1, 0, 33, 0, 0, 0]);
    assert_eq!(
        emit(&[Attr::u8(1, 7), Attr::flag(2)]),
        [5, 0, 1, 0, 7, 0, 0, 0, 4, 0, 2, 0]
    );
    assert_eq!(
        emit(&[Attr::nested(
            18,
            vec![Attr::nested(19, vec![Attr::str(9, "a")])]
        )]),
        [16, 0, 18, 0x80, 12, 0, 19, 0x80, 6, 0, 9, 0, b'a', 0, 0, 0]
    );
    assert_eq!(
        emit(&[Attr::bytes(13, vec![1, 2, 3, 4, 5])]),
        [9, 0, 13, 0, 1, 2, 3, 4, 5, 0, 0, 0]
    );
    assert_eq!(
        emit(&[Attr::indexed(6, vec![vec![Attr::u32(1, 3)]])]),
        [16, 0, 6, 0x80, 12, 0, 1, 0x80, 8, 0, 1, 0, 3, 0, 0, 0]
    );
}

#[test]
fn decodes_a_property_list() {
    let prop = |name: &str, v: &[u8]| {
        Attr::nested(
            overlay::ATTR_PROP,
            vec![
                Attr::str(overlay::ATTR_PROP_NAME, name),
                Attr::bytes(overlay::ATTR_PROP_VALUE, v.to_vec()),
            ],
        )
    };
    let attrs = vec![
        Attr::str(overlay::ATTR_NAME, "ov0"),
        Attr::u64(overlay::ATTR_VNETID, 42),
        Attr::nested(
            overlay::ATTR_PROPS,
            vec![
                prop("mtu", &1400u64.to_ne_bytes()),
                prop("vxlan/listen_port", &[1, 2]),
            ],
        ),
    ];
    let back = strict(overlay::ATTRS, &emit(&attrs)).unwrap();
    assert_eq!(back, attrs);
    assert_eq!(back.get_str(overlay::ATTR_NAME), Some("ov0"));
    assert_eq!(back.get_u64(overlay::ATTR_VNETID), Some(42));
    assert_eq!(back.get_u32(overlay::ATTR_VNETID), None);
    let props = back.get_nested(overlay::ATTR_PROPS).unwrap();
    assert_eq!(props.all(overlay::ATTR_PROP).count(), 2);
    let first = props.attr(overlay::ATTR_PROP).unwrap();
    match &first.value {
        AttrValue::Nested(p) => assert_eq!(
            p.get_bytes(overlay::ATTR_PROP_VALUE),
            Some(&1400u64.to_ne_bytes()[..])
        ),
        other => panic!("{other:?}"),
    }
    assert!(back.has(overlay::ATTR_NAME) && !back.has(overlay::ATTR_LINKID));
}

#[test]
fn decodes_ctrl_arrays_with_repeated_entries() {
    let entry = |i: u16, id: u32| nested(i, &[nla(ctrl::CTRL_ATTR_OP_ID, &id.to_ne_bytes())]);
    // Entry numbers repeat by design in arrays.
    let bytes = nested(ctrl::CTRL_ATTR_OPS, &[entry(1, 3), entry(1, 4)]);
    let back = strict(ctrl::ATTRS, &bytes).unwrap();
    let ops = back.get_nested(ctrl::CTRL_ATTR_OPS).unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(
        ops[1],
        Attr::nested(1, vec![Attr::u32(ctrl::CTRL_ATTR_OP_ID, 4)])
    );
}

#[test]
fn truncated_header() {
    let mut b = nla(overlay::ATTR_LINKID, &1u32.to_ne_bytes());
    b.extend_from_slice(&[8, 0]);
    fails(
        overlay::ATTRS,
        &b,
        28,
        "truncated attribute header: 2 bytes left, an attribute header is 4 bytes",
    );
}

#[test]
fn length_below_header() {
    fails(
        overlay::ATTRS,
        &[2, 0, 1, 0],
        20,
        "attribute LINKID (1): length 2 is shorter than the 4-byte attribute header",
    );
}

#[test]
fn overrun_of_message_and_of_parent() {
    let mut b = nla(overlay::ATTR_NAME, b"ov0\0");
    b[0] = 40;
    fails(
        overlay::ATTRS,
        &b,
        20,
        "attribute NAME (2): length 40 runs past the end of the message (8 bytes left)",
    );
    // PROP claims 4 more bytes than PROPS holds.
    let mut prop = nested(
        overlay::ATTR_PROP,
        &[nla(overlay::ATTR_PROP_NAME, b"mtu\0")],
    );
    prop[0] += 4;
    let b = nested(overlay::ATTR_PROPS, &[prop]);
    fails(
        overlay::ATTRS,
        &b,
        24,
        "attribute PROP (19): length 16 runs past the end of PROPS (18) (12 bytes left)",
    );
}

#[test]
fn unknown_types() {
    fails(
        overlay::ATTRS,
        &nla(77, &[]),
        20,
        "unknown attribute type 77",
    );
    let b = nested(overlay::ATTR_PROPS, &[nla(overlay::ATTR_NAME, b"x\0")]);
    fails(
        overlay::ATTRS,
        &b,
        24,
        "unknown attribute type 2 inside PROPS (18)",
    );
    let kept = decode_attrs_with(overlay::ATTRS, &nla(77, &[1, 2]), 20, Unknown::Keep).unwrap();
    assert_eq!(kept, [Attr::bytes(77, vec![1, 2])]);
}

#[test]
fn fixed_sizes() {
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_VNETID, &[0; 4]),
        20,
        "attribute VNETID (5): a u64 must be exactly 8 bytes, got 4",
    );
    fails(
        ctrl::ATTRS,
        &nla(ctrl::CTRL_ATTR_FAMILY_ID, &[0; 4]),
        20,
        "attribute CTRL_ATTR_FAMILY_ID (1): a u16 must be exactly 2 bytes, got 4",
    );
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_LINKID, &[0; 5]),
        20,
        "attribute LINKID (1): a u32 must be exactly 4 bytes, got 5",
    );
}

#[test]
fn strings() {
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_NAME, b"ov0"),
        20,
        "attribute NAME (2): string is not NUL-terminated",
    );
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_NAME, b""),
        20,
        "attribute NAME (2): string is not NUL-terminated",
    );
    let long = [b"x".repeat(64), vec![0]].concat();
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_PROP_NAME, &long),
        20,
        "attribute PROP_NAME (9): string exceeds 63 bytes",
    );
    let ok = [b"x".repeat(63), vec![0]].concat();
    assert!(strict(overlay::ATTRS, &nla(overlay::ATTR_PROP_NAME, &ok)).is_ok());
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_NAME, b"a\0b\0"),
        20,
        "attribute NAME (2): string contains a NUL byte before its end",
    );
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_NAME, b"\xff\xfe\0"),
        20,
        "attribute NAME (2): string is not valid UTF-8",
    );
}

#[test]
fn binary_and_flag() {
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_PROP_VALUE, &[0; 257]),
        20,
        "attribute PROP_VALUE (13): value exceeds 256 bytes (got 257)",
    );
    assert!(strict(overlay::ATTRS, &nla(overlay::ATTR_PROP_VALUE, &[0; 256])).is_ok());
    const FLAGS: &[AttrSpec] = &[AttrSpec::new(1, "ON", AttrKind::Flag, "a flag")];
    fails(
        FLAGS,
        &nla(1, &[0; 4]),
        20,
        "attribute ON (1): a flag carries no value, got 4 bytes",
    );
    assert_eq!(strict(FLAGS, &nla(1, &[])).unwrap(), [Attr::flag(1)]);
}

#[test]
fn duplicates() {
    let b = [
        nla(overlay::ATTR_LINKID, &[0; 4]),
        nla(overlay::ATTR_LINKID, &[0; 4]),
    ]
    .concat();
    fails(
        overlay::ATTRS,
        &b,
        28,
        "attribute LINKID (1): given more than once",
    );
    // Twice PROP_NAME inside one PROP.
    let prop = nested(
        overlay::ATTR_PROP,
        &[
            nla(overlay::ATTR_PROP_NAME, b"a\0"),
            nla(overlay::ATTR_PROP_NAME, b"b\0"),
        ],
    );
    let b = [
        nla(overlay::ATTR_LINKID, &[0; 4]),
        nested(overlay::ATTR_PROPS, &[prop]),
    ]
    .concat();
    fails(
        overlay::ATTRS,
        &b,
        44,
        "attribute PROP_NAME (9): given more than once inside PROP (19)",
    );
    // Repeated POSSIBLE_VALUE is a list.
    let b = nested(
        overlay::ATTR_PROP_POSSIBLE,
        &[nla(28, b"a\0"), nla(28, b"b\0")],
    );
    assert_eq!(
        strict(overlay::ATTRS, &b).unwrap()[0].value,
        AttrValue::Nested(vec![Attr::str(28, "a"), Attr::str(28, "b")])
    );
}

#[test]
fn nested_flag() {
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_PROPS, &[]),
        20,
        "attribute PROPS (18): nested attribute without NLA_F_NESTED (0x8000)",
    );
    fails(
        overlay::ATTRS,
        &nla(overlay::ATTR_LINKID | NLA_F_NESTED, &[0; 4]),
        20,
        "attribute LINKID (1): NLA_F_NESTED set on a u32 attribute",
    );
    let b = nla(ctrl::CTRL_ATTR_OPS | NLA_F_NESTED, &nla(1, &[]));
    fails(
        ctrl::ATTRS,
        &b,
        24,
        "entry 1: array entry without NLA_F_NESTED inside CTRL_ATTR_OPS (6)",
    );
}

#[test]
fn errors_inside_array_entries_name_the_entry() {
    let entry = nested(2, &[nla(ctrl::CTRL_ATTR_OP_ID, &[0; 2])]);
    let b = nested(ctrl::CTRL_ATTR_OPS, &[entry]);
    fails(
        ctrl::ATTRS,
        &b,
        28,
        "attribute CTRL_ATTR_OP_ID (1): a u32 must be exactly 4 bytes, got 2",
    );
    let entry = nested(2, &[nla(9, &[])]);
    let b = nested(ctrl::CTRL_ATTR_OPS, &[entry]);
    fails(
        ctrl::ATTRS,
        &b,
        28,
        "unknown attribute type 9 inside entry 2 of CTRL_ATTR_OPS (6)",
    );
}

#[test]
fn unpadded_last_attribute_is_accepted() {
    let mut b = nla(overlay::ATTR_NAME, b"ab\0");
    b.truncate(7);
    assert_eq!(
        strict(overlay::ATTRS, &b).unwrap(),
        [Attr::str(overlay::ATTR_NAME, "ab")]
    );
}

#[test]
fn oversized_values_do_not_fit() {
    assert!(Attr::bytes(1, vec![0; ATTR_VALUE_MAX]).fits());
    assert!(!Attr::bytes(1, vec![0; ATTR_VALUE_MAX + 1]).fits());
    assert!(!Attr::nested(
        1,
        vec![
            Attr::bytes(2, vec![0; 40000]),
            Attr::bytes(3, vec![0; 40000])
        ]
    )
    .fits());
}

fn arb_str(max: usize) -> BoxedStrategy<String> {
    let chars = max.min(80) / 4;
    proptest::string::string_regex(&format!("[a-z0-9_/ é€🦀]{{0,{chars}}}"))
        .expect("valid regex")
        .boxed()
}

fn arb_value(spec: &'static AttrSpec) -> BoxedStrategy<AttrValue> {
    match spec.kind {
        AttrKind::U8 => any::<u8>().prop_map(AttrValue::U8).boxed(),
        AttrKind::U16 => any::<u16>().prop_map(AttrValue::U16).boxed(),
        AttrKind::U32 => any::<u32>().prop_map(AttrValue::U32).boxed(),
        AttrKind::U64 => any::<u64>().prop_map(AttrValue::U64).boxed(),
        AttrKind::Str { max } => arb_str(max).prop_map(AttrValue::Str).boxed(),
        AttrKind::Binary { max } => proptest::collection::vec(any::<u8>(), 0..=max.min(64))
            .prop_map(AttrValue::Bytes)
            .boxed(),
        AttrKind::Flag => Just(AttrValue::Flag).boxed(),
        AttrKind::Nested(p) => arb_attrs(p).prop_map(AttrValue::Nested).boxed(),
        AttrKind::NestedIndexed(p) => proptest::collection::vec(arb_attrs(p), 0..3)
            .prop_map(|entries| Attr::indexed(0, entries).value)
            .boxed(),
    }
}

/// Attribute lists valid for `policy`: each attribute at most once (up to 3
/// times when repeatable), in any order.
fn arb_attrs(policy: &'static [AttrSpec]) -> BoxedStrategy<Vec<Attr>> {
    let parts: Vec<BoxedStrategy<Vec<Attr>>> = policy
        .iter()
        .map(|s| {
            let n = if s.repeat { 0..=3usize } else { 0..=1usize };
            proptest::collection::vec(arb_value(s), n)
                .prop_map(move |vals| {
                    vals.into_iter()
                        .map(|value| Attr { kind: s.id, value })
                        .collect()
                })
                .boxed()
        })
        .collect();
    parts.prop_map(|v| v.concat()).prop_shuffle().boxed()
}

proptest! {
    #[test]
    fn overlay_trees_round_trip(attrs in arb_attrs(overlay::ATTRS)) {
        let bytes = emit(&attrs);
        prop_assert_eq!(bytes.len() % 4, 0);
        prop_assert_eq!(decode_attrs(overlay::ATTRS, &bytes, 20).unwrap(), attrs);
    }

    #[test]
    fn ctrl_trees_round_trip(attrs in arb_attrs(ctrl::ATTRS)) {
        let bytes = emit(&attrs);
        prop_assert_eq!(decode_attrs(ctrl::ATTRS, &bytes, 20).unwrap(), attrs);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_attrs(overlay::ATTRS, &bytes, 20);
        let _ = decode_attrs_with(ctrl::ATTRS, &bytes, 20, Unknown::Keep);
    }

    #[test]
    fn raw_walk_covers_every_byte_once(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        // Whatever the bytes, the walk lays its pieces end to end over
        // all of them, and an error only ever comes last.
        let mut pos = 0;
        let items: Vec<_> = raw_attrs(&bytes).collect();
        for (i, item) in items.iter().enumerate() {
            match item {
                Ok(a) => {
                    prop_assert_eq!(a.at, pos);
                    prop_assert_eq!(a.wire, &bytes[pos..pos + a.wire.len()]);
                    pos += a.wire.len();
                }
                Err(RawAttrError::Truncated { at, rest } | RawAttrError::BadLength { at, rest, .. }) => {
                    prop_assert_eq!(*at, pos);
                    prop_assert_eq!(i, items.len() - 1);
                    pos += rest.len();
                }
            }
        }
        prop_assert_eq!(pos, bytes.len());
    }
}

#[test]
fn raw_walk_reads_what_emit_wrote() {
    let attrs = vec![
        Attr::str(overlay::ATTR_NAME, "ov0"),
        Attr::nested(overlay::ATTR_PROPS, vec![Attr::u32(1, 7)]),
    ];
    let bytes = emit(&attrs);
    let walked: Vec<_> = raw_attrs(&bytes).map(Result::unwrap).collect();
    assert_eq!(walked.len(), 2);
    assert_eq!(
        (walked[0].at, walked[0].len, walked[0].kind()),
        (0, 8, overlay::ATTR_NAME)
    );
    assert_eq!(walked[0].value, b"ov0\0");
    assert!(walked[0].padding().is_empty());
    assert_eq!((walked[1].at, walked[1].kind()), (8, overlay::ATTR_PROPS));
    assert!(walked[1].nested() && !walked[0].nested());
    assert_eq!(walked[1].value.len(), 8);
}

#[test]
fn raw_walk_stops_at_what_is_not_an_attribute() {
    let mut bytes = emit(&[Attr::u32(1, 7)]);
    bytes.extend_from_slice(&[2, 0]);
    let items: Vec<_> = raw_attrs(&bytes).collect();
    assert_eq!(
        items[1],
        Err(RawAttrError::Truncated {
            at: 8,
            rest: &[2, 0]
        })
    );
    let bad = [40u8, 0, 5, 0, 1, 2, 3, 4];
    assert_eq!(
        raw_attrs(&bad).collect::<Vec<_>>(),
        vec![Err(RawAttrError::BadLength {
            at: 0,
            len: 40,
            raw_type: 5,
            rest: &bad
        })]
    );
}
