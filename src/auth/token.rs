//! Short-lived signed tokens for the admin API (JWT, HS256), issued to an account by
//! `POST /api/v1/auth/token`. The key is made once and kept in the store, so tokens
//! survive a restart; the claims name the account, and the account's role is looked up
//! again on every request, so a demoted or removed account loses its power at once.

use crate::calendar::UnixSecs;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

const ISSUER: &str = "edgebot";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The account.
    pub(crate) sub: String,
    pub(crate) iat: i64,
    pub(crate) exp: i64,
    pub(crate) iss: String,
}

/// Signs and checks tokens with one key.
pub(crate) struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<redacted>)")
    }
}

impl Tokens {
    pub(crate) fn new(key: &[u8; 32]) -> Tokens {
        Tokens {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
        }
    }

    pub(crate) fn issue(&self, account: &str, now: UnixSecs, ttl_secs: i64) -> String {
        let claims = Claims {
            sub: account.to_owned(),
            iat: now.get(),
            exp: now.get().saturating_add(ttl_secs),
            iss: ISSUER.to_owned(),
        };
        // HS256 over claims that always serialize: signing cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// The claims of a token this key signed and that has not expired at `now`.
    pub(crate) fn check(&self, token: &str, now: UnixSecs) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        // Expiry is checked below against our clock, to the second.
        validation.validate_exp = false;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()?
            .claims;
        (claims.exp > now.get()).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_until_it_expires_and_only_under_its_key() {
        let tokens = Tokens::new(&[7; 32]);
        let now = UnixSecs(1_800_000_000);
        let token = tokens.issue("alice", now, 900);
        let claims = tokens.check(&token, UnixSecs(now.get() + 899)).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.iat, now.get());
        assert!(tokens.check(&token, UnixSecs(now.get() + 900)).is_none());
        assert!(Tokens::new(&[8; 32]).check(&token, now).is_none());
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert!(tokens.check(&tampered, now).is_none());
        assert!(tokens.check("not.a.token", now).is_none());
        // The "none" algorithm is refused.
        let unsigned = format!(
            "{}.{}.",
            data_encoding::BASE64URL_NOPAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            data_encoding::BASE64URL_NOPAD
                .encode(br#"{"sub":"alice","iat":1800000000,"exp":1900000000,"iss":"edgebot"}"#)
        );
        assert!(tokens.check(&unsigned, now).is_none());
    }
}
