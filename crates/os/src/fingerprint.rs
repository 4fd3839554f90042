//! An observed fingerprint: the values the tests computed from one host's
//! answers, and which tests are missing because their probes went
//! unanswered.
//!
//! Written as nmap writes a subject fingerprint (`T1(R=Y%DF=Y%…)`, one
//! test a line), so that it can be read back by [`Fingerprint::parse`]
//! and compared with nmap's own.

use crate::db::TESTS;

/// The values of one test, attribute by attribute, in nmap's order.
pub type TestValues = Vec<(&'static str, String)>;

/// What one host's answers gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// By index in [`TESTS`]; `None` for a test with no answer to compute
    /// it from (missing, not wrong).
    pub tests: [Option<TestValues>; 13],
}

impl Fingerprint {
    /// The value of `attribute` in test `test`.
    pub fn get(&self, test: usize, attribute: &str) -> Option<&str> {
        self.tests
            .get(test)?
            .as_ref()?
            .iter()
            .find(|(a, _)| *a == attribute)
            .map(|(_, v)| v.as_str())
    }

    /// The names of the tests that are missing.
    pub fn missing(&self) -> Vec<&'static str> {
        TESTS
            .iter()
            .zip(&self.tests)
            .filter(|(_, t)| t.is_none())
            .map(|(name, _)| *name)
            .collect()
    }

    /// Reads a fingerprint written by [`Fingerprint`]'s `Display` (or a
    /// subject fingerprint of nmap's, one test a line); lines it does not
    /// know are skipped, attributes it does not know are dropped.
    pub fn parse(text: &str) -> Fingerprint {
        let mut fp = Fingerprint::default();
        for line in text.lines() {
            let line = line.trim();
            let Some((name, body)) = line.split_once('(') else {
                continue;
            };
            let Some(test) = crate::db::test_index(name) else {
                continue;
            };
            let body = body.strip_suffix(')').unwrap_or(body);
            let mut values = Vec::new();
            for pair in body.split('%') {
                if let Some((attr, value)) = pair.split_once('=')
                    && let Some(known) = attribute_name(attr)
                {
                    values.push((known, value.to_string()));
                }
            }
            fp.tests[test] = Some(values);
        }
        fp
    }
}

/// The attribute names tests write, as `'static` names.
const ATTRIBUTES: [&str; 43] = [
    "SP", "GCD", "ISR", "TI", "CI", "II", "SS", "TS", "O1", "O2", "O3", "O4", "O5", "O6", "W1",
    "W2", "W3", "W4", "W5", "W6", "R", "DF", "T", "TG", "W", "O", "CC", "Q", "S", "A", "F", "RD",
    "IPL", "UN", "RIPL", "RID", "RIPCK", "RUCK", "RUD", "DFI", "CD", "SCAN", "V",
];

fn attribute_name(name: &str) -> Option<&'static str> {
    ATTRIBUTES.iter().copied().find(|a| *a == name)
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (name, test) in TESTS.iter().zip(&self.tests) {
            let Some(values) = test else { continue };
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            write!(f, "{name}(")?;
            for (i, (attr, value)) in values.iter().enumerate() {
                if i > 0 {
                    f.write_str("%")?;
                }
                write!(f, "{attr}={value}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_fingerprints_read_back_and_list_what_is_missing() {
        let mut fp = Fingerprint::default();
        fp.tests[4] = Some(vec![
            ("R", "Y".into()),
            ("DF", "Y".into()),
            ("Q", String::new()),
        ]);
        fp.tests[12] = Some(vec![("R", "Y".into()), ("CD", "S".into())]);
        let text = fp.to_string();
        assert_eq!(text, "T1(R=Y%DF=Y%Q=)\nIE(R=Y%CD=S)");
        assert_eq!(Fingerprint::parse(&text), fp);
        assert_eq!(fp.get(4, "DF"), Some("Y"));
        assert_eq!(fp.missing().len(), 11);
        assert!(fp.missing().contains(&"U1") && !fp.missing().contains(&"T1"));
    }
}
