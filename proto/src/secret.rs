//! One type for every secret a process holds (admin token, gateway tokens, the UI
//! password): its `Debug` never shows it, so no log line or panic message can leak it.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret. The SHA-256 digests are compared in constant
    /// time, so neither the content nor the length leaks through timing.
    pub fn matches(&self, candidate: &str) -> bool {
        use ring::digest::{digest, SHA256};
        let a = digest(&SHA256, self.0.as_bytes());
        let b = digest(&SHA256, candidate.as_bytes());
        crate::tls::ring_eq(a.as_ref(), b.as_ref())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_never_shows_the_secret() {
        let s = super::Secret::new("sga_very_secret");
        assert!(!format!("{s:?}").contains("very_secret"));
        assert_eq!(s.expose(), "sga_very_secret");
        assert!(s.matches("sga_very_secret"));
        assert!(!s.matches("sga_very_secre"));
        assert!(!s.matches(""));
    }
}
