//! The nmap-os-db format: a `MatchPoints` section (the weight of each
//! attribute of each test), then reference fingerprints, each a
//! `Fingerprint` name, `Class` lines (`vendor | family | generation |
//! device type`), `CPE` lines and test lines (`T1(R=Y%DF=Y%T=3B-45%…)`).
//!
//! [`Database::parse`] reads the text of such a file, nmap's own or
//! Portolan's (`data/portolan-os-db`), and stops at the first line it
//! cannot read with the line number and the text ([`DbError`]). Comments
//! (`#`) and blank lines are skipped. A reference test without an `R`
//! attribute says that the probe is answered (nmap's files leave `R=Y`
//! out of `U1` and `IE`), so it is read as `R=Y`.
//!
//! Read first: nmap.org/book/osdetect-fingerprint-format.html.

use std::path::Path;

use crate::error::DbError;
use crate::expr::Expr;

/// The tests of a fingerprint, in the order the format writes them.
pub const TESTS: [&str; 13] = [
    "SEQ", "OPS", "WIN", "ECN", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "U1", "IE",
];

/// The index of test `name` in [`TESTS`].
pub fn test_index(name: &str) -> Option<usize> {
    TESTS.iter().position(|t| *t == name)
}

/// The tests that answer or stay silent as a whole, with an `R`
/// attribute (`SEQ`, `OPS` and `WIN` are built from several answers).
pub fn has_response_attribute(test: usize) -> bool {
    test >= 3
}

/// One operating system class: `Class Linux | Linux | 5.X | general
/// purpose`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsClass {
    /// Who makes it ("Linux", "Microsoft").
    pub vendor: String,
    /// The family ("Linux", "Windows").
    pub family: String,
    /// The generation ("5.X"); `None` when the line leaves it empty.
    pub generation: Option<String>,
    /// The kind of device ("general purpose", "router").
    pub device_type: String,
}

/// One reference test: its attributes and the values they may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceTest {
    /// Attribute names and reference values, in the file's order.
    pub attributes: Vec<(String, Expr)>,
}

impl ReferenceTest {
    /// The reference value of `attribute`.
    pub fn get(&self, attribute: &str) -> Option<&Expr> {
        self.attributes
            .iter()
            .find(|(a, _)| a == attribute)
            .map(|(_, e)| e)
    }
}

/// One reference fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Its name ("Linux 5.0 - 5.14").
    pub name: String,
    /// The line of its `Fingerprint` line, from 1 (nmap's `line` in XML).
    pub line: usize,
    /// Its classes.
    pub classes: Vec<OsClass>,
    /// Its CPE names (without the `auto` marker).
    pub cpe: Vec<String>,
    /// Its tests, by index in [`TESTS`].
    pub tests: [Option<ReferenceTest>; 13],
}

/// The weight of each attribute of each test.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchPoints {
    /// By index in [`TESTS`]: attribute names and points.
    pub tests: [Vec<(String, u32)>; 13],
}

impl MatchPoints {
    /// The points of `attribute` of test `test`; 0 for one not listed.
    pub fn points(&self, test: usize, attribute: &str) -> u32 {
        self.tests
            .get(test)
            .and_then(|t| t.iter().find(|(a, _)| a == attribute))
            .map_or(0, |(_, p)| *p)
    }
}

/// A parsed database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Database {
    /// The weights.
    pub match_points: MatchPoints,
    /// The reference fingerprints, in the file's order.
    pub fingerprints: Vec<Reference>,
}

/// Where the parser is.
enum Section {
    Start,
    MatchPoints,
    Fingerprint,
}

impl Database {
    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// [`DbError::Read`] when it cannot be read, else as
    /// [`Database::parse`].
    pub fn load(path: &Path) -> Result<Database, DbError> {
        let text = std::fs::read(path).map_err(|io| DbError::Read {
            path: path.to_path_buf(),
            io,
        })?;
        // nmap's file is ASCII with a few Latin-1 names: read bytes as
        // Latin-1 rather than refuse them.
        let text: String = match String::from_utf8(text) {
            Ok(s) => s,
            Err(e) => e.into_bytes().into_iter().map(char::from).collect(),
        };
        Database::parse(&text)
    }

