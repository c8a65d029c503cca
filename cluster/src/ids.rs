//! Identifiers and gateway tokens.
//!
//! Ids are random and prefixed by what they name (`gw_`, `ds_`, ...), so a pasted id says
//! what it is. Tokens are 256 random bits shown once; the node keeps only their SHA-256
//! and compares in constant time.

use ring::digest::{digest, SHA256};
pub use sg_proto::ids::new_id;
use sg_proto::ids::{hex, random_hex};

/// A new gateway token: `sgt_` and 64 hex digits (256 random bits).
pub fn new_token() -> String {
    format!("sgt_{}", random_hex(32))
}

/// What the node stores in place of a token.
pub fn hash_token(token: &str) -> String {
    hex(digest(&SHA256, token.as_bytes()).as_ref())
}

/// Whether `candidate` is the token whose hash is `stored_hash`, in constant time.
pub fn token_matches(candidate: &str, stored_hash: &str) -> bool {
    sg_proto::tls::ring_eq(hash_token(candidate).as_bytes(), stored_hash.as_bytes())
}

/// The file in the data dir that holds the admin token (mode 0600), for sgctl.
pub use sg_api::node_file::ADMIN_TOKEN_FILE;

/// The admin token: `given` (flag or environment), else `admin.token`, else newly
/// generated there; with a note to log when it was generated.
pub fn admin_token(
    data_dir: &std::path::Path,
    given: Option<&str>,
) -> Result<(String, Option<String>), crate::pki::PkiError> {
    if let Some(t) = given {
        return Ok((t.to_string(), None));
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok((t, None));
        }
    }
    let token = new_token().replacen("sgt_", "sga_", 1);
    crate::pki::write_private(&path, format!("{token}\n").as_bytes(), 0o600)?;
    let note = format!(
        "generated an admin token in {} (mode 0600): sgctl reads it from there",
        path.display()
    );
    Ok((token, Some(note)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_their_hash_only() {
        let t = new_token();
        assert!(t.starts_with("sgt_") && t.len() == 68);
        let h = hash_token(&t);
        assert!(token_matches(&t, &h));
        assert!(!token_matches(&new_token(), &h));
        assert_eq!(
            hash_token("sgt_abc"),
            "5e21159dbff19e979371e21cb843e63810a486f02db3986568f979fb29c3e425",
            "the stored form is the token's SHA-256, never the token"
        );
    }
}
