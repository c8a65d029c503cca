//! Bytes on their way to the wire.
//!
//! Frame headers and small frames are packed into one buffer; Data payloads of at least
//! [`ZERO_COPY_MIN`] bytes are queued as the very buffers they were read into. The driver
//! hands the queue to a vectored write, so bulk bytes are copied once — by TLS, as it
//! encrypts them — instead of first into a staging buffer.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Payloads at least this large are referenced, not copied.
pub const ZERO_COPY_MIN: usize = 4096;

#[derive(Debug, Default)]
pub struct Transmit {
    sealed: VecDeque<Bytes>,
    sealed_len: usize,
    open: BytesMut,
}

impl Transmit {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes queued in total.
    pub fn len(&self) -> usize {
        self.sealed_len + self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where headers and small frames are encoded.
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.open
    }

    /// Queues a payload after what is already queued.
    pub fn put_payload(&mut self, payload: Bytes) {
        if payload.len() < ZERO_COPY_MIN {
            self.open.extend_from_slice(&payload);
        } else {
            self.seal();
            self.sealed_len += payload.len();
            self.sealed.push_back(payload);
        }
    }

    /// Closes the packing buffer so everything queued can be sliced.
    pub fn seal(&mut self) {
        if !self.open.is_empty() {
            let b = self.open.split().freeze();
            self.sealed_len += b.len();
            self.sealed.push_back(b);
        }
    }

    /// Fills `dst` with slices of what is sealed, in order; returns how many.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.sealed.iter()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// Drops the first `n` bytes (they were written).
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.sealed.front_mut() else {
                break;
            };
            let take = n.min(front.len());
            front.advance(take);
            self.sealed_len -= take;
            n -= take;
            if front.is_empty() {
                self.sealed.pop_front();
            }
        }
    }

    /// Everything queued, as one buffer (for tests and tools).
    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.len());
        for c in &self.sealed {
            out.extend_from_slice(c);
        }
        out.extend_from_slice(&self.open);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_are_packed_large_ones_referenced_order_kept() {
        let mut t = Transmit::new();
        t.buf().extend_from_slice(b"h1");
        t.put_payload(Bytes::from_static(b"small"));
        t.buf().extend_from_slice(b"h2");
        let big = Bytes::from(vec![9u8; ZERO_COPY_MIN]);
        t.put_payload(big.clone());
        t.buf().extend_from_slice(b"h3");
        t.seal();
        let mut slices = [IoSlice::new(&[]); 8];
        let n = t.io_slices(&mut slices);
        assert_eq!(n, 3, "packed, referenced, packed");
        assert_eq!(&*slices[0], b"h1smallh2");
        assert_eq!(
            slices[1].as_ptr(),
            big.as_ptr(),
            "the big payload is not copied"
        );
        let all = t.to_bytes();
        assert_eq!(all.len(), t.len());
        t.advance(10);
        assert_eq!(t.len(), all.len() - 10);
        assert_eq!(&t.to_bytes()[..], &all[10..]);
        t.advance(usize::MAX);
        assert!(t.is_empty());
    }
}
