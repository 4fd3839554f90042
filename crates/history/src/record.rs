//! Recording a scan as it runs ([`Recorder`]): the scan's start is written
//! when it starts, each host in its own transaction as soon as it is
//! final, and the end last. A scan killed at any moment (SIGKILL) leaves
//! every host it finished and stays unfinished (no end) in the history.
//!
//! The recorder takes the result model's values, not the scan library's
//! events, so that it does not depend on the scanner: the binary's event
//! sink hands them over. After the first failure it records nothing more
//! and keeps the error for the end ([`Recorder::take_error`]), so that a
//! broken database never stops a scan or loses its other outputs.
//!
//! Hosts without evidence are not written ([`holds_evidence`]): a host
//! found down, or reported up only because `-Pn` said so while none of its
//! probes was answered. A sweep of millions of mostly empty addresses
//! would otherwise write a transaction per empty address; in the history
//! (and its diffs) an address absent from a scan had nothing to say in it.

use portolan_model::{
    HostReport, HostStatus, Reason, ScanInfo, ScanResults, ScanSummary, ScanType,
};

use crate::StoreError;
use crate::store::{History, ScanMeta, ScanRow};

/// Whether a host report says anything worth keeping: the host was found
/// up by an answer, or one of its probes was answered (a `-Pn` host with
/// every port silent and no service, script or OS found holds nothing).
pub fn holds_evidence(host: &HostReport) -> bool {
    match host.status {
        HostStatus::Up(reason) if reason.proves_host_up() => true,
        HostStatus::Up(_) | HostStatus::Interrupted | HostStatus::TimedOut => {
            host.ports.iter().any(|p| p.reason != Reason::NoResponse)
                || !host.services.is_empty()
                || !host.extra.os.is_empty()
                || !host.extra.scripts.is_empty()
        }
        _ => false,
    }
}

/// Writes one scan into a history as it runs.
pub struct Recorder {
    history: History,
    meta: ScanMeta,
    no: Option<i64>,
    scans: Vec<ScanType>,
    error: Option<StoreError>,
}

impl Recorder {
    /// A recorder into `history`; `meta` says what the scan is.
    pub fn new(history: History, meta: ScanMeta) -> Recorder {
        Recorder {
            history,
            meta,
            no: None,
            scans: Vec::new(),
            error: None,
        }
    }

    fn keep(&mut self, result: Result<(), StoreError>) {
        if let Err(e) = result
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }

    /// The scan started.
    pub fn started(&mut self, info: &ScanInfo) {
        if self.error.is_some() {
            return;
        }
        let mut record = ScanResults::begin(info);
        record.args = crate::postgres::redact_passwords(&record.args);
        self.scans = record.scans.clone();
        let result = self.history.begin_scan(&record, &self.meta);
        match result {
            Ok(no) => self.no = Some(no),
            Err(e) => self.keep(Err(e)),
        }
    }

    /// A host is final.
    pub fn host(&mut self, host: &HostReport) {
        let (Some(no), None) = (self.no, &self.error) else {
            return;
        };
        if !holds_evidence(host) {
            return;
        }
        let result = self.history.record_host(no, &self.scans, host);
        self.keep(result);
    }

    /// The scan ended.
    pub fn finished(&mut self, summary: &ScanSummary) {
        let (Some(no), None) = (self.no, &self.error) else {
            return;
        };
        let result =
            self.history
                .finish_scan(no, summary.end, summary.interrupted, Some(&summary.stats));
        self.keep(result);
    }

    /// The first failure, if any.
    pub fn take_error(&mut self) -> Option<StoreError> {
        self.error.take()
    }

    /// The recorded scan's row, once it started.
    pub fn scan(&mut self) -> Result<Option<ScanRow>, StoreError> {
        match self.no {
            Some(no) => self.history.scan_numbered(no),
            None => Ok(None),
        }
    }

    /// The history, to query after the scan.
    pub fn history(&mut self) -> &mut History {
        &mut self.history
    }
}
