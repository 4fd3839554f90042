//! The receive ring of the packet socket (`PACKET_RX_RING`, `TPACKET_V3`):
//! the kernel writes the packets that pass the socket's filter into blocks
//! of a buffer shared with this process, and hands a block over when it is
//! full or [`RETIRE_MS`] after its first packet. Reading answers then takes
//! no system call per packet, only a `poll` when the ring is empty.
//!
//! Contract: [`RxRing::drain`] hands each packet (from its network header
//! on) and its packet type to a callback and gives each block back to the
//! kernel as soon as it is read. Every offset the kernel wrote is checked
//! against the block before it is followed, so a corrupt block is skipped,
//! never read out of bounds. Layout: `linux/if_packet.h`, and the kernel's
//! Documentation/networking/packet_mmap.rst.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Bytes per block.
const BLOCK_SIZE: usize = 1 << 16;
/// Blocks in the ring: 8 MiB in all. A block is handed over [`RETIRE_MS`]
/// after its first packet however few it holds, so when answers trickle
/// in, the ring lasts about as many milliseconds as it has blocks while
/// the scan is busy elsewhere; with 16 blocks (2 MiB), a -sU scan of 250
/// hosts on a loaded machine lost a dozen answers to a full ring, which
/// cost their hosts retries and pacing. 128 blocks last over a tenth of a
/// second when answers trickle, and hold about 100,000 answers of 80
/// bytes when they come at line rate.
const BLOCKS: usize = 128;
/// Frame size the kernel asks for (unused by `TPACKET_V3`, which packs
/// packets of any size into blocks, but it must divide the block size).
const FRAME_SIZE: usize = 1 << 11;
/// Milliseconds after its first packet that a block that is not full is
/// handed over anyway: the most an answer waits in the ring.
pub const RETIRE_MS: u32 = 1;

/// Where a packet's `sockaddr_ll` starts, from its `tpacket3_hdr`: right
/// after the header, aligned to 16; its packet type is at offset 10, the
/// length of its link-layer address at 11, the address at 12.
const SOCKADDR_AT: usize = std::mem::size_of::<libc::tpacket3_hdr>().next_multiple_of(16);

/// What the kernel's `sockaddr_ll` says of a received packet besides its
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The packet type (`PACKET_HOST`, `PACKET_OUTGOING`, ...).
    pub kind: u8,
    /// The link-layer source address, when it is six bytes long
    /// (Ethernet).
    pub mac: Option<[u8; 6]>,
}

impl Arrival {
    /// Reads a `sockaddr_ll` from its packet type on (`bytes` starts at
    /// offset 10): type, address length, address.
    pub(crate) fn read(bytes: &[u8]) -> Option<Arrival> {
        let kind = *bytes.first()?;
        let mac = match bytes.get(1) {
            Some(6) => bytes.get(2..8).and_then(|m| m.try_into().ok()),
            _ => None,
        };
        Some(Arrival { kind, mac })
    }
}

/// A packet socket's receive ring, mapped into this process.
pub struct RxRing {
    map: *mut u8,
    next: usize,
}

// SAFETY: the mapping is owned by this value alone; moving it to another
// thread moves the only handle to it.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Sets `TPACKET_V3` and a receive ring up on the packet socket `fd`
    /// (before it is bound), and maps the ring.
    pub fn new(fd: RawFd) -> io::Result<RxRing> {
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        set_option(fd, libc::PACKET_VERSION, &version)?;
        let request = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: BLOCKS as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: (BLOCK_SIZE * BLOCKS / FRAME_SIZE) as u32,
            tp_retire_blk_tov: RETIRE_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(fd, libc::PACKET_RX_RING, &request)?;
        // SAFETY: maps the ring just configured on `fd`, of exactly the
        // size requested; the result is checked before use.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BLOCK_SIZE * BLOCKS,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            map: map.cast(),
            next: 0,
        })
    }

    /// The status word of block `index`, shared with the kernel.
    fn status(&self, index: usize) -> &AtomicU32 {
        // SAFETY: `index < BLOCKS`, so the block descriptor lies inside the
        // mapping, 8-byte aligned (blocks start at page multiples); its
        // status word is a u32 that only the kernel and this handle touch,
        // through atomic accesses here.
        unsafe {
            let block = self.map.add(index * BLOCK_SIZE);
            let desc = block.cast::<libc::tpacket_block_desc>();
            let status = std::ptr::addr_of_mut!((*desc).hdr.bh1.block_status);
            AtomicU32::from_ptr(status)
        }
    }

    /// Hands the packets of the blocks the kernel has filled to `each`
    /// (packet from its network header on, packet type and link-layer
    /// source, and the kernel's receive time since the Unix epoch), block
    /// by block, until at least `budget` packets were read or no full
    /// block is left. Returns how many packets were read.
    pub fn drain(
        &mut self,
        budget: usize,
        mut each: impl FnMut(&[u8], Arrival, Duration),
    ) -> usize {
        let mut read = 0;
        while read < budget {
            let index = self.next;
            if self.status(index).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the kernel handed block `index` over (status USER,
            // read with acquire ordering), so it does not write it until
            // the status is reset below; the slice covers the block only.
            let block =
                unsafe { std::slice::from_raw_parts(self.map.add(index * BLOCK_SIZE), BLOCK_SIZE) };
            read += read_block(block, &mut each);
            self.status(index)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next = (index + 1) % BLOCKS;
        }
        read
    }
}

