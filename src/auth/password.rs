//! Passwords: hashed with Argon2id (the OWASP parameters: 19 MiB, 2 passes, 1 lane) into
//! a PHC string, which carries its own salt and parameters, so stronger parameters later
//! still verify the hashes made now.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

/// Shorter passwords are refused: at the panel's rate of guesses (see the throttle) ten
/// characters are out of reach.
pub const MIN_CHARS: usize = 10;
/// Longer ones are refused too: hashing megabytes is a way to tie up the CPU.
pub const MAX_CHARS: usize = 256;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a password cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have {MIN_CHARS} to {MAX_CHARS} characters (it has {0})")]
    Length(usize),
    #[error("the password could not be hashed: {0}")]
    Hashing(String),
}

/// Hashes `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let chars = password.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&chars) {
        return Err(PasswordError::Length(chars));
    }
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let salt =
        SaltString::encode_b64(&random).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `password` matches `stored`. A stored hash that does not parse matches
/// nothing.
pub(crate) fn verify(stored: &str, password: &str) -> bool {
    if password.chars().count() > MAX_CHARS {
        return false;
    }
    PasswordHash::new(stored)
        .is_ok_and(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A hash of nothing anyone knows, verified against when the account does not exist, so
/// that a wrong name takes as long as a wrong password and names cannot be probed.
pub(crate) fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut random = [0u8; 24];
        let _ = getrandom::fill(&mut random);
        hash(&data_encoding::BASE64.encode(&random)).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(&stored, "correct horse battery"));
        assert!(!verify(&stored, "correct horse batterY"));
        assert!(!verify("not a hash", "correct horse battery"));
        assert_ne!(stored, hash("correct horse battery").unwrap(), "salted");
        assert!(!verify(decoy(), ""));
    }

    #[test]
    fn lengths_are_bounded() {
        assert_eq!(hash("short"), Err(PasswordError::Length(5)));
        let long = "x".repeat(MAX_CHARS + 1);
        assert_eq!(hash(&long), Err(PasswordError::Length(MAX_CHARS + 1)));
        assert!(hash(&"ü".repeat(MIN_CHARS)).is_ok());
    }
}
