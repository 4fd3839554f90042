//! Portolan's one result model: what a scan found about each port and
//! host, why, and what the run was.
//!
//! The engine produces these values, the scan library streams them as
//! events, and every sink (text, XML, grepable, JSON lines, reports)
//! reads them. Plain data: nothing here does I/O, and nothing allocates
//! beyond the vectors and strings the values own. Strings that came from
//! the network (banners, certificates, names) are stored as received;
//! sinks escape them for their format.
//!
//! - [`result`]: port states, reasons, port outcomes, host reports,
//!   counters.
//! - [`service`]: what version detection found on a port.
//! - [`scan`]: the run's information, rate samples and summary.

#![deny(missing_docs)]

pub mod result;
pub mod scan;
pub mod service;

pub use result::{
    HostReport, HostStatus, HostTimes, PortOutcome, PortResult, PortState, Reason, Reply, ScanStats,
};
pub use scan::{PacketStats, RateSample, ScanInfo, ScanSummary};
pub use service::{PortService, ServiceInfo, ServiceMethod, TlsInfo};
