//! Who may use the admin panel and API, and how they prove it.
//!
//! Accounts live in the store with an Argon2id hash of their password ([`password`]),
//! an optional TOTP second factor ([`totp`]) and a role ([`AdminRole`]). Signing in
//! through the panel makes a [`PanelSession`] kept under the digest of its cookie;
//! signing in through the API makes a short-lived signed token ([`token`]). Failures are
//! throttled per account name and per address ([`throttle`]). Every change an admin
//! makes is written to the audit log in the same commit as the change itself.
//!
//! This module knows nothing of HTTP: the listener passes it names, passwords, cookie
//! values and addresses, and renders what comes back.

pub mod password;
pub(crate) mod throttle;
pub(crate) mod token;
pub mod totp;

use crate::calendar::{UnixMillis, UnixSecs};
use crate::store::records::{
    Account, AdminRole, AuditAction, AuditEntry, PanelSession, TotpSecret,
};
use crate::store::{Store, StoreError};
use password::PasswordError;
use std::time::{Duration, Instant};
use throttle::LoginThrottle;
use token::Tokens;

/// Who did something, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The account, `api-token` or `cli`.
    pub name: String,
    /// The peer address, or `local`.
    pub address: String,
}

impl Actor {
    /// Whoever runs `edgebot admin …` on the machine.
    pub fn cli() -> Actor {
        Actor {
            name: "cli".into(),
            address: "local".into(),
        }
    }

    pub(crate) fn audit(&self, action: AuditAction) -> AuditEntry {
        AuditEntry {
            at_ms: UnixMillis::now(),
            actor: self.name.clone(),
            address: self.address.clone(),
            action,
        }
    }
}

/// Why an account operation or a sign-in failed. The messages are for the person at the
/// panel or the command line; none of them says whether a name exists unless the caller
/// already proved who they are.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("account names have 1 to 32 characters of a-z, 0-9, `_`, `.` and `-` (got `{0}`)")]
    BadName(String),
    #[error("an account named `{0}` exists already")]
    Exists(String),
    #[error("no account named `{0}`")]
    NoSuchAccount(String),
    #[error("`{0}` is the last owner; make another account owner first")]
    LastOwner(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("wrong name, password or code")]
    Refused,
    #[error("too many failed logins; try again in {0} s")]
    Throttled(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
}

/// An account as it may be shown: no hash, no secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountSummary {
    pub name: String,
    pub role: AdminRole,
    pub totp: bool,
    pub created: UnixSecs,
}

impl From<&Account> for AccountSummary {
    fn from(account: &Account) -> AccountSummary {
        AccountSummary {
            name: account.name.clone(),
            role: account.role,
            totp: account.totp.is_some(),
            created: account.created,
        }
    }
}

/// The longest account name.
const MAX_NAME: usize = 32;

fn check_name(name: &str) -> Result<(), AuthError> {
    let good = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if good {
        Ok(())
    } else {
        Err(AuthError::BadName(name.to_owned()))
    }
}

fn random<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(bytes)
}

/// Hashing takes tens of milliseconds of CPU: off the runtime's threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub async fn list_accounts(store: &Store) -> Result<Vec<AccountSummary>, AuthError> {
    Ok(store.accounts()?.iter().map(AccountSummary::from).collect())
}

pub async fn add_account(
    store: &Store,
    name: &str,
    role: AdminRole,
    password: String,
    actor: &Actor,
) -> Result<(), AuthError> {
    check_name(name)?;
    let hash = blocking(move || password::hash(&password)).await?;
    let now = UnixSecs::now();
    let account = Account {
        name: name.to_owned(),
        role,
        password_hash: hash,
        totp: None,
        created: now,
        valid_after: now,
    };
    let audit = actor.audit(AuditAction::AccountAdded {
        account: name.to_owned(),
        role,
    });
    let added = store
        .write(move |t| {
            if t.account(&account.name)?.is_some() {
                return Ok(false);
            }
            t.put_account(&account)?;
            t.append_audit(&audit)?;
            Ok(true)
        })
        .await?;
    if added {
        tracing::info!(account = name, role = role.name(), actor = %actor.name, "account added");
        Ok(())
    } else {
        Err(AuthError::Exists(name.to_owned()))
    }
}

