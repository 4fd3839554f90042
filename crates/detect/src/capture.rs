//! Capture readers: pcap and pcapng (through `pcap-parser`), gzip'd or
//! not (through `flate2`), detected by their magic numbers, not their
//! names. Each packet is handed to a callback as a borrowed slice with its
//! timestamp in nanoseconds and its link type: nothing is copied or
//! allocated per packet here. pcapng's Enhanced Packet Blocks, nearly
//! every block of a pcapng file, are read straight from the reader's
//! buffer (`epb_at`; hand-written because pcap-parser collects each
//! block's options into a `Vec`, an allocation per packet when a writer
//! adds options); any other block, and any EPB this cannot vouch for,
//! goes through pcap-parser.
//!
//! Contract: a truncated last record ends the file with
//! [`CaptureStats::truncated`] set; any other malformed block is an
//! error naming the byte offset. Never a panic. Specs: pcap
//! (draft-ietf-opsawg-pcap), pcapng (draft-ietf-opsawg-pcapng).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

use crate::error::CaptureError;

/// The pcap reader's buffer: the largest record it can hold.
const BUFFER: usize = 1 << 20;

/// One captured packet, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct CapturedPacket<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The link type (LINKTYPE_* number) of `data`.
    pub linktype: u32,
    /// The captured bytes, starting at the link layer.
    pub data: &'a [u8],
}

/// What a capture file held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets handed to the callback.
    pub packets: u64,
    /// Blocks that were not packets (headers, statistics, comments).
    pub other_blocks: u64,
    /// Packets on an interface the file never described (skipped).
    pub skipped: u64,
    /// The file ended in the middle of a record.
    pub truncated: bool,
}

