//! Portolan's scan detector: capture readers ([`capture`], several files
//! merged by time in [`merge`]), a packet →
//! flow-event decoder sharing `portolan-wire`'s parsers ([`decode`](mod@decode)), and
//! sans-IO detectors driven by packet timestamps ([`detector`], with
//! [`trw`] for Threshold Random Walk, [`pairs`] for what each source did
//! to each host in fixed memory, and [`group`] for distributed and decoy
//! scans). The library never prints: it
//! returns [`Alert`]s and a summary; the binary writes them.

pub mod alert;
pub mod capture;
pub mod decode;
pub mod detector;
mod error;
pub mod group;
pub mod merge;
pub mod pairs;
pub mod traits;
pub mod trw;
pub mod watch;
pub mod write;

pub use alert::{Alert, GroupEvidence, ScanKind, SourceSummary, ZombieEvidence};
pub use capture::{CaptureStats, CapturedPacket, read_capture, read_stream};
pub use decode::{EventKind, FlowEvent, Proto, decode, decode_network};
pub use detector::{Allowlist, Detector, DetectorConfig};
pub use error::{AllowlistError, CaptureError};
pub use merge::read_captures_merged;
pub use watch::{PortWatch, WatchRow};
