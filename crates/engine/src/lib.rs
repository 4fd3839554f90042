//! Portolan's scan engine: the scheduler that every scan technique shares.
//!
//! The engine decides what to probe and when, and turns answers into port
//! states with reasons; transports (`portolan-transport`) carry the probes.
//! It is sans-IO: it takes `now` and answers, and hands back probes,
//! cancellations and events, so it is tested in virtual time.
//!
//! - the result model (port states, reasons, host reports, counters) is
//!   `portolan-model`'s, re-exported here.
//! - [`timing`]: timing templates, RTT estimation, windows, rate limits.
//! - [`scheduler`]: the order, the windows and retries put together.

#![deny(missing_docs)]

pub mod scheduler;
pub mod timing;

pub use portolan_model::{
    HostReport, HostStatus, HostTimes, PortOutcome, PortResult, PortState, Reason, Reply, ScanStats,
};
pub use portolan_model::{PortService, ServiceInfo, ServiceMethod, TlsInfo};
pub use scheduler::{Probe, ProbeId, ScanEvent, ScanPlan, Scheduler};
pub use timing::{RateLimiter, RttEstimator, Ticks, TimingConfig, TimingTemplate, Window};
