//! Output: aligned text tables and their JSON form.
//!
//! Every listing is built once as a [`Table`] and then rendered either as
//! text or as JSON, so the two forms always carry the same values.

use serde_json::{Map, Value};

/// A JSON object as `-j` prints it. serde_json is built with
/// `preserve_order`, so members keep their insertion order (the column
/// order, then what a listing adds).
pub type Object = Map<String, Value>;

/// One row of a table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// One cell per column.
    pub cells: Vec<String>,
    /// Lines printed under the row in text form, indented (verbose detail).
    pub detail: Vec<String>,
    /// Members added after the columns in JSON form.
    pub extra: Object,
}

impl Row {
    /// A row of plain cells.
    pub fn new(cells: Vec<String>) -> Row {
        Row {
            cells,
            ..Row::default()
        }
    }
}

/// A listing: upper-case column headers and rows of cells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Column headers, upper case (`LINK`).
    pub headers: Vec<&'static str>,
    /// The rows, in display order.
    pub rows: Vec<Row>,
}

/// Indentation of a row's detail lines.
const DETAIL_INDENT: &str = "    ";
/// Spaces between two columns.
const GAP: usize = 2;

impl Table {
    /// An empty table with these headers.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row of plain cells.
    pub fn push(&mut self, cells: Vec<String>) {
        self.rows.push(Row::new(cells));
    }

    /// The text form: a header line, then one line per row, columns
    /// left-aligned and separated by at least two spaces, no trailing
    /// blanks. Each line ends with a newline.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(&row.cells) {
                *w = (*w).max(width(cell));
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.zip(&widths).enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(GAP));
                }
                out.push_str(cell);
                out.push_str(&" ".repeat(w - width(cell)));
            }
            let trimmed = out.trim_end_matches(' ').len();
            out.truncate(trimmed);
            out.push('\n');
            out
        };
        let mut out = line(&mut self.headers.iter().copied());
        for row in &self.rows {
            out.push_str(&line(&mut row.cells.iter().map(String::as_str)));
            for d in &row.detail {
                out.push_str(DETAIL_INDENT);
                out.push_str(d);
                out.push('\n');
            }
        }
        out
    }

    /// The rows as JSON objects keyed by the lower-case headers, in column
    /// order, followed by each row's extra members.
    pub fn objects(&self) -> Vec<Object> {
        self.rows
            .iter()
            .map(|row| {
                let mut members: Object = self
                    .headers
                    .iter()
                    .zip(&row.cells)
                    .map(|(h, c)| (h.to_lowercase(), Value::from(c.as_str())))
                    .collect();
                members.extend(row.extra.clone());
                members
            })
            .collect()
    }

    /// The JSON form: a pretty-printed array of objects, ending with a
    /// newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.objects())
            .expect("strings, numbers, lists and objects always serialize");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> Object {
        match v {
            Value::Object(o) => o,
            _ => unreachable!("an object literal"),
        }
    }

    fn sample() -> Table {
        let mut t = Table::new(&["LINK", "ENCAP", "VNETID"]);
        t.push(vec!["ov0".into(), "vxlan".into(), "42".into()]);
        t.push(vec!["overlay-long".into(), "x".into(), "16777215".into()]);
        t
    }

    #[test]
    fn text_alignment() {
        assert_eq!(
            sample().render(),
            "LINK          ENCAP  VNETID\n\
             ov0           vxlan  42\n\
             overlay-long  x      16777215\n"
        );
    }

    #[test]
    fn text_empty_table_prints_headers() {
        assert_eq!(Table::new(&["A", "BB"]).render(), "A  BB\n");
    }

    #[test]
    fn text_no_trailing_blanks_when_last_cell_short() {
        let mut t = Table::new(&["LINK", "DETAILS"]);
        t.push(vec!["a".into(), "".into()]);
        t.push(vec!["b".into(), "x y z".into()]);
        let out = t.render();
        assert_eq!(out, "LINK  DETAILS\na\nb     x y z\n");
        assert!(out.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn text_counts_characters_not_bytes() {
        let mut t = Table::new(&["A", "B"]);
        t.push(vec!["éé".into(), "1".into()]);
        t.push(vec!["abc".into(), "2".into()]);
        assert_eq!(t.render(), "A    B\néé   1\nabc  2\n");
    }

    #[test]
    fn text_detail_lines() {
        let mut t = Table::new(&["NAME", "KIND"]);
        t.rows.push(Row {
            cells: vec!["vxlan".into(), "encap".into()],
            detail: vec!["mtu UINT rw".into()],
            extra: Object::new(),
        });
        assert_eq!(t.render(), "NAME   KIND\nvxlan  encap\n    mtu UINT rw\n");
    }

    #[test]
    fn json_keys_in_column_order() {
        let out = sample().to_json();
        assert!(out.ends_with("]\n"));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"link": "ov0", "encap": "vxlan", "vnetid": "42"},
                {"link": "overlay-long", "encap": "x", "vnetid": "16777215"}
            ])
        );
        let link = out.find("\"link\"").unwrap();
        let encap = out.find("\"encap\"").unwrap();
        let vnetid = out.find("\"vnetid\"").unwrap();
        assert!(link < encap && encap < vnetid);
    }

    #[test]
    fn json_empty() {
        assert_eq!(Table::new(&["A"]).to_json(), "[]\n");
    }

    #[test]
    fn json_extra_members() {
        let mut t = Table::new(&["NAME"]);
        t.rows.push(Row {
            cells: vec!["vxlan".into()],
            detail: vec!["ignored in JSON".into()],
            extra: object(serde_json::json!({
                "props": [{"name": "vxlan/listen_port", "type": "UINT"}]
            })),
        });
        let v: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"name": "vxlan", "props": [{"name": "vxlan/listen_port", "type": "UINT"}]}
            ])
        );
    }

    #[test]
    fn json_numbers_and_objects() {
        let mut t = Table::new(&["LINK"]);
        t.rows.push(Row {
            cells: vec!["ov0".into()],
            detail: vec![],
            extra: object(serde_json::json!({
                "counters": {"rx_packets": u64::MAX, "drop_mtu": 0}
            })),
        });
        let out = t.to_json();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"link": "ov0", "counters": {"rx_packets": u64::MAX, "drop_mtu": 0}}
            ])
        );
        // Insertion order is kept inside nested objects too.
        assert!(out.find("rx_packets").unwrap() < out.find("drop_mtu").unwrap());
    }

    #[test]
    fn json_escapes() {
        let mut t = Table::new(&["DETAILS"]);
        t.push(vec!["quote \" and \\ and \n".into()]);
        let v: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(v[0]["details"], "quote \" and \\ and \n");
    }
}