/// Removes an account; the last owner cannot be removed, so the bot is never left
/// without anyone who can manage accounts.
pub async fn remove_account(store: &Store, name: &str, actor: &Actor) -> Result<(), AuthError> {
    let owned = name.to_owned();
    let audit = actor.audit(AuditAction::AccountRemoved {
        account: owned.clone(),
    });
    let outcome = store
        .write(move |t| {
            let Some(account) = t.account(&owned)? else {
                return Ok(Err(AuthError::NoSuchAccount(owned.clone())));
            };
            if account.role == AdminRole::Owner
                && t.accounts_with_role_at_least(AdminRole::Owner)? <= 1
            {
                return Ok(Err(AuthError::LastOwner(owned.clone())));
            }
            t.remove_account(&owned)?;
            t.append_audit(&audit)?;
            Ok(Ok(()))
        })
        .await?;
    if outcome.is_ok() {
        tracing::info!(account = name, actor = %actor.name, "account removed");
    }
    outcome
}

/// Changes what a stored account is: the one path for password and TOTP changes,
/// each of which signs the account out everywhere.
async fn change_account(
    store: &Store,
    name: &str,
    audit: AuditEntry,
    change: impl Fn(&mut Account) -> Result<(), AuthError> + Send + 'static,
) -> Result<(), AuthError> {
    let owned = name.to_owned();
    store
        .write(move |t| {
            let Some(mut account) = t.account(&owned)? else {
                return Ok(Err(AuthError::NoSuchAccount(owned.clone())));
            };
            if let Err(e) = change(&mut account) {
                return Ok(Err(e));
            }
            account.valid_after = UnixSecs::now();
            t.put_account(&account)?;
            t.end_panel_sessions_of(&owned)?;
            t.append_audit(&audit)?;
            Ok(Ok(()))
        })
        .await?
}

pub async fn change_password(
    store: &Store,
    name: &str,
    password: String,
    actor: &Actor,
) -> Result<(), AuthError> {
    let hash = blocking(move || password::hash(&password)).await?;
    let audit = actor.audit(AuditAction::PasswordChanged {
        account: name.to_owned(),
    });
    change_account(store, name, audit, move |account| {
        account.password_hash.clone_from(&hash);
        Ok(())
    })
    .await?;
    tracing::info!(account = name, actor = %actor.name, "password changed");
    Ok(())
}

/// Turns TOTP on with a fresh secret (returned, to be shown once) or off.
pub async fn set_totp(
    store: &Store,
    name: &str,
    on: bool,
    actor: &Actor,
) -> Result<Option<TotpSecret>, AuthError> {
    let secret = if on {
        Some(totp::new_secret().map_err(|e| AuthError::Random(e.to_string()))?)
    } else {
        None
    };
    let audit = actor.audit(AuditAction::TotpChanged {
        account: name.to_owned(),
        on,
    });
    let stored = secret.clone();
    change_account(store, name, audit, move |account| {
        account.totp.clone_from(&stored);
        Ok(())
    })
    .await?;
    tracing::info!(account = name, on, actor = %actor.name, "TOTP changed");
    Ok(secret)
}

/// How long what a sign-in makes lasts.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A panel session ends after this long unused.
    pub idle: Duration,
    /// A panel session ends after this long however much it is used.
    pub max: Duration,
    /// An API token lasts this long.
    pub token: Duration,
}

/// A signed-in panel session, as a request sees it.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account: String,
    pub role: AdminRole,
    pub csrf: String,
    digest: [u8; 32],
}

/// What the running listener keeps to let people in: the store, the token key, the
/// throttle and the limits.
pub struct Gate {
    store: Store,
    tokens: Tokens,
    throttle: LoginThrottle,
    limits: SessionLimits,
}