/// Reads every packet of `path` (pcap or pcapng, gzip'd or not).
pub fn read_capture(
    path: &Path,
    on_packet: impl FnMut(CapturedPacket<'_>),
) -> Result<CaptureStats, CaptureError> {
    let io = |source| CaptureError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let mut magic = [0u8; 2];
    let gz = {
        use std::io::BufRead;
        let head = file.fill_buf().map_err(io)?;
        magic.iter_mut().zip(head).for_each(|(m, h)| *m = *h);
        magic == [0x1f, 0x8b]
    };
    if gz {
        read_stream(path, flate2::read::MultiGzDecoder::new(file), on_packet)
    } else {
        read_stream(path, file, on_packet)
    }
}

/// Reads every packet of a pcap or pcapng stream; `path` names it in errors.
pub fn read_stream(
    path: &Path,
    input: impl Read + Send,
    mut on_packet: impl FnMut(CapturedPacket<'_>),
) -> Result<CaptureStats, CaptureError> {
    let mut reader = match create_reader(BUFFER, input) {
        Ok(r) => r,
        Err(PcapError::ReadError) => {
            return Err(CaptureError::Io {
                path: path.to_owned(),
                source: std::io::Error::other("read failed"),
            });
        }
        Err(_) => {
            return Err(CaptureError::NotACapture {
                path: path.to_owned(),
            });
        }
    };
    let mut stats = CaptureStats::default();
    // Legacy pcap: one link type and a precision; pcapng: per interface.
    let mut legacy = (1u32, 1_000u64);
    let mut interfaces: Vec<(u32, u64, i64)> = Vec::new();
    // pcapng: the current section's byte order, once its header is read.
    let mut section_big_endian: Option<bool> = None;
    let mut offset: u64 = 0;
    loop {
        if let Some(big) = section_big_endian
            && let Some(epb) = epb_at(reader.data(), big)
        {
            let data = reader.data().get(epb.data.clone()).unwrap_or_default();
            enhanced_packet(
                &interfaces,
                epb.if_id,
                epb.ticks,
                data,
                &mut stats,
                &mut on_packet,
            );
            offset += epb.len as u64;
            reader.consume(epb.len);
            continue;
        }
        let step = match reader.next() {
            Ok((size, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        let unit = if h.is_nanosecond_precision() {
                            1
                        } else {
                            1_000
                        };
                        legacy = (h.network.0 as u32, unit);
                        stats.other_blocks += 1;
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let ts_ns =
                            u64::from(b.ts_sec) * 1_000_000_000 + u64::from(b.ts_usec) * legacy.1;
                        let len = (b.caplen as usize).min(b.data.len());
                        stats.packets += 1;
                        on_packet(CapturedPacket {
                            ts_ns,
                            linktype: legacy.0,
                            data: &b.data[..len],
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        interfaces.clear();
                        section_big_endian = Some(shb.big_endian());
                        stats.other_blocks += 1;
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let per_sec = idb.ts_resolution().unwrap_or(1_000_000);
                        interfaces.push((idb.linktype.0 as u32, per_sec, idb.ts_offset()));
                        stats.other_blocks += 1;
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let len = (epb.caplen as usize).min(epb.data.len());
                        enhanced_packet(
                            &interfaces,
                            epb.if_id,
                            ticks,
                            &epb.data[..len],
                            &mut stats,
                            &mut on_packet,
                        );
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match interfaces.first() {
                        Some(&(linktype, _, _)) => {
                            stats.packets += 1;
                            on_packet(CapturedPacket {
                                ts_ns: 0,
                                linktype,
                                data: spb.data,
                            });
                        }
                        None => stats.skipped += 1,
                    },
                    PcapBlockOwned::NG(_) => stats.other_blocks += 1,
                }
                Ok(size)
            }
            Err(e) => Err(classify(e)),
        };
        match step {
            Ok(size) => {
                offset += size as u64;
                reader.consume(size);
            }
            Err(Next::Eof) => return Ok(stats),
            Err(Next::Refill) => {
                if reader.reader_exhausted() {
                    stats.truncated = true;
                    return Ok(stats);
                }
                if reader.refill().is_err() {
                    return Err(malformed(path, offset, "read failed while refilling"));
                }
            }
            Err(Next::Fail(reason)) => return Err(malformed(path, offset, &reason)),
        }
    }
}

/// Hands one Enhanced Packet Block's packet over, timed by its interface
/// (or counts it skipped when the file never described the interface).
fn enhanced_packet(
    interfaces: &[(u32, u64, i64)],
    if_id: u32,
    ticks: u64,
    data: &[u8],
    stats: &mut CaptureStats,
    on_packet: &mut impl FnMut(CapturedPacket<'_>),
) {
    match interfaces.get(if_id as usize) {
        Some(&(linktype, per_sec, ts_offset)) => {
            let ts_ns = ticks_to_ns(ticks, per_sec)
                .saturating_add_signed(ts_offset.saturating_mul(1_000_000_000));
            stats.packets += 1;
            on_packet(CapturedPacket {
                ts_ns,
                linktype,
                data,
            });
        }
        None => stats.skipped += 1,
    }
}

/// An Enhanced Packet Block at the start of a buffer, read in place.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Epb {
    /// The whole block's length.
    len: usize,
    if_id: u32,
    ticks: u64,
    /// Where the captured bytes are in the buffer.
    data: std::ops::Range<usize>,
}

/// Reads the Enhanced Packet Block (type 6) that `buf` starts with, in
/// the section's byte order: `None` when `buf` starts with another block,
/// holds only part of it, or any length disagrees (pcap-parser then reads
/// it, and names what is wrong). Its options are skipped unread.
/// pcapng: draft-ietf-opsawg-pcapng §4.3.
fn epb_at(buf: &[u8], big_endian: bool) -> Option<Epb> {
    let word = |at: usize| -> Option<u32> {
        let b: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    if word(0)? != 6 {
        return None;
    }
    let len = word(4)? as usize;
    if len < 32 || !len.is_multiple_of(4) || buf.len() < len || word(len - 4)? as usize != len {
        return None;
    }
    let caplen = word(20)? as usize;
    // Type, length, interface, two timestamp words, two lengths (28
    // bytes), the data, then at least the trailing length.
    if caplen > len - 32 {
        return None;
    }
    Some(Epb {
        len,
        if_id: word(8)?,
        ticks: (u64::from(word(12)?) << 32) | u64::from(word(16)?),
        data: 28..28 + caplen,
    })
}

enum Next {
    Eof,
    Refill,
    Fail(String),
}

fn classify(e: PcapError<&[u8]>) -> Next {
    match e {
        PcapError::Eof => Next::Eof,
        PcapError::Incomplete(_) => Next::Refill,
        PcapError::BufferTooSmall => Next::Fail("a record larger than 1 MiB".into()),
        PcapError::UnexpectedEof => Next::Refill,
        PcapError::ReadError => Next::Fail("read failed".into()),
        PcapError::HeaderNotRecognized => Next::Fail("header not recognised".into()),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            Next::Fail(format!("unreadable block ({kind:?})"))
        }
    }
}

fn malformed(path: &Path, offset: u64, reason: &str) -> CaptureError {
    CaptureError::Malformed {
        path: path.to_owned(),
        offset,
        reason: reason.to_owned(),
    }
}

fn ticks_to_ns(ticks: u64, per_sec: u64) -> u64 {
    if per_sec == 0 {
        return ticks;
    }
    let secs = ticks / per_sec;
    let rest = ticks % per_sec;
    let frac = (u128::from(rest) * 1_000_000_000 / u128::from(per_sec)) as u64;
    secs.saturating_mul(1_000_000_000).saturating_add(frac)
}