/// Packets the kernel dropped on the packet socket `fd` since the last
/// call (or since it was opened), for want of room in its ring or buffer.
/// The kernel's counters restart at each reading.
pub fn take_drops(fd: RawFd) -> io::Result<u32> {
    // SAFETY: all-zero bytes are a valid `tpacket_stats_v3` (three u32s).
    let mut stats: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
    // SAFETY: `stats` is a live, writable value of `len` bytes; the kernel
    // writes at most `len` bytes and sets `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut stats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(stats.tp_drops)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads the packets of one block, checking every offset; returns how
/// many were handed over.
fn read_block(block: &[u8], each: &mut impl FnMut(&[u8], Arrival, Duration)) -> usize {
    let u32_at = |at: usize| -> Option<u32> {
        block
            .get(at..at + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u16_at = |at: usize| -> Option<u16> {
        block
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    // tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1:
    // block_status, num_pkts, offset_to_first_pkt.
    let (Some(count), Some(first)) = (u32_at(12), u32_at(16)) else {
        return 0;
    };
    // tpacket3_hdr: tp_next_offset at 0, tp_sec at 4, tp_nsec at 8,
    // tp_snaplen at 12, tp_net at 26.
    let mut at = first as usize;
    let mut handed = 0;
    for _ in 0..count {
        let (Some(next), Some(snaplen), Some(net)) = (u32_at(at), u32_at(at + 12), u16_at(at + 26))
        else {
            break;
        };
        let stamp = Duration::new(
            u64::from(u32_at(at + 4).unwrap_or(0)),
            u32_at(at + 8).unwrap_or(0).min(999_999_999),
        );
        let start = at + net as usize;
        let arrival = block.get(at + SOCKADDR_AT + 10..).and_then(Arrival::read);
        if let (Some(packet), Some(arrival)) = (block.get(start..start + snaplen as usize), arrival)
        {
            each(packet, arrival, stamp);
            handed += 1;
        }
        if next == 0 {
            break;
        }
        at += next as usize;
    }
    handed
}

fn set_option<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once.
        unsafe {
            libc::munmap(self.map.cast(), BLOCK_SIZE * BLOCKS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_block_is_skipped_not_read_out_of_bounds() {
        let mut block = vec![0u8; 256];
        // One packet claimed, first at an offset past the end.
        block[12..16].copy_from_slice(&1u32.to_ne_bytes());
        block[16..20].copy_from_slice(&10_000u32.to_ne_bytes());
        assert_eq!(
            read_block(&block, &mut |_, _, _| panic!("nothing to hand")),
            0
        );
        // A packet whose length runs past the block.
        block[16..20].copy_from_slice(&48u32.to_ne_bytes());
        block[48 + 12..48 + 16].copy_from_slice(&1_000u32.to_ne_bytes());
        block[48 + 26..48 + 28].copy_from_slice(&80u16.to_ne_bytes());
        assert_eq!(
            read_block(&block, &mut |_, _, _| panic!("nothing to hand")),
            0
        );
    }

    #[test]
    fn packets_are_read_in_order_with_their_type() {
        let mut block = vec![0u8; 1024];
        block[12..16].copy_from_slice(&2u32.to_ne_bytes());
        block[16..20].copy_from_slice(&48u32.to_ne_bytes());
        for (at, next, payload, kind) in
            [(48usize, 200u32, [1u8, 2, 3], 0u8), (248, 0, [4, 5, 6], 4)]
        {
            block[at..at + 4].copy_from_slice(&next.to_ne_bytes());
            block[at + 12..at + 16].copy_from_slice(&3u32.to_ne_bytes());
            block[at + 26..at + 28].copy_from_slice(&100u16.to_ne_bytes());
            block[at + 100..at + 103].copy_from_slice(&payload);
            block[at + SOCKADDR_AT + 10] = kind;
            block[at + SOCKADDR_AT + 11] = 6;
            block[at + SOCKADDR_AT + 12..at + SOCKADDR_AT + 18].fill(kind + 1);
        }
        let mut seen = Vec::new();
        assert_eq!(
            read_block(&block, &mut |p, a, _| seen.push((p.to_vec(), a))),
            2
        );
        let arrival = |kind: u8| Arrival {
            kind,
            mac: Some([kind + 1; 6]),
        };
        assert_eq!(
            seen,
            vec![(vec![1, 2, 3], arrival(0)), (vec![4, 5, 6], arrival(4))]
        );
    }
}
