//! Bounded writing and reading of payload bytes: [`Out`] appends to a
//! caller's buffer and [`In`] reads from an untrusted answer.
//!
//! Contract: never panics and never allocates. Every write that does not
//! fit and every read past the end yields `None`, which the protocol
//! modules pass up with `?`. Multi-byte values are big-endian (network
//! order) unless a method says otherwise.

/// Appends bytes to a caller's buffer.
pub(crate) struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Out<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// How many bytes have been written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The next `n` bytes of the buffer, now counted as written.
    fn claim(&mut self, n: usize) -> Option<&mut [u8]> {
        let end = self.len.checked_add(n)?;
        let slot = self.buf.get_mut(self.len..end)?;
        self.len = end;
        Some(slot)
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> Option<()> {
        self.claim(b.len())?.copy_from_slice(b);
        Some(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Option<()> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Option<()> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Option<()> {
        self.bytes(&v.to_be_bytes())
    }

    /// `v` little-endian (WireGuard's byte order).
    pub(crate) fn u32_le(&mut self, v: u32) -> Option<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// `n` bytes of `value`.
    pub(crate) fn fill(&mut self, n: usize, value: u8) -> Option<()> {
        self.claim(n)?.fill(value);
        Some(())
    }

    /// `v` as 8 lowercase hexadecimal digits.
    pub(crate) fn hex32(&mut self, v: u32) -> Option<()> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 8];
        for (i, digit) in text.iter_mut().enumerate() {
            let shift = 28u32.checked_sub(u32::try_from(i).ok()?.checked_mul(4)?)?;
            *digit = *DIGITS.get(usize::try_from((v >> shift) & 0xf).ok()?)?;
        }
        self.bytes(&text)
    }

    /// Overwrites the big-endian `u16` at `at`, already written.
    pub(crate) fn patch_u16(&mut self, at: usize, v: u16) -> Option<()> {
        let end = at.checked_add(2)?;
        if end > self.len {
            return None;
        }
        self.buf.get_mut(at..end)?.copy_from_slice(&v.to_be_bytes());
        Some(())
    }

    /// Overwrites the byte at `at`, already written.
    pub(crate) fn patch_u8(&mut self, at: usize, v: u8) -> Option<()> {
        if at >= self.len {
            return None;
        }
        *self.buf.get_mut(at)? = v;
        Some(())
    }
}

/// Reads an untrusted answer front to back.
#[derive(Clone, Copy)]
pub(crate) struct In<'a> {
    rest: &'a [u8],
}

impl<'a> In<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// What is left.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.rest.split_first_chunk::<N>()?;
        self.rest = tail;
        Some(*head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u32_le(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
}

/// The value of 8 hexadecimal digits (either case).
pub(crate) fn parse_hex32(text: &[u8]) -> Option<u32> {
    let digits: &[u8; 8] = text.first_chunk()?;
    let mut v: u32 = 0;
    for &d in digits {
        let nibble = char::from(d).to_digit(16)?;
        v = v.checked_mul(16)?.checked_add(nibble)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_out_bounds() {
        let mut buf = [0u8; 4];
        let mut out = Out::new(&mut buf);
        assert_eq!(out.u16(0x1234), Some(()));
        assert_eq!(out.u32(1), None);
        assert_eq!(out.len(), 2);
        assert_eq!(out.patch_u16(1, 0), None);
        assert_eq!(out.patch_u8(2, 0), None);
        assert_eq!(out.u16(0xabcd), Some(()));
        assert_eq!(buf, [0x12, 0x34, 0xab, 0xcd]);
    }

    #[test]
    fn test_hex() {
        let mut buf = [0u8; 8];
        Out::new(&mut buf).hex32(0x0a1b_2c3d).unwrap();
        assert_eq!(&buf, b"0a1b2c3d");
        assert_eq!(parse_hex32(b"0A1B2C3D;x"), Some(0x0a1b_2c3d));
        assert_eq!(parse_hex32(b"0a1b2c3"), None);
        assert_eq!(parse_hex32(b"0a1b2c3g"), None);
    }
}
