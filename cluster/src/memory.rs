//! Handing freed memory back to the system.
//!
//! glibc's allocator gives each thread that allocates an arena of its own and keeps what is
//! freed there for later use. The node's connections come and go on every worker thread,
//! and a client restart under load frees hundreds of streams' buffers at once, so without a
//! trim the resident size keeps the high-water mark of each arena's fragmentation: the soak
//! (`tests/e2e/soak.rs`) saw it creep by a few KiB per client restart. `malloc_trim(0)`
//! returns the whole free pages inside every arena (it advises the kernel it may take
//! them), which is what an operator watching the RSS expects. It takes well under a
//! millisecond on this heap and runs once a minute, off the byte path.

use std::time::Duration;

/// How often the node trims.
pub const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Returns free memory to the system (glibc only; elsewhere the allocator does its own).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_after_freeing_is_harmless() {
        let blocks: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 4096]).collect();
        drop(blocks);
        super::trim();
        let again: Vec<u8> = vec![7; 1 << 20];
        assert_eq!(again[12345], 7);
    }
}
