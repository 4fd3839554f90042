//! Alerts and the per-source summary: plain serde values; the binary
//! writes them as JSON lines (serde_json escapes every string).

use std::net::IpAddr;

use serde::Serialize;

use crate::decode::Proto;

/// The kind of scan an alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ScanKind {
    /// Many ports of one host.
    Vertical,
    /// One port across many hosts (TRW decided).
    Horizontal,
    /// A few ports across many hosts (TRW decided).
    Strobe,
    /// Several sources sharing one scan out between them, little overlap
    /// (the group is in [`Alert::group`]).
    Distributed,
    /// One scan copied from several sources, one real and the rest
    /// spoofed (the group, and the real source when the evidence names
    /// it, are in [`Alert::group`]).
    Decoy,
    /// An idle scan's reading of a zombie's IP IDs: unsolicited SYN+ACKs
    /// to one port of the zombie, each answered by its RST (the source is
    /// the real scanner, the target the zombie; the evidence is in
    /// [`Alert::zombie`]). The scanned host never sees the scanner: there
    /// the zombie's address makes a vertical scan.
    Idle,
}

/// The sources of a distributed or decoy scan, and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupEvidence {
    /// The sources, largest share first.
    pub sources: Vec<IpAddr>,
    /// Each source's distinct failed probes into the scanned space (its
    /// ports of the target, or its hosts of the port), in `sources` order.
    pub shares: Vec<u32>,
    /// Each source's TTL (or hop limit) on its first probe, same order.
    pub ttls: Vec<u8>,
    /// Sources that followed a positive answer up (an RST or ACK after a
    /// SYN+ACK): only a real scanner sees its answers.
    pub followed_up: Vec<IpAddr>,
    /// Decoys: the real source, when the evidence names exactly one.
    pub real_source: Option<IpAddr>,
    /// What named it: `"follow-up"`, `"ttl"` (the one TTL that differs
    /// from all the others') or `"arp"` (every member's frames came from
    /// one link-layer address, and ARP ties that address to one member
    /// alone: spoofed copies leave the real sender's card).
    pub real_by: Option<&'static str>,
    /// Distinct items (ports or hosts) the group covered.
    pub covered: u32,
    /// 1 − covered / the shares summed: near 0 for a distributed scan,
    /// high for decoys.
    pub overlap: f32,
    /// Covered items over the range they span (Gates: a split scan covers
    /// a contiguous space).
    pub coverage: f32,
}

/// An idle scan's probes of its zombie, as the zombie's capture shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZombieEvidence {
    /// Unsolicited SYN+ACKs to the probed port, retransmissions counted
    /// once.
    pub probes: u32,
    /// The zombie's RSTs answering them (each carries the IP ID read).
    pub answered: u32,
    /// The first steps between the IP IDs of consecutive answers (small
    /// and positive from a zombie with a global counter, which is what
    /// makes it usable).
    pub ip_id_steps: Vec<u16>,
}

/// One detection, with the evidence that proved it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// What kind of scan.
    pub kind: ScanKind,
    /// The scanning source.
    pub source: IpAddr,
    /// The protocol of the probes that decided.
    pub proto: Proto,
    /// First probe seen from the source, seconds since the epoch.
    pub first_seen: f64,
    /// The probe that decided, seconds since the epoch.
    pub decided_at: f64,
    /// Probes (connection attempts) seen from the source so far.
    pub probes: u64,
    /// Failed first contacts and failed ports so far.
    pub failures: u64,
    /// The step (the n-th resolved contact of this detector) that decided.
    pub decision_step: u32,
    /// Distinct hosts the source probed.
    pub targets: u32,
    /// For a vertical scan: the host scanned.
    pub target: Option<IpAddr>,
    /// Failed ports: a vertical scan's on its target, a sweep's first
    /// failed ports (up to [`crate::detector::SOURCE_PORTS`]), a group's
    /// covered ports (up to 32).
    pub ports: Vec<u16>,
    /// TRW's log-likelihood ratio at the decision (0 for vertical).
    pub trw_llr: f32,
    /// How sure: 0..1 (TRW: 1 − P_F at the threshold; vertical: failed
    /// share of the host's probed ports).
    pub confidence: f32,
    /// Scanner traits seen in the source's probes (evidence only).
    pub traits: Vec<&'static str>,
    /// The source is on the allowlist (an authorised scanner): labelled,
    /// never hidden.
    pub allowlisted: bool,
    /// The test that decided: `"trw"` (failed first contacts), `"echo-sweep"`
    /// (echo requests to many hosts, answered or not, within a window),
    /// `"slow-echo-sweep"` (to more hosts, at any pace), `"vertical"`,
    /// `"distributed"`, `"decoy"` or `"zombie-probe"`.
    pub decided_by: &'static str,
    /// Distributed and decoy scans: the group of sources. For a decoy
    /// scan whose real source is unknown, `source` is the largest share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupEvidence>,
    /// Idle scans: the probes of the zombie and its answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zombie: Option<ZombieEvidence>,
}

/// One source's totals at the end of the input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceSummary {
    /// The source.
    pub source: IpAddr,
    /// Probes sent.
    pub probes: u64,
    /// Failed probes.
    pub failures: u64,
    /// Distinct hosts probed.
    pub targets: u32,
    /// Kinds detected.
    pub kinds: Vec<ScanKind>,
}
