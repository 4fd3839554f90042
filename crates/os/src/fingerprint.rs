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

/// The `SCAN(...)` line nmap writes before a subject fingerprint: how it
/// was taken (by whom, when, over which ports, from how far), so that a
/// reader can judge it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanLine {
    /// The scanner and its version (`V`).
    pub version: String,
    /// Month and day (`D`).
    pub month_day: (u32, u32),
    /// The open TCP port used, if any (`OT`), the closed TCP port (`CT`)
    /// and the closed UDP port (`CU`).
    pub open: Option<u16>,
    /// See `open`.
    pub closed: u16,
    /// See `open`.
    pub closed_udp: u16,
    /// The target's address is private (`PV`).
    pub private: bool,
    /// Its distance in hops (`DS`), if U1 gave it; a neighbour is 1.
    pub distance: Option<u8>,
    /// Good enough to compare (`G`): an open and a closed port were
    /// found, and no test is missing.
    pub good: bool,
    /// Unix time, written in hexadecimal (`TM`).
    pub unix_time: u64,
    /// The platform the scanner ran on (`P`).
    pub platform: String,
}

impl std::fmt::Display for ScanLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yn = |b: bool| if b { "Y" } else { "N" };
        write!(
            f,
            "SCAN(V={}%E=4%D={}/{}",
            self.version, self.month_day.0, self.month_day.1
        )?;
        if let Some(open) = self.open {
            write!(f, "%OT={open}")?;
        }
        write!(
            f,
            "%CT={}%CU={}%PV={}",
            self.closed,
            self.closed_udp,
            yn(self.private)
        )?;
        if let Some(d) = self.distance {
            // Direct (`D`) for a neighbour, else found by the ICMP quote.
            write!(f, "%DS={d}%DC={}", if d == 1 { "D" } else { "I" })?;
        }
        write!(
            f,
            "%G={}%TM={:X}%P={})",
            yn(self.good),
            self.unix_time,
            self.platform
        )
    }
}

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
    fn the_scan_line_is_nmaps_and_is_skipped_when_read_back() {
        let line = ScanLine {
            version: "portolan-0.1.0".into(),
            month_day: (12, 5),
            open: Some(22),
            closed: 1,
            closed_udp: 40_125,
            private: false,
            distance: Some(1),
            good: true,
            unix_time: 0x6932_0000,
            platform: "x86_64-linux".into(),
        };
        let text = line.to_string();
        assert_eq!(
            text,
            "SCAN(V=portolan-0.1.0%E=4%D=12/5%OT=22%CT=1%CU=40125%PV=N%DS=1%DC=D%G=Y%TM=69320000%P=x86_64-linux)"
        );
        let no_open = ScanLine {
            open: None,
            distance: None,
            good: false,
            ..line
        };
        assert!(!no_open.to_string().contains("%OT=") && !no_open.to_string().contains("%DS="));
        assert_eq!(Fingerprint::parse(&text), Fingerprint::default());
    }

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
