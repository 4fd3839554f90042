//! Several capture files read as one, in timestamp order: captures taken
//! at different points (a tap per host, the scanner's side and the
//! target's) hold one conversation between them, and the detector reads
//! silence from time, so a probe in one file must meet its answer in the
//! other before the answer timeout.
//!
//! Each file is read on its own thread ([`crate::read_capture`]) into
//! batches of packets copied into one buffer; a batch goes to the merging
//! thread through a bounded channel and comes back to be refilled, so
//! nothing is allocated per packet once the batches have grown. The merge
//! hands over the earliest head packet of all files each time (a file out
//! of order in itself is merged as it comes). The first file that fails
//! ends the read with its error, naming it (the other readers run on to
//! their ends, unread).
//!
//! Contract: no panic, no unsafe; memory is a few batches per file.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use crate::capture::{CaptureStats, CapturedPacket, read_capture};
use crate::error::CaptureError;

/// Packets a batch holds at most.
const BATCH_PACKETS: usize = 4096;
/// Captured bytes a batch holds at most (past it, the batch goes).
const BATCH_BYTES: usize = 1 << 20;
/// Batches in flight from one reader.
const IN_FLIGHT: usize = 2;

/// Packets copied from one file, in its order.
#[derive(Debug, Default)]
struct Batch {
    ts_ns: Vec<u64>,
    linktype: Vec<u32>,
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl Batch {
    fn clear(&mut self) {
        self.ts_ns.clear();
        self.linktype.clear();
        self.ends.clear();
        self.bytes.clear();
    }

    fn push(&mut self, p: CapturedPacket<'_>) {
        self.ts_ns.push(p.ts_ns);
        self.linktype.push(p.linktype);
        self.bytes.extend_from_slice(p.data);
        self.ends.push(self.bytes.len());
    }

    fn len(&self) -> usize {
        self.ts_ns.len()
    }

    fn full(&self) -> bool {
        self.len() >= BATCH_PACKETS || self.bytes.len() >= BATCH_BYTES
    }

    fn packet(&self, i: usize) -> CapturedPacket<'_> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        CapturedPacket {
            ts_ns: self.ts_ns[i],
            linktype: self.linktype[i],
            data: &self.bytes[start..self.ends[i]],
        }
    }
}

enum Message {
    Packets(Batch),
    Done(Result<CaptureStats, CaptureError>),
}

/// One file as the merge sees it.
struct Feed<'a> {
    path: &'a Path,
    from: Receiver<Message>,
    back: Sender<Batch>,
    batch: Option<Batch>,
    at: usize,
    stats: Option<CaptureStats>,
}

impl Feed<'_> {
    /// Makes sure the feed has a packet at its head, or is done.
    fn fill(&mut self) -> Result<(), CaptureError> {
        while self.batch.is_none() && self.stats.is_none() {
            match self.from.recv() {
                Ok(Message::Packets(b)) if b.len() > 0 => {
                    self.batch = Some(b);
                    self.at = 0;
                }
                Ok(Message::Packets(_)) => {}
                Ok(Message::Done(Ok(stats))) => self.stats = Some(stats),
                Ok(Message::Done(Err(e))) => return Err(e),
                Err(_) => {
                    return Err(CaptureError::Io {
                        path: self.path.to_owned(),
                        source: std::io::Error::other("the reader stopped"),
                    });
                }
            }
        }
        Ok(())
    }

    fn head_ts(&self) -> Option<u64> {
        self.batch.as_ref().map(|b| b.ts_ns[self.at])
    }
}

/// Reads every packet of `paths` (pcap or pcapng, gzip'd or not), all
/// files at once, handing them to `on_packet` in timestamp order across
/// the files. Returns each file's statistics, in `paths` order.
pub fn read_captures_merged(
    paths: &[PathBuf],
    mut on_packet: impl FnMut(CapturedPacket<'_>),
) -> Result<Vec<CaptureStats>, CaptureError> {
    if let [one] = paths {
        return read_capture(one, on_packet).map(|s| vec![s]);
    }
    std::thread::scope(|scope| {
        let mut feeds: Vec<Feed<'_>> = Vec::with_capacity(paths.len());
        for path in paths {
            let (to_merge, from) = sync_channel::<Message>(IN_FLIGHT);
            let (back, returned) = channel::<Batch>();
            scope.spawn(move || read_into_batches(path, &to_merge, &returned));
            feeds.push(Feed {
                path,
                from,
                back,
                batch: None,
                at: 0,
                stats: None,
            });
        }
        loop {
            for feed in feeds.iter_mut() {
                feed.fill()?;
            }
            let Some(next) = feeds
                .iter_mut()
                .filter(|f| f.batch.is_some())
                .min_by_key(|f| f.head_ts())
            else {
                break;
            };
            if let Some(batch) = &next.batch {
                on_packet(batch.packet(next.at));
                next.at += 1;
                if next.at == batch.len()
                    && let Some(mut spent) = next.batch.take()
                {
                    spent.clear();
                    // The reader may be done already: then it is dropped.
                    let _ = next.back.send(spent);
                }
            }
        }
        Ok(feeds
            .into_iter()
            .map(|f| f.stats.unwrap_or_default())
            .collect())
    })
}

/// One reader thread: the file in batches, then its result.
fn read_into_batches(path: &Path, to_merge: &SyncSender<Message>, returned: &Receiver<Batch>) {
    let mut batch = Batch::default();
    let mut open = true;
    let result = read_capture(path, |p| {
        if !open {
            return;
        }
        batch.push(p);
        if batch.full() {
            let next = returned.try_recv().unwrap_or_default();
            let full = std::mem::replace(&mut batch, next);
            open = to_merge.send(Message::Packets(full)).is_ok();
        }
    });
    if open && batch.len() > 0 {
        let _ = to_merge.send(Message::Packets(batch));
    }
    let _ = to_merge.send(Message::Done(result));
}
