//! The optional second factor: TOTP (RFC 6238) as authenticator apps make it — SHA-1,
//! six digits, 30-second steps — accepting the step before and after for clock drift,
//! and each step's code once.

use crate::store::records::TotpSecret;
use totp_rs::{Algorithm, TOTP};

const STEP_SECS: u64 = 30;
const DIGITS: usize = 6;

/// A fresh 20-byte secret (RFC 4226's recommended length).
pub(crate) fn new_secret() -> Result<TotpSecret, getrandom::Error> {
    let mut secret = vec![0u8; 20];
    getrandom::fill(&mut secret)?;
    Ok(TotpSecret {
        secret,
        last_step: 0,
    })
}

/// The secret as authenticator apps take it when typed in.
pub fn base32(secret: &TotpSecret) -> String {
    data_encoding::BASE32_NOPAD.encode(&secret.secret)
}

/// The `otpauth://` address an authenticator app reads (from a QR code or pasted).
pub fn url(account: &str, secret: &TotpSecret) -> String {
    format!(
        "otpauth://totp/edgebot:{account}?secret={}&issuer=edgebot&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        base32(secret)
    )
}

/// Checks `code` at unix time `now`; on success remembers its step so the same code
/// cannot be used again.
pub(crate) fn accept(secret: &mut TotpSecret, code: &str, now: u64) -> bool {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(totp) = TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP_SECS, secret.secret.clone()) else {
        return false;
    };
    let current = now / STEP_SECS;
    let mut accepted = None;
    // Every candidate step is checked, whatever matched, so timing says nothing.
    for step in [current.saturating_sub(1), current, current + 1] {
        if step > secret.last_step && totp.check(code, step * STEP_SECS) {
            accepted = Some(step);
        }
    }
    match accepted {
        Some(step) => {
            secret.last_step = step;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's SHA-1 test secret and vectors (the last six digits of the eight).
    #[test]
    fn codes_match_the_rfc_and_are_good_once() {
        let mut secret = TotpSecret {
            secret: b"12345678901234567890".to_vec(),
            last_step: 0,
        };
        assert!(accept(&mut secret, "287082", 59));
        assert!(!accept(&mut secret, "287082", 59), "the same code twice");
        assert!(accept(&mut secret, "081804", 1_111_111_109));
        assert!(
            !accept(&mut secret, "081804", 1_111_111_109 + 120),
            "too old"
        );
        assert!(!accept(&mut secret, "12345", 0));
        assert!(!accept(&mut secret, "abcdef", 0));
        let fresh = new_secret().unwrap();
        assert_eq!(base32(&fresh).len(), 32);
        assert!(url("alice", &fresh).starts_with("otpauth://totp/edgebot:alice?secret="));
    }
}
