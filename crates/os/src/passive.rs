//! Passive hints: what the SYN-ACKs and RSTs a port scan already received
//! say of the host's stack, p0f's way, without a probe of its own.
//!
//! A hint is a guess with its evidence (TTL and the initial TTL it
//! suggests, window, MSS, option layout, timestamps, DF), never a match:
//! it is shown beside the matches, not as one. The rules are few and
//! broad (initial TTL and option layout), which is what survives
//! middleboxes; the evidence is kept so a reader can judge.
//!
//! Read first: p0f v3's README, "TCP signatures".

use portolan_wire::{Ipv4Packet, TcpPacket};

use crate::compute::{initial_ttl_guess, options_string};

/// What one answer showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The TTL as received.
    pub ttl: u8,
    /// The initial TTL it suggests.
    pub initial_ttl: u8,
    /// The window.
    pub window: u16,
    /// The MSS option's value, if any.
    pub mss: Option<u16>,
    /// nmap's option string (`M5B4ST11NW7`).
    pub options: String,
    /// Whether the answer carried timestamps.
    pub timestamps: bool,
    /// The IPv4 don't-fragment bit.
    pub df: bool,
    /// Whether it was a SYN-ACK (else a RST).
    pub syn_ack: bool,
}

/// A first guess of the host's stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The family guessed ("Linux", "Windows", "BSD or macOS", "network
    /// device"), or `None` when the evidence fits none.
    pub family: Option<&'static str>,
    /// What it rests on.
    pub evidence: Evidence,
}

impl Evidence {
    /// Reads an IPv4 TCP answer; `None` for anything else.
    pub fn read(packet: &[u8]) -> Option<Evidence> {
        let ip = Ipv4Packet::new_checked(packet).ok()?;
        if ip.protocol() != 6 {
            return None;
        }
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        let flags = tcp.flags().bits();
        let options = options_string(tcp.options());
        Some(Evidence {
            ttl: ip.ttl(),
            initial_ttl: initial_ttl_guess(ip.ttl()),
            window: tcp.window_len(),
            mss: tcp.mss(),
            timestamps: options.contains('T'),
            options,
            df: ip.dont_frag(),
            syn_ack: flags & 0x12 == 0x12,
        })
    }

    /// The evidence as one line: `ttl=64 (initial 64) win=FE88 mss=5B4
    /// opts=M5B4ST11NW7 df=Y`.
    pub fn summary(&self) -> String {
        format!(
            "{} ttl={} (initial {}) win={:X}{} opts={} df={}",
            if self.syn_ack { "syn-ack" } else { "rst" },
            self.ttl,
            self.initial_ttl,
            self.window,
            self.mss.map(|m| format!(" mss={m:X}")).unwrap_or_default(),
            if self.options.is_empty() {
                "-"
            } else {
                &self.options
            },
            if self.df { "Y" } else { "N" },
        )
    }
}

/// The layout of the options without their values: `M5B4ST11NW7` to
/// `MSTNW`.
fn layout(options: &str) -> String {
    // None of these letters is a hex digit, so values drop out.
    options.chars().filter(|c| "MWTSNL".contains(*c)).collect()
}

/// Guesses from one SYN-ACK (the richest answer) or a RST.
pub fn hint(evidence: Evidence) -> Hint {
    let family = if !evidence.syn_ack {
        match evidence.initial_ttl {
            255 => Some("network device"),
            128 => Some("Windows"),
            _ => None,
        }
    } else {
        let layout = layout(&evidence.options);
        // A SYN that offered only an MSS (a port scan's) gets only an MSS
        // back; the window then tells: Linux opens with 44 segments
        // (64,240 for an MSS of 1,460), BSD stacks with 65,535.
        let segments = evidence
            .mss
            .filter(|m| *m > 0)
            .map(|m| u32::from(evidence.window) / u32::from(m));
        let whole = evidence
            .mss
            .is_some_and(|m| m > 0 && evidence.window.is_multiple_of(m));
        match (evidence.initial_ttl, layout.as_str()) {
            (64, "M") if whole && segments.is_some_and(|s| (40..=45).contains(&s)) => Some("Linux"),
            (64, "M") if evidence.window == 0xFFFF => Some("BSD or macOS"),
            (64, "MSTNW" | "MSTN" | "MSNW" | "MNNSNW" | "MS") => Some("Linux"),
            (64, "MNWNNTSLL" | "MNWNNTS" | "MNWSNNT" | "MNWNNSTL") => Some("BSD or macOS"),
            (128, _) => Some("Windows"),
            (255, _) => Some("network device"),
            _ => None,
        }
    };
    Hint { family, evidence }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::fixtures::{linux_options, set, tcp};

    #[test]
    fn a_linux_syn_ack_hints_linux_with_its_evidence() {
        let set = set();
        let p = tcp(&set, 0, 22, 1, 2, 0x12, 0xFAF0, &linux_options(0, 9), 0);
        let e = Evidence::read(&p).unwrap();
        assert_eq!(
            (e.initial_ttl, e.mss, e.timestamps, e.df),
            (64, Some(1460), true, true)
        );
        assert_eq!(
            e.summary(),
            "syn-ack ttl=64 (initial 64) win=FAF0 mss=5B4 opts=M5B4ST11NW7 df=Y"
        );
        assert_eq!(hint(e).family, Some("Linux"));
    }

    #[test]
    fn a_syn_ack_to_an_mss_only_syn_is_read_by_its_window() {
        let set = set();
        let linux = tcp(&set, 0, 22, 1, 2, 0x12, 64_240, &[2, 4, 5, 0xB4], 0);
        assert_eq!(hint(Evidence::read(&linux).unwrap()).family, Some("Linux"));
        let bsd = tcp(&set, 0, 22, 1, 2, 0x12, 0xFFFF, &[2, 4, 5, 0xB4], 0);
        assert_eq!(
            hint(Evidence::read(&bsd).unwrap()).family,
            Some("BSD or macOS")
        );
        let odd = tcp(&set, 0, 22, 1, 2, 0x12, 1000, &[2, 4, 5, 0xB4], 0);
        assert_eq!(hint(Evidence::read(&odd).unwrap()).family, None);
    }

    #[test]
    fn a_bare_rst_from_ttl_64_guesses_nothing() {
        let set = set();
        let p = tcp(&set, 12, 1, 0, 2, 0x14, 0, &[], 0);
        let h = hint(Evidence::read(&p).unwrap());
        assert_eq!(h.family, None);
        assert!(Evidence::read(&[0x45, 0]).is_none());
    }
}
