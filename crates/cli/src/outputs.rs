//! The sinks the user asked for: the terminal (unless a format took
//! standard output with `-`), then `-oN`, `-oX`, `-oG` and `-oJ` files
//! (`-oA` has set the first three), created or, with `--append-output`,
//! appended to. [`Outputs`] feeds them the scan's events and, every
//! [`RATE_EVERY`], a sample of its counters; the first write error stops
//! the writing and is kept for the end of the scan.
//!
//! The sinks do not flush per host: a sweep finishes hosts by the
//! hundred thousand a second, and a flush per host was a `write(2)` per
//! probe (in a one-port sweep of a /12 with `--offline`, twice the
//! engine's own time). A host written after [`FLUSH_EVERY`] of quiet is
//! flushed at once; hosts that come faster are flushed together, at most
//! every [`FLUSH_EVERY`], by the next host or tick.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use portolan_engine::{HostReport, PortResult, ScanStats};
use portolan_output::grepable::GrepableSink;
use portolan_output::jsonl::JsonLinesSink;
use portolan_output::normal::NormalSink;
use portolan_output::xml::XmlSink;
use portolan_output::{OutputOptions, RateSample, ScanInfo, ScanSummary, Sink};

use crate::args::{Config, OutputFile};

fn open_output(file: &OutputFile, append: bool) -> anyhow::Result<Box<dyn Write>> {
    Ok(match &file.path {
        // Standard output is line-buffered: a BufWriter makes each host's
        // report one write (see the module's documentation on flushing).
        None => Box::new(BufWriter::new(io::stdout())),
        Some(path) => {
            let f: File = if append {
                OpenOptions::new().create(true).append(true).open(path)
            } else {
                File::create(path)
            }
            .with_context(|| format!("cannot open output file {}", path.display()))?;
            Box::new(BufWriter::new(f))
        }
    })
}

/// How often the counters are sampled for the sinks (JSON lines' `rate`).
pub const RATE_EVERY: Duration = Duration::from_secs(1);

/// Written hosts reach the files at most this long after (see the
/// module's documentation).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The sinks of one run, shared by the transport's two callbacks.
pub struct Outputs {
    sinks: RefCell<Vec<Box<dyn Sink>>>,
    error: RefCell<Option<io::Error>>,
    started: Cell<Option<Instant>>,
    next_sample: Cell<Option<Instant>>,
    /// When the sinks were last flushed, and whether hosts were written
    /// since.
    flushed_at: Cell<Option<Instant>>,
    unflushed: Cell<bool>,
}

impl Outputs {
    /// The sinks the configuration asks for.
    pub fn new(config: &Config, options: OutputOptions) -> anyhow::Result<Outputs> {
        Ok(Outputs {
            sinks: RefCell::new(build_sinks(config, options)?),
            error: RefCell::new(None),
            started: Cell::new(None),
            next_sample: Cell::new(None),
            flushed_at: Cell::new(None),
            unflushed: Cell::new(false),
        })
    }

    fn each(&self, mut f: impl FnMut(&mut dyn Sink) -> io::Result<()>) {
        if self.failed() {
            return;
        }
        if let Err(e) = self
            .sinks
            .borrow_mut()
            .iter_mut()
            .try_for_each(|s| f(&mut **s))
        {
            *self.error.borrow_mut() = Some(e);
        }
    }

    /// The scan starts.
    pub fn begin(&self, info: &ScanInfo) -> io::Result<()> {
        self.started.set(Some(info.started_at));
        self.next_sample.set(Some(info.started_at + RATE_EVERY));
        self.sinks
            .borrow_mut()
            .iter_mut()
            .try_for_each(|s| s.begin(info))
    }

    /// A port is settled.
    pub fn port(&self, port: &PortResult) {
        self.each(|s| s.port(port));
    }

    /// Writes finished hosts.
    pub fn hosts(&self, reports: &[HostReport]) {
        for report in reports {
            self.each(|s| s.host(report));
        }
        self.unflushed.set(true);
        self.flush_due(Instant::now());
    }

    /// Whether hosts were written and the last flush was [`FLUSH_EVERY`]
    /// or more before `now`.
    pub fn flush_is_due(&self, now: Instant) -> bool {
        self.unflushed.get()
            && self
                .flushed_at
                .get()
                .is_none_or(|at| now.saturating_duration_since(at) >= FLUSH_EVERY)
    }

    /// Flushes the hosts written if [`Outputs::flush_is_due`]. The
    /// terminal calls it with its progress bar out of the way.
    pub fn flush_due(&self, now: Instant) {
        if self.flush_is_due(now) {
            self.flush_now(now);
        }
    }

    /// Flushes the hosts written now (something else is about to write to
    /// the terminal after them).
    pub fn flush_now(&self, now: Instant) {
        self.each(|s| s.flush());
        self.flushed_at.set(Some(now));
        self.unflushed.set(false);
    }

    /// The scan's counters at `now`: passed on once per [`RATE_EVERY`].
    pub fn tick(&self, stats: &ScanStats, now: Instant) {
        let (Some(started), Some(next)) = (self.started.get(), self.next_sample.get()) else {
            return;
        };
        if now < next {
            return;
        }
        // Keep the cadence, or start it again after a stall.
        let following = next + RATE_EVERY;
        self.next_sample.set(Some(if following <= now {
            now + RATE_EVERY
        } else {
            following
        }));
        let sample = RateSample::new(stats, now.saturating_duration_since(started));
        self.each(|s| s.rate(&sample));
    }

    /// Whether a write failed (the scan should stop).
    pub fn failed(&self) -> bool {
        self.error.borrow().is_some()
    }

    /// The first write error, if any.
    pub fn take_error(&self) -> Option<io::Error> {
        self.error.borrow_mut().take()
    }

    /// The scan is over.
    pub fn end(&self, summary: &ScanSummary) -> io::Result<()> {
        self.sinks
            .borrow_mut()
            .iter_mut()
            .try_for_each(|s| s.end(summary))
    }
}

/// Every sink of this run, in a fixed order.
fn build_sinks(config: &Config, options: OutputOptions) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    type Make = fn(Box<dyn Write>, OutputOptions) -> Box<dyn Sink>;
    let formats: [(&Option<OutputFile>, Make); 4] = [
        (&config.normal_out, |w, o| Box::new(NormalSink::file(w, o))),
        if config.xml_continue {
            (&config.xml_out, |w, o| Box::new(XmlSink::continuing(w, o)))
        } else {
            (&config.xml_out, |w, o| Box::new(XmlSink::new(w, o)))
        },
        (&config.grep_out, |w, o| Box::new(GrepableSink::new(w, o))),
        if config.json_continue {
            (&config.json_out, |w, o| {
                Box::new(JsonLinesSink::continuing(w, o))
            })
        } else {
            (&config.json_out, |w, o| Box::new(JsonLinesSink::new(w, o)))
        },
    ];
    let stdout_taken = formats
        .iter()
        .any(|(f, _)| f.as_ref().is_some_and(|f| f.path.is_none()));
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if !stdout_taken {
        sinks.push(Box::new(NormalSink::new(
            BufWriter::new(io::stdout()),
            options,
        )));
    }
    for (file, make) in formats {
        if let Some(file) = file {
            sinks.push(make(open_output(file, config.append)?, options));
        }
    }
    Ok(sinks)
}
