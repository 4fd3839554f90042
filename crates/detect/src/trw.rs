//! Threshold Random Walk (Jung, Paxson, Berger, Balakrishnan, IEEE S&P
//! 2004): a sequential likelihood-ratio test over a source's first
//! contacts with distinct hosts, kept in log space. No amnesty: a benign
//! verdict does not reset the walk (the z-Scan evasion); the walk is
//! floored at the benign threshold so old successes cannot buy unlimited
//! failures. Pure arithmetic, no allocation, no panic.

/// TRW's parameters (defaults: Paxson's reference `trw-impl.bro`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrwParams {
    /// Detection probability wanted.
    pub p_d: f64,
    /// False-alarm probability allowed.
    pub p_f: f64,
    /// P(success | benign).
    pub theta0: f64,
    /// P(success | scanner).
    pub theta1: f64,
}

impl Default for TrwParams {
    fn default() -> Self {
        Self {
            p_d: 0.99,
            p_f: 0.01,
            theta0: 0.8,
            theta1: 0.2,
        }
    }
}

/// Where a walk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Neither threshold crossed.
    Pending,
    /// The walk reached η1: a scanner.
    Scanner,
    /// The walk is at η0 (it may still climb: no amnesty).
    Benign,
}

/// The log-space steps and thresholds, computed once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trw {
    success: f64,
    failure: f64,
    upper: f64,
    lower: f64,
}

impl Trw {
    /// Precomputes the steps for `p`.
    pub fn new(p: TrwParams) -> Self {
        Self {
            success: (p.theta1 / p.theta0).ln(),
            failure: ((1.0 - p.theta1) / (1.0 - p.theta0)).ln(),
            upper: (p.p_d / p.p_f).ln(),
            lower: ((1.0 - p.p_d) / (1.0 - p.p_f)).ln(),
        }
    }

    /// Moves a walk at `llr` by one first contact's outcome.
    pub fn step(&self, llr: f32, success: bool) -> (f32, Verdict) {
        let next = f64::from(llr) + if success { self.success } else { self.failure };
        let next = next.max(self.lower);
        let verdict = if next >= self.upper {
            Verdict::Scanner
        } else if next <= self.lower {
            Verdict::Benign
        } else {
            Verdict::Pending
        };
        (next as f32, verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_failures_flag_a_scanner_with_reference_defaults() {
        let trw = Trw::new(TrwParams::default());
        let mut llr = 0.0;
        let mut verdicts = Vec::new();
        for _ in 0..4 {
            let (next, v) = trw.step(llr, false);
            llr = next;
            verdicts.push(v);
        }
        assert_eq!(verdicts[..3], [Verdict::Pending; 3]);
        assert_eq!(verdicts[3], Verdict::Scanner);
    }

    #[test]
    fn benign_history_grants_no_amnesty_beyond_the_floor() {
        let trw = Trw::new(TrwParams::default());
        let mut llr = 0.0;
        for _ in 0..100 {
            llr = trw.step(llr, true).0;
        }
        // Floored at η0: 4 successes' worth, so 8 failures flag it.
        let mut flagged_at = None;
        for i in 1..=20 {
            let (next, v) = trw.step(llr, false);
            llr = next;
            if v == Verdict::Scanner {
                flagged_at = Some(i);
                break;
            }
        }
        assert_eq!(flagged_at, Some(7));
    }
}