    /// Parses the text of a database file.
    ///
    /// # Errors
    /// The first line that cannot be read, with its number and text.
    pub fn parse(text: &str) -> Result<Database, DbError> {
        let mut db = Database::default();
        let mut section = Section::Start;
        let mut seen_points = false;
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let trimmed = raw.trim_end();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let syntax = |what: &'static str| DbError::Syntax {
                line,
                what,
                text: trimmed.to_string(),
            };
            if trimmed == "MatchPoints" {
                section = Section::MatchPoints;
                seen_points = true;
                continue;
            }
            if let Some(name) = trimmed.strip_prefix("Fingerprint ") {
                let name = name.trim();
                if name.is_empty() {
                    return Err(syntax("a fingerprint without a name"));
                }
                db.fingerprints.push(Reference {
                    name: name.to_string(),
                    line,
                    classes: Vec::new(),
                    cpe: Vec::new(),
                    tests: Default::default(),
                });
                section = Section::Fingerprint;
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix("Class ") {
                let Some(fp) = db
                    .fingerprints
                    .last_mut()
                    .filter(|_| matches!(section, Section::Fingerprint))
                else {
                    return Err(DbError::Orphan {
                        line,
                        text: trimmed.into(),
                    });
                };
                let fields: Vec<&str> = rest.split('|').map(str::trim).collect();
                let [vendor, family, generation, device_type] = fields[..] else {
                    return Err(syntax("a Class line needs four fields separated by |"));
                };
                if vendor.is_empty() || family.is_empty() || device_type.is_empty() {
                    return Err(syntax(
                        "a Class line needs a vendor, a family and a device type",
                    ));
                }
                fp.classes.push(OsClass {
                    vendor: vendor.into(),
                    family: family.into(),
                    generation: (!generation.is_empty()).then(|| generation.into()),
                    device_type: device_type.into(),
                });
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix("CPE ") {
                let Some(fp) = db
                    .fingerprints
                    .last_mut()
                    .filter(|_| matches!(section, Section::Fingerprint))
                else {
                    return Err(DbError::Orphan {
                        line,
                        text: trimmed.into(),
                    });
                };
                let mut words = rest.split_whitespace();
                let cpe = words.next().unwrap_or("");
                let marker = words.next();
                if !cpe.starts_with("cpe:/")
                    || !matches!(marker, None | Some("auto"))
                    || words.next().is_some()
                {
                    return Err(syntax(
                        "a CPE line is a cpe:/ name, optionally followed by auto",
                    ));
                }
                fp.cpe.push(cpe.into());
                continue;
            }
            // A test line: NAME(attr=value%attr=value).
            let Some((name, body)) = trimmed.split_once('(') else {
                return Err(syntax(
                    "not a test line, Fingerprint, Class, CPE or MatchPoints",
                ));
            };
            let Some(body) = body.strip_suffix(')') else {
                return Err(syntax("a test line ends with )"));
            };
            let Some(test) = test_index(name) else {
                return Err(syntax("unknown test name"));
            };
            match section {
                Section::Start => {
                    return Err(DbError::Orphan {
                        line,
                        text: trimmed.into(),
                    });
                }
                Section::MatchPoints => {
                    let slot = &mut db.match_points.tests[test];
                    if !slot.is_empty() {
                        return Err(DbError::Duplicate {
                            line,
                            test: name.into(),
                        });
                    }
                    for pair in body.split('%').filter(|p| !p.is_empty()) {
                        let Some((attr, value)) = pair.split_once('=') else {
                            return Err(syntax("an attribute is name=points"));
                        };
                        let Ok(points) = value.parse::<u32>() else {
                            return Err(syntax("points are a decimal number"));
                        };
                        slot.push((attr.to_string(), points));
                    }
                }
                Section::Fingerprint => {
                    let mut attributes = Vec::new();
                    for pair in body.split('%').filter(|p| !p.is_empty()) {
                        let Some((attr, value)) = pair.split_once('=') else {
                            return Err(syntax("an attribute is name=value"));
                        };
                        if attr.is_empty() || !attr.bytes().all(|b| b.is_ascii_alphanumeric()) {
                            return Err(syntax("an attribute name is letters and digits"));
                        }
                        let expr = Expr::parse(value).map_err(|_| {
                            syntax("a value is alternatives of literals, hex ranges or bounds")
                        })?;
                        attributes.push((attr.to_string(), expr));
                    }
                    if has_response_attribute(test) && !attributes.iter().any(|(a, _)| a == "R") {
                        attributes.insert(
                            0,
                            (
                                "R".to_string(),
                                Expr::parse("Y").unwrap_or(Expr(Vec::new())),
                            ),
                        );
                    }
                    let Some(fp) = db.fingerprints.last_mut() else {
                        return Err(DbError::Orphan {
                            line,
                            text: trimmed.into(),
                        });
                    };
                    if fp.tests[test].is_some() {
                        return Err(DbError::Duplicate {
                            line,
                            test: name.into(),
                        });
                    }
                    fp.tests[test] = Some(ReferenceTest { attributes });
                }
            }
        }
        if !seen_points && !db.fingerprints.is_empty() {
            return Err(DbError::NoMatchPoints);
        }
        Ok(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "\
# a comment
MatchPoints
SEQ(SP=25%GCD=75%TI=100)
T1(R=100%DF=20)
U1(R=50%IPL=100)

Fingerprint Lab Linux 6
Class Linux | Linux | 6.X | general purpose
CPE cpe:/o:linux:linux_kernel:6 auto
SEQ(SP=0-5%GCD=1-6%TI=Z)
T1(R=Y%DF=Y)
U1(IPL=164)

Fingerprint Lab router
Class Cisco | IOS || router
T1(R=N)
";

    #[test]
    fn a_small_file_parses_with_classes_cpe_and_implicit_r() {
        let db = Database::parse(SMALL).unwrap();
        assert_eq!(db.match_points.points(0, "GCD"), 75);
        assert_eq!(db.match_points.points(11, "R"), 50);
        assert_eq!(db.fingerprints.len(), 2);
        let linux = &db.fingerprints[0];
        assert_eq!((linux.name.as_str(), linux.line), ("Lab Linux 6", 7));
        assert_eq!(linux.classes[0].generation.as_deref(), Some("6.X"));
        assert_eq!(linux.cpe, ["cpe:/o:linux:linux_kernel:6"]);
        let u1 = linux.tests[11].as_ref().unwrap();
        assert!(u1.get("R").unwrap().matches("Y"));
        assert!(u1.get("IPL").unwrap().matches("164"));
        let router = &db.fingerprints[1];
        assert_eq!(router.classes[0].generation, None);
        assert!(
            router.tests[4]
                .as_ref()
                .unwrap()
                .get("R")
                .unwrap()
                .matches("N")
        );
    }

    #[test]
    fn malformed_files_name_the_line() {
        let cases = [
            ("MatchPoints\nSEQ(SP=x)\n", 2),
            ("MatchPoints\nFingerprint A\nXYZ(R=Y)\n", 3),
            ("MatchPoints\nFingerprint A\nT1(R=Y%DF=5-3)\n", 3),
            ("MatchPoints\nFingerprint A\nT1(R=Y\n", 3),
            ("MatchPoints\nFingerprint A\nClass a | b\n", 3),
            ("MatchPoints\nFingerprint A\nCPE linux\n", 3),
            ("MatchPoints\nFingerprint A\nT1(R=Y)\nT1(R=N)\n", 4),
            ("T1(R=Y)\n", 1),
            ("MatchPoints\nClass a | b | c | d\n", 2),
            ("garbage\n", 1),
        ];
        for (text, want) in cases {
            let err = Database::parse(text).unwrap_err();
            let line = match &err {
                DbError::Syntax { line, .. }
                | DbError::Orphan { line, .. }
                | DbError::Duplicate { line, .. } => *line,
                other => panic!("{text:?}: {other}"),
            };
            assert_eq!(line, want, "{text:?}: {err}");
            assert!(
                err.to_string().starts_with(&format!("line {want}:")),
                "{err}"
            );
        }
        assert!(matches!(
            Database::parse("Fingerprint A\nClass a | b | c | d\n"),
            Err(DbError::NoMatchPoints)
        ));
    }
}
