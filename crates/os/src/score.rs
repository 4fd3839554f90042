//! Matching an observed fingerprint against a database, as nmap scores
//! it: each attribute both sides have is worth its `MatchPoints`; the
//! accuracy of a reference is the points matched over the points
//! possible. A test the host left unanswered is missing from the observed
//! fingerprint and so from the possible points: a firewall that eats
//! T2-T7 or U1 no longer drags every score down.
//!
//! Classes are summed over the matches as nmap does: a class is as
//! accurate as its best fingerprint. Allocation: one score per reference
//! (a few thousand), sorted once.

use crate::db::{Database, OsClass, Reference};
use crate::fingerprint::Fingerprint;

/// nmap's threshold for listing a guess (`OSSCAN_GUESS_THRESHOLD`).
pub const GUESS_THRESHOLD: f64 = 0.85;

/// How many matches a classification keeps at most.
pub const MAX_MATCHES: usize = 10;

/// One reference's score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Index of the reference in [`Database::fingerprints`].
    pub reference: usize,
    /// Points matched.
    pub matched: u32,
    /// Points possible.
    pub possible: u32,
}

impl Score {
    /// Matched over possible, 0 when nothing could be compared.
    pub fn accuracy(&self) -> f64 {
        if self.possible == 0 {
            0.0
        } else {
            f64::from(self.matched) / f64::from(self.possible)
        }
    }

    /// The accuracy in whole percent, rounded down as nmap prints it.
    pub fn percent(&self) -> u8 {
        (self.accuracy() * 100.0).floor().clamp(0.0, 100.0) as u8
    }
}

/// Scores `observed` against one reference.
pub fn score(db: &Database, reference: usize, observed: &Fingerprint) -> Score {
    let mut out = Score {
        reference,
        matched: 0,
        possible: 0,
    };
    let Some(r) = db.fingerprints.get(reference) else {
        return out;
    };
    for (test, (want, got)) in r.tests.iter().zip(&observed.tests).enumerate() {
        let (Some(want), Some(got)) = (want, got) else {
            continue;
        };
        for (attr, expr) in &want.attributes {
            let Some((_, value)) = got.iter().find(|(a, _)| a == attr) else {
                continue;
            };
            let points = db.match_points.points(test, attr);
            out.possible += points;
            if expr.matches(value) {
                out.matched += points;
            }
        }
    }
    out
}

/// A class and how accurate its best match is.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassScore {
    /// The class.
    pub class: OsClass,
    /// The best accuracy of a match with it.
    pub accuracy: f64,
    /// The CPE names of the matches with it.
    pub cpe: Vec<String>,
}

/// What a database says of one host.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    /// The best matches, best first, at most [`MAX_MATCHES`], each at or
    /// above the threshold asked.
    pub matches: Vec<Score>,
    /// Whether the best match is perfect (every possible point matched).
    pub perfect: bool,
    /// The classes of the matches, best first.
    pub classes: Vec<ClassScore>,
    /// The tests missing from the observed fingerprint.
    pub missing: Vec<&'static str>,
}

/// Scores `observed` against every reference and keeps those at or above
/// `threshold` (0 to 1): the perfect matches alone when there are any and
/// `guess` is false, as nmap lists them.
pub fn classify(
    db: &Database,
    observed: &Fingerprint,
    threshold: f64,
    guess: bool,
) -> Classification {
    let mut scores: Vec<Score> = (0..db.fingerprints.len())
        .map(|i| score(db, i, observed))
        .filter(|s| s.possible > 0 && s.accuracy() >= threshold)
        .collect();
    scores.sort_by(|a, b| {
        b.accuracy()
            .total_cmp(&a.accuracy())
            .then(b.possible.cmp(&a.possible))
            .then(a.reference.cmp(&b.reference))
    });
    let perfect = scores.first().is_some_and(|s| s.matched == s.possible);
    if perfect && !guess {
        scores.retain(|s| s.matched == s.possible);
    }
    scores.truncate(MAX_MATCHES);
    let mut classes: Vec<ClassScore> = Vec::new();
    for s in &scores {
        let r: &Reference = &db.fingerprints[s.reference];
        for class in &r.classes {
            match classes.iter_mut().find(|c| c.class == *class) {
                Some(c) => {
                    for cpe in &r.cpe {
                        if !c.cpe.contains(cpe) {
                            c.cpe.push(cpe.clone());
                        }
                    }
                }
                None => classes.push(ClassScore {
                    class: class.clone(),
                    accuracy: s.accuracy(),
                    cpe: r.cpe.clone(),
                }),
            }
        }
    }
    Classification {
        matches: scores,
        perfect,
        classes,
        missing: observed.missing(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = "\
MatchPoints
SEQ(TI=100%TS=100)
T1(R=100%DF=20)
T5(R=100%DF=20%W=25)
U1(R=50%IPL=100)

Fingerprint Lab Linux
Class Linux | Linux | 6.X | general purpose
CPE cpe:/o:linux:linux_kernel:6
SEQ(TI=Z%TS=A)
T1(R=Y%DF=Y)
T5(R=Y%DF=Y%W=0)
U1(IPL=164)

Fingerprint Lab Windows
Class Microsoft | Windows | 10 | general purpose
SEQ(TI=I%TS=A)
T1(R=Y%DF=Y)
T5(R=Y%DF=Y%W=0)
U1(R=N)
";

    fn linux_fp() -> Fingerprint {
        Fingerprint::parse("SEQ(TI=Z%TS=A)\nT1(R=Y%DF=Y)\nT5(R=Y%DF=Y%W=0)\nU1(R=Y%IPL=164)")
    }

    #[test]
    fn points_are_summed_per_attribute_both_sides_have() {
        let db = Database::parse(DB).unwrap();
        let s = score(&db, 0, &linux_fp());
        assert_eq!((s.matched, s.possible), (615, 615));
        let s = score(&db, 1, &linux_fp());
        // TI (100) and U1's R (50) differ; U1 has only R in the reference.
        assert_eq!((s.matched, s.possible), (365, 515));
        assert_eq!(s.percent(), 70);
    }

    #[test]
    fn missing_tests_are_left_out_of_the_possible_points() {
        let db = Database::parse(DB).unwrap();
        let mut fp = linux_fp();
        fp.tests[11] = None;
        fp.tests[8] = None;
        let c = classify(&db, &fp, 0.5, false);
        assert!(c.perfect);
        assert_eq!(c.matches.len(), 1);
        assert_eq!(c.matches[0].possible, 320);
        assert_eq!(db.fingerprints[c.matches[0].reference].name, "Lab Linux");
        assert!(c.missing.contains(&"U1") && c.missing.contains(&"T5"));
        assert_eq!(c.classes[0].class.family, "Linux");
        assert_eq!(c.classes[0].cpe, ["cpe:/o:linux:linux_kernel:6"]);
    }

    #[test]
    fn guesses_below_perfect_are_listed_best_first() {
        let db = Database::parse(DB).unwrap();
        let mut fp = linux_fp();
        fp.tests[0] = Some(vec![("TI", "RD".into()), ("TS", "A".into())]);
        let c = classify(&db, &fp, 0.5, false);
        assert!(!c.perfect);
        let names: Vec<&str> = c
            .matches
            .iter()
            .map(|s| db.fingerprints[s.reference].name.as_str())
            .collect();
        assert_eq!(names, ["Lab Linux", "Lab Windows"]);
        assert!(c.matches[0].accuracy() > c.matches[1].accuracy());
        assert!(classify(&db, &fp, 0.95, false).matches.is_empty());
    }
}
