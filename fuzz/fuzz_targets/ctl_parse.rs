//! overlayctl's parsers of what a person types: property values of each
//! type (and their display, which must read back to the same bytes), MAC
//! addresses, `cache-set` entries and destinations, `-p K=V,...` lists,
//! and batch files (lines, words, quotes, continuations).
//!
//! Input: a selector byte, then the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tools::{
    batch, kv,
    target::{self, Mac},
    value::{format_value, parse_value, PropType},
};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    match sel % 6 {
        0..=3 => {
            let ty =
                [PropType::Uint, PropType::Int, PropType::Ip, PropType::Str][usize::from(sel % 6)];
            if let Ok(bytes) = parse_value(ty, &text) {
                let shown = format_value(ty, &bytes);
                let again = parse_value(ty, &shown).unwrap_or_else(|e| {
                    panic!("{text:?} displays as {shown:?}, which does not parse: {e}")
                });
                assert_eq!(
                    again, bytes,
                    "{text:?} displays as {shown:?}, which reads differently"
                );
            }
        }
        4 => {
            if let Ok(mac) = Mac::parse(&text) {
                let shown = mac.to_string();
                assert_eq!(
                    Mac::parse(&shown),
                    Ok(mac),
                    "{text:?} displays as {shown:?}"
                );
            }
            let _ = target::parse_entry(&text);
            let _ = target::parse_answer(&text);
            if let Ok(list) = kv::parse_list(&text) {
                let _ = kv::check_unique(&list);
            }
        }
        _ => {
            let _ = batch::split_words(&text);
            let _ = batch::parse(&text);
        }
    }
});
