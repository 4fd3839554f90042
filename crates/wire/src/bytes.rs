//! Big-endian field reads and writes at fixed offsets, shared by the views
//! and the probe template.
//!
//! Contract: never panics. A read past the end yields zero and a write past
//! the end does nothing; callers only pass offsets inside headers whose
//! length they have already checked, usually into a `[u8; N]`, where the
//! compiler folds the check away. Allocation: none. Byte order is network
//! order (RFC 791, "Data Transmission Order").

use core::net::{Ipv4Addr, Ipv6Addr};

/// `N` bytes at `at`, or `None` if they do not fit.
#[inline(always)]
fn chunk<const N: usize>(b: &[u8], at: usize) -> Option<&[u8; N]> {
    b.get(at..)?.first_chunk::<N>()
}

/// The `N` writable bytes at `at`, or `None` if they do not fit.
#[inline(always)]
fn chunk_mut<const N: usize>(b: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    b.get_mut(at..)?.first_chunk_mut::<N>()
}

/// The byte at `at`, or 0.
#[inline(always)]
pub(crate) fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// The big-endian `u16` at `at`, or 0.
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    chunk(b, at).map_or(0, |c| u16::from_be_bytes(*c))
}

/// The big-endian `u32` at `at`, or 0.
#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    chunk(b, at).map_or(0, |c| u32::from_be_bytes(*c))
}

/// The IPv4 address at `at`, or `0.0.0.0`.
#[inline(always)]
pub(crate) fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    chunk::<4>(b, at).map_or(Ipv4Addr::UNSPECIFIED, |c| Ipv4Addr::from(*c))
}

/// The IPv6 address at `at`, or `::`.
#[inline(always)]
pub(crate) fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    chunk::<16>(b, at).map_or(Ipv6Addr::UNSPECIFIED, |c| Ipv6Addr::from(*c))
}

/// Writes the byte `v` at `at`, if it fits.
#[inline(always)]
pub(crate) fn put8(b: &mut [u8], at: usize, v: u8) {
    if let Some(x) = b.get_mut(at) {
        *x = v;
    }
}

/// Writes `v` big-endian at `at`, if it fits.
#[inline(always)]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(c) = chunk_mut(b, at) {
        *c = v.to_be_bytes();
    }
}

/// Writes `v` big-endian at `at`, if it fits.
#[inline(always)]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    if let Some(c) = chunk_mut(b, at) {
        *c = v.to_be_bytes();
    }
}

/// Writes `v` (already in network order) at `at`, if it fits.
#[inline(always)]
pub(crate) fn put_bytes<const N: usize>(b: &mut [u8], at: usize, v: [u8; N]) {
    if let Some(c) = chunk_mut(b, at) {
        *c = v;
    }
}

/// `b[at..]`, or empty if `at` is past the end.
#[inline(always)]
pub(crate) fn tail(b: &[u8], at: usize) -> &[u8] {
    b.get(at..).unwrap_or(&[])
}

/// `b[at..]` writable, or empty if `at` is past the end.
#[inline(always)]
pub(crate) fn tail_mut(b: &mut [u8], at: usize) -> &mut [u8] {
    b.get_mut(at..).unwrap_or(&mut [])
}
