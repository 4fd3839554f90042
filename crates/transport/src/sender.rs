//! The raw engine's sending threads. The scanning thread stamps probes
//! into batches; these threads make the `sendmmsg` calls. The work of a
//! send happens in the kernel, on the sending CPU (and on a veth or
//! loopback link the receiving stack's work too), so with sending on
//! threads of its own the scanning thread keeps reading answers and
//! stamping the next batch meanwhile.
//!
//! **As many threads as the rate needs.** A batch goes to the first
//! thread whose queue has room: at a modest rate the first thread sends
//! everything and the others sleep; when it falls behind (its queue is
//! full), the next one takes batches too. One thread's `sendmmsg` on a
//! veth link tops out near 330,000 frames a second on this project's
//! machines, since the receiving side's processing runs in the sender's
//! context; two send side by side. They share the sockets: a packet
//! socket's send path takes no socket lock, so their calls do not
//! serialise. Batches may leave a little out of order across threads;
//! nothing depends on their order (a batch's own packets keep theirs,
//! which decoys need).
//!
//! Batches travel in a fixed set allocated at the start: filled
//! ones to a thread over a bounded channel, sent ones back with the
//! count that went. Nothing is allocated per packet or per batch, and the
//! bound keeps the scanning thread at most a few batches ahead of the
//! wire, so the scheduler's send times stay true.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, channel, sync_channel};
use std::thread::JoinHandle;

use portolan_engine::Probe;

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

/// Batches in the channel to one thread at most.
const QUEUED: usize = 4;
/// Sending threads at most (see the module's documentation).
const MAX_SENDERS: usize = 4;

/// How many sending threads to start: one per CPU, within
/// [`MAX_SENDERS`].
pub(crate) fn sender_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, MAX_SENDERS))
}

/// One batch of probes and, once sent, what became of it.
pub(crate) struct Batch {
    pub(crate) packets: SendBatch,
    /// The probe of each packet; `None` for a decoy's copy.
    pub(crate) probes: Vec<Option<Probe>>,
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
            probes: Vec::with_capacity(SendBatch::CAPACITY),
            outlet: Outlet::Frame,
            sent: 0,
            error: None,
        }
    }
}

/// The scanning thread's side of the sending threads.
pub(crate) struct SendThread {
    /// Each thread's queue, in the order batches try them.
    work: Vec<SyncSender<Batch>>,
    /// The thread a batch waits for when every queue is full (in turn).
    next_waited: usize,
    done: Receiver<Batch>,
    spare: Vec<Batch>,
    filling: [Option<Batch>; OUTLETS],
    outstanding: usize,
    handles: Vec<JoinHandle<()>>,
}

impl SendThread {
    /// Starts `threads` sending threads (at least one) sharing the
    /// sockets (by [`Outlet`]; `None` for one that could not be opened:
    /// its batches come back unsent).
    pub(crate) fn spawn(
        sockets: [Option<socket2::Socket>; OUTLETS],
        threads: usize,
    ) -> io::Result<SendThread> {
        let threads = threads.max(1);
        let sockets = Arc::new(sockets);
        let (done_tx, done) = channel::<Batch>();
        let mut work = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (queue, work_rx) = sync_channel::<Batch>(QUEUED);
            let (sockets, done_tx) = (Arc::clone(&sockets), done_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("portolan-send{i}"))
                .spawn(move || send_loop(&work_rx, &sockets, &done_tx))?;
            work.push(queue);
            handles.push(handle);
        }
        // Every queue full, one batch being sent per thread, one filling
        // per outlet, and one coming back.
        let boxes = threads * (QUEUED + 1) + OUTLETS + 1;
        Ok(SendThread {
            work,
            next_waited: 0,
            done,
            spare: (0..boxes).map(|_| Batch::new()).collect(),
            filling: [None, None, None],
            outstanding: 0,
            handles,
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
            batch.probes.clear();
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
        // The first thread with room: the others only when it is behind.
        let mut batch = batch;
        for queue in &self.work {
            match queue.try_send(batch) {
                Ok(()) => {
                    self.outstanding += 1;
                    return;
                }
                Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => batch = b,
            }
        }
        // All behind: wait for one, in turn.
        if self.work.is_empty() {
            self.spare.push(batch);
            return;
        }
        let queue = &self.work[self.next_waited % self.work.len()];
        self.next_waited = self.next_waited.wrapping_add(1);
        match queue.send(batch) {
            Ok(()) => self.outstanding += 1,
            // The thread is gone (it never panics, but if it did): the
            // batch comes back as not sent.
            Err(e) => {
                let mut batch = e.0;
                batch.error = Some(io::Error::from(io::ErrorKind::BrokenPipe));
                self.spare.push(batch);
            }
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

/// One sending thread: sends each batch it is given on its outlet's
/// socket and gives it back with what went.
fn send_loop(
    work: &Receiver<Batch>,
    sockets: &[Option<socket2::Socket>; OUTLETS],
    done: &std::sync::mpsc::Sender<Batch>,
) {
    for mut batch in work {
        let (sent, error) = match &sockets[batch.outlet as usize] {
            Some(s) => batch.packets.flush(s.as_raw_fd()),
            None => {
                let n = batch.packets.len();
                batch.packets.clear();
                (0, (n > 0).then(|| io::ErrorKind::NotConnected.into()))
            }
        };
        batch.sent = sent;
        batch.error = error;
        if done.send(batch).is_err() {
            return;
        }
    }
}

impl Drop for SendThread {
    fn drop(&mut self) {
        self.work.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}