fn digest(cookie: &[u8; 32]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cookie);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl Gate {
    /// Opens the gate over `store`, making the token key on first use.
    pub async fn open(store: Store, limits: SessionLimits) -> Result<Gate, AuthError> {
        let key = store.token_key_or(random()?).await?;
        Ok(Gate {
            store,
            tokens: Tokens::new(&key),
            throttle: LoginThrottle::default(),
            limits,
        })
    }

    /// The longest a panel session lasts: the cookie's `Max-Age`.
    pub(crate) fn session_max(&self) -> Duration {
        self.limits.max
    }

    /// Whether any account exists: without one and without a static token the API is off.
    pub(crate) fn any_account(&self) -> Result<bool, AuthError> {
        Ok(!self.store.accounts()?.is_empty())
    }

    /// Checks a name, password and (when the account has one) TOTP code, throttled per
    /// name and per address; every outcome is audited.
    pub(crate) async fn sign_in(
        &self,
        name: &str,
        password: &str,
        code: &str,
        address: &str,
    ) -> Result<Account, AuthError> {
        // What a stranger typed is kept (in the throttle, in the audit log) only as long
        // as the longest name that can exist, so a flood of huge names costs no memory.
        let typed = name;
        let name: String = typed.chars().take(MAX_NAME).collect();
        let name = name.as_str();
        let keys = [format!("account:{name}"), format!("address:{address}")];
        if let Some(wait) = self.throttle.wait(&keys, Instant::now()) {
            return Err(AuthError::Throttled(wait.as_secs().max(1)));
        }
        let account = if typed.len() <= MAX_NAME {
            self.store.account(typed)?
        } else {
            None
        };
        let stored = account
            .as_ref()
            .map_or_else(|| password::decoy().to_owned(), |a| a.password_hash.clone());
        let candidate = password.to_owned();
        let password_ok = blocking(move || password::verify(&stored, &candidate)).await;
        let now = UnixSecs::now();
        let actor = Actor {
            name: name.to_owned(),
            address: address.to_owned(),
        };
        let accepted = match account {
            Some(account) if password_ok => self.second_factor(account, code, now).await?,
            _ => None,
        };
        let Some(account) = accepted else {
            self.throttle.failed(&keys, Instant::now());
            let audit = actor.audit(AuditAction::SignInRefused {
                account: name.to_owned(),
            });
            self.store.write(move |t| t.append_audit(&audit)).await?;
            tracing::info!(address, "sign-in refused");
            return Err(AuthError::Refused);
        };
        self.throttle.succeeded(&keys);
        Ok(account)
    }

    /// The account if it needs no code or `code` is good now (and then spent).
    async fn second_factor(
        &self,
        account: Account,
        code: &str,
        now: UnixSecs,
    ) -> Result<Option<Account>, AuthError> {
        if account.totp.is_none() {
            return Ok(Some(account));
        }
        let name = account.name.clone();
        let code = code.to_owned();
        let at = u64::try_from(now.get()).unwrap_or_default();
        // Checked and spent in one transaction, so one code cannot sign in twice.
        let spent = self
            .store
            .write(move |t| {
                let Some(mut account) = t.account(&name)? else {
                    return Ok(None);
                };
                let Some(secret) = account.totp.as_mut() else {
                    return Ok(Some(account));
                };
                if !totp::accept(secret, &code, at) {
                    return Ok(None);
                }
                t.put_account(&account)?;
                Ok(Some(account))
            })
            .await?;
        Ok(spent)
    }

    /// Signs in and starts a panel session; returns the cookie value and the session.
    pub async fn start_session(
        &self,
        name: &str,
        password: &str,
        code: &str,
        address: &str,
    ) -> Result<(String, SignedIn), AuthError> {
        let account = self.sign_in(name, password, code, address).await?;
        let cookie: [u8; 32] = random()?;
        let csrf = data_encoding::BASE64URL_NOPAD.encode(&random::<32>()?);
        let now = UnixSecs::now();
        let session = PanelSession {
            account: account.name.clone(),
            csrf: csrf.clone(),
            created: now,
            idle_until: later(now, self.limits.idle),
            ends_at: later(now, self.limits.max),
        };
        let key = digest(&cookie);
        let audit = Actor {
            name: account.name.clone(),
            address: address.to_owned(),
        }
        .audit(AuditAction::SignedIn);
        let stored = session.clone();
        self.store
            .write(move |t| {
                t.put_panel_session(key, &stored)?;
                t.append_audit(&audit)
            })
            .await?;
        tracing::info!(account = %account.name, address, "signed in");
        Ok((
            data_encoding::BASE64URL_NOPAD.encode(&cookie),
            SignedIn {
                account: account.name,
                role: account.role,
                csrf,
                digest: key,
            },
        ))
    }

    /// The live session a cookie stands for, with its account's current role; `None`
    /// for an unknown, expired or voided one. Use pushes the idle limit forward (written
    /// at most once a minute, to keep page views from costing a commit each).
    pub async fn session(&self, cookie: &str) -> Result<Option<SignedIn>, AuthError> {
        let Some(raw) = data_encoding::BASE64URL_NOPAD
            .decode(cookie.as_bytes())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        else {
            return Ok(None);
        };
        let key = digest(&raw);
        let Some(session) = self.store.panel_session(key)? else {
            return Ok(None);
        };
        let now = UnixSecs::now();
        let live = session.idle_until > now && session.ends_at > now;
        let account = self
            .store
            .account(&session.account)?
            .filter(|a| live && session.created >= a.valid_after);
        let Some(account) = account else {
            self.store.write(move |t| t.end_panel_session(key)).await?;
            return Ok(None);
        };
        let idle_until = later(now, self.limits.idle).min(session.ends_at);
        if idle_until.get() - session.idle_until.get() >= 60 {
            let mut refreshed = session.clone();
            refreshed.idle_until = idle_until;
            self.store
                .write(move |t| t.put_panel_session(key, &refreshed))
                .await?;
        }
        Ok(Some(SignedIn {
            account: account.name,
            role: account.role,
            csrf: session.csrf,
            digest: key,
        }))
    }

    pub async fn end_session(&self, signed_in: &SignedIn, address: &str) -> Result<(), AuthError> {
        let key = signed_in.digest;
        let audit = Actor {
            name: signed_in.account.clone(),
            address: address.to_owned(),
        }
        .audit(AuditAction::SignedOut);
        self.store
            .write(move |t| {
                t.end_panel_session(key)?;
                t.append_audit(&audit)
            })
            .await?;
        Ok(())
    }

    /// Signs in and issues an API token; returns it with its lifetime in seconds.
    pub async fn issue_token(
        &self,
        name: &str,
        password: &str,
        code: &str,
        address: &str,
    ) -> Result<(String, u64), AuthError> {
        let account = self.sign_in(name, password, code, address).await?;
        let ttl = self.limits.token.as_secs();
        let token = self.tokens.issue(
            &account.name,
            UnixSecs::now(),
            i64::try_from(ttl).unwrap_or(i64::MAX),
        );
        let audit = Actor {
            name: account.name.clone(),
            address: address.to_owned(),
        }
        .audit(AuditAction::TokenIssued);
        self.store.write(move |t| t.append_audit(&audit)).await?;
        Ok((token, ttl))
    }

    /// The account and its current role behind an API token, if the token is good and
    /// was issued after the account's last change.
    pub(crate) fn token_account(
        &self,
        token: &str,
    ) -> Result<Option<(String, AdminRole)>, AuthError> {
        let Some(claims) = self.tokens.check(token, UnixSecs::now()) else {
            return Ok(None);
        };
        Ok(self
            .store
            .account(&claims.sub)?
            .filter(|a| claims.iat >= a.valid_after.get())
            .map(|a| (a.name, a.role)))
    }
}

