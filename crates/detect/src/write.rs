//! Writing legacy pcap (microsecond timestamps): for generated captures
//! (benchmarks, tests, timestamp rewriting). Appends to a caller's buffer;
//! no I/O, no panic. Spec: draft-ietf-opsawg-pcap.

/// Appends the 24-byte file header (little-endian, microseconds).
pub fn pcap_header(out: &mut Vec<u8>, linktype: u32) {
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
}

/// Appends one record; `ts_us` is microseconds since the epoch (seconds
/// past 2106 wrap, as the format's 32-bit field does).
pub fn pcap_record(out: &mut Vec<u8>, ts_us: u64, packet: &[u8]) {
    let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&packet[..len as usize]);
}
