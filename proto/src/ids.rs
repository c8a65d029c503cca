//! Random identifiers and secrets in hex, one way for node and client: ids prefixed by what
//! they name (`gw_`, `cl_`, ...), so a pasted id says what it is.

use rand::RngCore;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `n` random bytes from the thread's CSPRNG, in hex (`2n` digits).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex(&b)
}

/// A new random id such as `gw_3f9a0c1be2d4a5f6` (64 random bits).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_distinct_hex() {
        let a = new_id("gw");
        assert!(a.starts_with("gw_") && a.len() == 19);
        assert_ne!(a, new_id("gw"));
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(random_hex(32).len(), 64);
    }
}