fn later(now: UnixSecs, after: Duration) -> UnixSecs {
    UnixSecs(
        now.get()
            .saturating_add(i64::try_from(after.as_secs()).unwrap_or(i64::MAX)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use totp_rs::{Algorithm, TOTP};

    const PASSWORD: &str = "a long enough password";

    async fn gate() -> (Gate, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let limits = SessionLimits {
            idle: Duration::from_secs(600),
            max: Duration::from_secs(3600),
            token: Duration::from_secs(60),
        };
        let gate = Gate::open(store.clone(), limits).await.unwrap();
        add_account(
            &store,
            "olga",
            AdminRole::Owner,
            PASSWORD.into(),
            &Actor::cli(),
        )
        .await
        .unwrap();
        (gate, store, dir)
    }

    #[tokio::test]
    async fn with_totp_on_a_sign_in_needs_the_current_code_once() {
        let (gate, store, _dir) = gate().await;
        let secret = set_totp(&store, "olga", true, &Actor::cli())
            .await
            .unwrap()
            .unwrap();
        let authenticator = TOTP::new(Algorithm::SHA1, 6, 0, 30, secret.secret.clone()).unwrap();
        let now = u64::try_from(UnixSecs::now().get()).unwrap();
        let code = authenticator.generate(now);
        for wrong in ["", "000000"] {
            let refused = gate.start_session("olga", PASSWORD, wrong, "a").await;
            assert!(matches!(refused, Err(AuthError::Refused)), "{wrong:?}");
        }
        let (cookie, signed_in) = gate
            .start_session("olga", PASSWORD, &code, "a")
            .await
            .unwrap();
        assert_eq!(signed_in.role, AdminRole::Owner);
        assert!(gate.session(&cookie).await.unwrap().is_some());
        // The same code a second time is a replay.
        let replay = gate.start_session("olga", PASSWORD, &code, "b").await;
        assert!(matches!(replay, Err(AuthError::Refused)));
        // Turning TOTP on again voided the sessions made before it; off needs no code.
        set_totp(&store, "olga", false, &Actor::cli())
            .await
            .unwrap();
        assert!(gate.session(&cookie).await.unwrap().is_none());
        assert!(gate.start_session("olga", PASSWORD, "", "c").await.is_ok());
    }

    #[tokio::test]
    async fn the_store_keeps_digests_and_hashes_never_the_secrets() {
        let (gate, store, dir) = gate().await;
        let (cookie, _) = gate.start_session("olga", PASSWORD, "", "a").await.unwrap();
        let (token, _) = gate.issue_token("olga", PASSWORD, "", "a").await.unwrap();
        assert_eq!(
            gate.token_account(&token).unwrap(),
            Some(("olga".into(), AdminRole::Owner))
        );
        drop(gate);
        drop(store);
        let file = std::fs::read(dir.path().join(crate::store::FILE_NAME)).unwrap();
        let contains = |needle: &[u8]| file.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(cookie.as_bytes()), "the session cookie is stored");
        assert!(!contains(PASSWORD.as_bytes()), "the password is stored");
        assert!(contains(b"$argon2id$"), "the hash is stored");
    }

    #[tokio::test]
    async fn a_huge_name_is_refused_and_kept_short() {
        let (gate, store, _dir) = gate().await;
        let huge = format!("olga{}", "x".repeat(100_000));
        let refused = gate.start_session(&huge, PASSWORD, "", "a").await;
        assert!(matches!(refused, Err(AuthError::Refused)));
        let audit = store.audit(None, 1).unwrap();
        let AuditAction::SignInRefused { account } = &audit[0].1.action else {
            panic!("{audit:?}");
        };
        assert_eq!(account.len(), MAX_NAME);
    }

    #[tokio::test]
    async fn accounts_refuse_bad_names_duplicates_and_losing_the_last_owner() {
        let (_gate, store, _dir) = gate().await;
        let cli = Actor::cli();
        for bad in ["", "Olga", "o lga", &"x".repeat(33)] {
            let refused = add_account(&store, bad, AdminRole::Viewer, PASSWORD.into(), &cli).await;
            assert!(matches!(refused, Err(AuthError::BadName(_))), "{bad:?}");
        }
        let again = add_account(&store, "olga", AdminRole::Viewer, PASSWORD.into(), &cli).await;
        assert!(matches!(again, Err(AuthError::Exists(_))));
        let short = add_account(&store, "vera", AdminRole::Viewer, "short".into(), &cli).await;
        assert!(matches!(short, Err(AuthError::Password(_))));
        let last = remove_account(&store, "olga", &cli).await;
        assert!(matches!(last, Err(AuthError::LastOwner(_))));
        add_account(&store, "otto", AdminRole::Owner, PASSWORD.into(), &cli)
            .await
            .unwrap();
        remove_account(&store, "olga", &cli).await.unwrap();
        let gone = remove_account(&store, "olga", &cli).await;
        assert!(matches!(gone, Err(AuthError::NoSuchAccount(_))));
        let names: Vec<_> = list_accounts(&store)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["otto"]);
    }
}
