//! `KEY=VALUE` arguments: `prop-set`'s positional assignments and
//! `create -p`'s comma-separated lists.

use std::collections::HashSet;
use std::fmt;

/// One `KEY=VALUE` assignment taken from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The property name.
    pub key: String,
    /// The value text, still to be parsed by the property's type.
    pub value: String,
}

/// A malformed assignment argument; the text names the argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvError(pub String);

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KvError {}

/// Parses one `KEY=VALUE`. The value is everything after the first `=`, so
/// it may itself contain `=`; it may be empty (an empty STRING is valid).
pub fn parse_assignment(arg: &str) -> Result<Assignment, KvError> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(KvError(format!("\"{arg}\": expected KEY=VALUE")));
    };
    if key.is_empty() {
        return Err(KvError(format!(
            "\"{arg}\": empty property name before '='"
        )));
    }
    Ok(Assignment {
        key: key.to_string(),
        value: value.to_string(),
    })
}

/// Parses a `-p` argument, `KEY=VALUE[,KEY=VALUE...]`. Values cannot contain
/// commas in this form.
pub fn parse_list(arg: &str) -> Result<Vec<Assignment>, KvError> {
    if !arg.contains(',') {
        return parse_assignment(arg).map(|a| vec![a]);
    }
    arg.split(',')
        .map(|item| {
            if item.is_empty() {
                Err(KvError(format!(
                    "\"{arg}\": empty entry in a KEY=VALUE,KEY=VALUE list"
                )))
            } else {
                parse_assignment(item).map_err(|e| KvError(format!("\"{arg}\": entry {e}")))
            }
        })
        .collect()
}

/// Refuses a property assigned twice: which of the two would win is not
/// obvious to the user, so neither is sent.
pub fn check_unique(list: &[Assignment]) -> Result<(), KvError> {
    let mut seen = HashSet::new();
    for a in list {
        if !seen.insert(a.key.as_str()) {
            return Err(KvError(format!("property {} given more than once", a.key)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(key: &str, value: &str) -> Assignment {
        Assignment {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn single() {
        assert_eq!(parse_assignment("mtu=1400").unwrap(), a("mtu", "1400"));
        assert_eq!(parse_assignment("s=").unwrap(), a("s", ""));
        assert_eq!(parse_assignment("s=a=b,c").unwrap(), a("s", "a=b,c"));
        assert_eq!(
            parse_assignment("vxlan/listen_ip=::1").unwrap(),
            a("vxlan/listen_ip", "::1")
        );
    }

    #[test]
    fn single_errors() {
        assert_eq!(
            parse_assignment("mtu").unwrap_err().0,
            "\"mtu\": expected KEY=VALUE"
        );
        assert_eq!(
            parse_assignment("=5").unwrap_err().0,
            "\"=5\": empty property name before '='"
        );
        assert!(parse_assignment("")
            .unwrap_err()
            .0
            .contains("expected KEY=VALUE"));
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("mtu=1400").unwrap(), vec![a("mtu", "1400")]);
        assert_eq!(
            parse_list("vxlan/listen_ip=10.0.0.1,direct/dest_port=4789").unwrap(),
            vec![
                a("vxlan/listen_ip", "10.0.0.1"),
                a("direct/dest_port", "4789")
            ]
        );
        assert_eq!(parse_list("a=,b=").unwrap(), vec![a("a", ""), a("b", "")]);
    }

    #[test]
    fn list_errors() {
        assert_eq!(
            parse_list("mtu=1400,vnetid").unwrap_err().0,
            "\"mtu=1400,vnetid\": entry \"vnetid\": expected KEY=VALUE"
        );
        assert_eq!(
            parse_list("mtu").unwrap_err().0,
            "\"mtu\": expected KEY=VALUE"
        );
        assert!(parse_list("").unwrap_err().0.contains("expected KEY=VALUE"));
        for bad in ["a=1,,b=2", "a=1,", ",", ",a=1"] {
            let e = parse_list(bad).unwrap_err().0;
            assert!(e.starts_with(&format!("\"{bad}\": empty entry")), "{e}");
        }
        assert!(parse_list("a=1,=2")
            .unwrap_err()
            .0
            .contains("entry \"=2\": empty property name"));
    }

    #[test]
    fn duplicates() {
        assert!(check_unique(&[a("x", "1"), a("y", "1")]).is_ok());
        assert_eq!(
            check_unique(&[a("x", "1"), a("y", "1"), a("x", "2")])
                .unwrap_err()
                .0,
            "property x given more than once"
        );
    }
}
