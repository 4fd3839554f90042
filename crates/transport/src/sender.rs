//! The raw engine's sending thread. The scanning thread stamps probes
//! into batches; this thread makes the `sendmmsg` calls. The work of a
//! send happens in the kernel, on the sending CPU (and on a veth or
//! loopback link the receiving stack's work too), so with sending on its
//! own thread the scanning thread keeps reading answers and stamping the
//! next batch meanwhile.
//!
//! Batches travel in a fixed set allocated at the start: filled
//! ones to the thread over a bounded channel, sent ones back with the
//! count that went. Nothing is allocated per packet or per batch, and the
//! bound keeps the scanning thread at most a few batches ahead of the
//! wire, so the scheduler's send times stay true.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use portolan_engine::ProbeId;

use crate::sys::SendBatch;

/// The sockets a batch can go out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outlet {
    /// Whole frames on the packet socket.
    Frame = 0,
    /// IPv4 packets on the raw IP socket.
    Ip4 = 1,
    /// IPv6 packets on the raw IP socket.
    Ip6 = 2,
}

const OUTLETS: usize = 3;

/// Batches in the channel to the thread at most.
const QUEUED: usize = 4;
/// Batches in all: the queued ones, one being sent, one filling per outlet,
/// and one coming back.
const BOXES: usize = QUEUED + 2 + OUTLETS;

/// One batch of probes and, once sent, what became of it.
pub(crate) struct Batch {
    pub(crate) packets: SendBatch,
    /// The probe of each packet; `None` for a decoy's copy.
    pub(crate) ids: Vec<Option<ProbeId>>,
    outlet: Outlet,
    /// How many packets went, from the first.
    pub(crate) sent: usize,
    /// Why the rest did not.
    pub(crate) error: Option<io::Error>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            packets: SendBatch::new(),
            ids: Vec::with_capacity(SendBatch::CAPACITY),
            outlet: Outlet::Frame,
            sent: 0,
            error: None,
        }
    }
}

/// The scanning thread's side of the sending thread.
pub(crate) struct SendThread {
    work: Option<SyncSender<Batch>>,
    done: Receiver<Batch>,
    spare: Vec<Batch>,
    filling: [Option<Batch>; OUTLETS],
    outstanding: usize,
    handle: Option<JoinHandle<()>>,
}

impl SendThread {
    /// Starts the thread with its sockets (by [`Outlet`]; `None` for one
    /// that could not be opened: its batches come back unsent).
    pub(crate) fn spawn(sockets: [Option<socket2::Socket>; OUTLETS]) -> io::Result<SendThread> {
        let (work, work_rx) = sync_channel::<Batch>(QUEUED);
        let (done_tx, done) = channel::<Batch>();
        let handle = std::thread::Builder::new()
            .name("portolan-send".into())
            .spawn(move || {
                for mut batch in work_rx {
                    let socket = &sockets[batch.outlet as usize];
                    let (sent, error) = match socket {
                        Some(s) => batch.packets.flush(s.as_raw_fd()),
                        None => {
                            let n = batch.packets.len();
                            batch.packets.clear();
                            (0, (n > 0).then(|| io::ErrorKind::NotConnected.into()))
                        }
                    };
                    batch.sent = sent;
                    batch.error = error;
                    if done_tx.send(batch).is_err() {
                        return;
                    }
                }
            })?;
        Ok(SendThread {
            work: Some(work),
            done,
            spare: (0..BOXES).map(|_| Batch::new()).collect(),
            filling: [None, None, None],
            outstanding: 0,
            handle: Some(handle),
        })
    }

    /// The batch being filled for `outlet`. When every batch is out, waits
    /// for one to come back, handing it to `on_sent` first.
    pub(crate) fn filling(
        &mut self,
        outlet: Outlet,
        on_sent: &mut dyn FnMut(&mut Batch),
    ) -> &mut Batch {
        let slot = outlet as usize;
        if self.filling[slot].is_none() {
            let mut batch = match self.spare.pop() {
                Some(b) => b,
                None => {
                    // Every batch is queued or being sent: the thread has
                    // one to give back.
                    let mut b = self.done.recv().unwrap_or_else(|_| Batch::new());
                    self.outstanding = self.outstanding.saturating_sub(1);
                    on_sent(&mut b);
                    b
                }
            };
            batch.outlet = outlet;
            batch.ids.clear();
            batch.sent = 0;
            batch.error = None;
            self.filling[slot] = Some(batch);
        }
        self.filling[slot].as_mut().expect("filled above")
    }

    /// Hands the batch of `outlet` to the thread, if it holds anything.
    pub(crate) fn submit(&mut self, outlet: Outlet) {
        let Some(batch) = self.filling[outlet as usize].take() else {
            return;
        };
        if batch.packets.is_empty() {
            self.spare.push(batch);
            return;
        }
        match &self.work {
            Some(work) => match work.send(batch) {
                Ok(()) => self.outstanding += 1,
                // The thread is gone (it never panics, but if it did): the
                // batch comes back as not sent.
                Err(e) => {
                    let mut batch = e.0;
                    batch.error = Some(io::Error::from(io::ErrorKind::BrokenPipe));
                    self.spare.push(batch);
                }
            },
            None => self.spare.push(batch),
        }
    }

    /// Hands every partly filled batch to the thread.
    pub(crate) fn submit_all(&mut self) {
        for outlet in [Outlet::Frame, Outlet::Ip4, Outlet::Ip6] {
            self.submit(outlet);
        }
    }

    /// Hands each batch the thread has sent back to `on_sent`; with
    /// `wait`, first waits until every submitted batch is back.
    pub(crate) fn collect(&mut self, wait: bool, on_sent: &mut dyn FnMut(&mut Batch)) {
        loop {
            let next = if wait && self.outstanding > 0 {
                self.done.recv().ok()
            } else {
                self.done.try_recv().ok()
            };
            let Some(mut batch) = next else {
                return;
            };
            self.outstanding = self.outstanding.saturating_sub(1);
            on_sent(&mut batch);
            self.spare.push(batch);
        }
    }
}

impl Drop for SendThread {
    fn drop(&mut self) {
        self.work = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
