//! The binary's side of a scan: each event of the scan library goes to
//! the outputs the user asked for ([`crate::outputs`]) and to the progress
//! display ([`crate::progress`]). A failed write stops the scan through
//! its stop token; the error is kept for the end.

use std::io::{self, IsTerminal};
use std::time::Instant;

use portolan_history::Recorder;
use portolan_scan::{Event, EventSink, StopToken};

use crate::args::Config;
use crate::audit::LiveAudit;
use crate::outputs::Outputs;
use crate::progress::Progress;

/// Where the scan's events go in the binary.
pub struct Terminal<'a> {
    config: &'a Config,
    outputs: &'a Outputs,
    stop: StopToken,
    /// The running phase's display.
    progress: Option<Progress>,
    /// When the scan started (the display's clock).
    start: Instant,
    /// A failure to start or end the outputs.
    fatal: Option<io::Error>,
    /// Where the scan is recorded (each host in its own transaction).
    recorder: Option<Recorder>,
    /// `--policy`: each host audited as it is written.
    audit: Option<LiveAudit>,
}

impl<'a> Terminal<'a> {
    /// Events to `outputs`; `stop` is the scan's token.
    pub fn new(
        config: &'a Config,
        outputs: &'a Outputs,
        stop: StopToken,
        recorder: Option<Recorder>,
    ) -> Terminal<'a> {
        Terminal {
            config,
            outputs,
            stop,
            progress: None,
            start: Instant::now(),
            fatal: None,
            recorder,
            audit: None,
        }
    }

    /// Audits each host as it is written (`--policy`).
    pub fn audit(&mut self, audit: LiveAudit) {
        self.audit = Some(audit);
    }

    /// The audit, after the scan.
    pub fn take_audit(&mut self) -> Option<LiveAudit> {
        self.audit.take()
    }

    /// The history recorder, after the scan.
    pub fn take_recorder(&mut self) -> Option<Recorder> {
        self.recorder.take()
    }

    /// The scan is over: whether the outputs began and ended well.
    pub fn finished(self) -> io::Result<()> {
        self.fatal.map_or(Ok(()), Err)
    }

    /// Stops the scan when a write failed.
    fn check(&mut self) {
        if self.outputs.failed() {
            self.stop.stop();
        }
    }
}

impl EventSink for Terminal<'_> {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Started(info) => {
                self.start = info.started_at;
                if let Some(r) = &mut self.recorder {
                    r.started(info);
                }
                if let Some(a) = &mut self.audit {
                    a.started(info);
                }
                if let Err(e) = self.outputs.begin(info) {
                    self.fatal = Some(e);
                    self.stop.stop();
                }
            }
            Event::PhaseStarted(phase) => {
                let show_bar = !self.config.no_progress && io::stderr().is_terminal();
                self.progress = Some(Progress::new(
                    phase.planned,
                    self.start,
                    show_bar,
                    self.config.stats_every,
                ));
            }
            Event::HostUp(_) => {}
            Event::Port(port) => {
                self.outputs.port(port);
                self.check();
            }
            Event::Host(host) => {
                if let Some(r) = &mut self.recorder {
                    r.host(host);
                }
                let outputs = self.outputs;
                let audit = &mut self.audit;
                let mut write = || {
                    outputs.hosts(std::slice::from_ref(host));
                    // The host's violations right after it (its report
                    // flushed first: the audit writes on its own).
                    if let Some(a) = audit {
                        outputs.flush_now(std::time::Instant::now());
                        a.host(host);
                    }
                };
                // Keep the progress bar from tearing text written to the
                // terminal.
                match self.progress.as_ref().and_then(Progress::bar) {
                    Some(bar) => bar.suspend(write),
                    None => write(),
                }
                self.check();
            }
            Event::Progress(progress) => {
                if let Some(display) = &mut self.progress {
                    if let Some(p) = progress.packets {
                        display.packets(p.sent, p.received, p.ignored);
                    }
                    display.update(
                        &progress.stats,
                        progress.planned,
                        progress.in_flight,
                        progress.at,
                    );
                }
                self.outputs.tick(&progress.stats, progress.at);
                // Hosts written since the last flush (see `Outputs`),
                // with the bar out of the way as when they were written.
                if self.outputs.flush_is_due(progress.at) {
                    let outputs = self.outputs;
                    let flush = || outputs.flush_due(progress.at);
                    match self.progress.as_ref().and_then(Progress::bar) {
                        Some(bar) => bar.suspend(flush),
                        None => flush(),
                    }
                }
                self.check();
            }
            Event::PhaseFinished => {
                if let Some(display) = self.progress.take() {
                    display.finish();
                }
            }
            Event::Finished(summary) => {
                if let Some(r) = &mut self.recorder {
                    r.finished(summary);
                }
                if self.fatal.is_none()
                    && !self.outputs.failed()
                    && let Err(e) = self.outputs.end(summary)
                {
                    self.fatal = Some(e);
                }
            }
            _ => {}
        }
    }
}
