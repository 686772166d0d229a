//! The route table of the admin listener, and the request and reply it deals in.
//!
//! Every path the listener serves is one line of [`ROUTES`]; matching is a walk over that
//! table, never a chain of `if`s, so the OpenAPI document can be checked against it. The
//! types here carry no socket and no hyper body: a test builds a [`Request`], hands it to
//! [`Admin::handle`] and looks at the [`Reply`].

use super::scrape::ActiveUsersCache;
use super::wire::{ApiError, JSON, OPENMETRICS, Query, Reply, user_id};
use super::{AdminState, api, openapi, panel, ready, scrape};
use crate::auth::{Actor, AuthError};
use crate::store::records::AdminRole;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything under this prefix needs the bearer token.
pub(crate) const API_PREFIX: &str = "/api/v1";

/// The HTTP methods the table uses; anything else is `Other` and gets a 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Patch,
    Delete,
    Other,
}

impl Verb {
    pub(crate) fn parse(method: &str) -> Verb {
        match method {
            "GET" => Verb::Get,
            "POST" => Verb::Post,
            "PATCH" => Verb::Patch,
            "DELETE" => Verb::Delete,
            _ => Verb::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
            Verb::Other => "OTHER",
        }
    }
}

/// What a route does; [`Admin::handle`] runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Health,
    Ready,
    Metrics,
    OpenApi,
    ListUsers,
    GetUser,
    PatchUser,
    DeleteUser,
    Stats,
    Events,
    SendMessage,
    IssueToken,
    Audit,
    Conversations,
    LlmUsage,
}

/// Who may call a route: anyone, or a caller whose role is at least this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Anyone,
    Role(AdminRole),
}

/// One line of the table. Patterns use OpenAPI's syntax: `{name}` stands for one path
/// segment.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub verb: Verb,
    pub pattern: &'static str,
    pub need: Need,
    pub(crate) endpoint: Endpoint,
}

const fn route(verb: Verb, pattern: &'static str, need: Need, endpoint: Endpoint) -> Route {
    Route {
        verb,
        pattern,
        need,
        endpoint,
    }
}

const ANYONE: Need = Need::Anyone;
const VIEWER: Need = Need::Role(AdminRole::Viewer);
const EDITOR: Need = Need::Role(AdminRole::Editor);
const OWNER: Need = Need::Role(AdminRole::Owner);

/// Every route of the admin listener.
pub const ROUTES: &[Route] = &[
    route(Verb::Get, "/health", ANYONE, Endpoint::Health),
    route(Verb::Get, "/health/ready", ANYONE, Endpoint::Ready),
    route(Verb::Get, "/metrics", ANYONE, Endpoint::Metrics),
    route(Verb::Get, "/api/v1/openapi.json", VIEWER, Endpoint::OpenApi),
    route(
        Verb::Post,
        "/api/v1/auth/token",
        ANYONE,
        Endpoint::IssueToken,
    ),
    route(Verb::Get, "/api/v1/users", VIEWER, Endpoint::ListUsers),
    route(Verb::Get, "/api/v1/users/{id}", VIEWER, Endpoint::GetUser),
    // Personal data: an owner's, like deleting the user, and audited.
    route(
        Verb::Get,
        "/api/v1/users/{id}/conversations",
        OWNER,
        Endpoint::Conversations,
    ),
    route(
        Verb::Patch,
        "/api/v1/users/{id}",
        EDITOR,
        Endpoint::PatchUser,
    ),
    route(
        Verb::Delete,
        "/api/v1/users/{id}",
        OWNER,
        Endpoint::DeleteUser,
    ),
    route(Verb::Get, "/api/v1/stats", VIEWER, Endpoint::Stats),
    route(Verb::Get, "/api/v1/llm/usage", VIEWER, Endpoint::LlmUsage),
    route(Verb::Get, "/api/v1/events", VIEWER, Endpoint::Events),
    route(
        Verb::Post,
        "/api/v1/messages",
        EDITOR,
        Endpoint::SendMessage,
    ),
    route(Verb::Get, "/api/v1/audit", VIEWER, Endpoint::Audit),
];

/// The `{name}` segments a pattern captured.
#[derive(Debug, Default)]
pub(crate) struct Params<'a>(Vec<(&'static str, &'a str)>);

impl<'a> Params<'a> {
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// Matches `path` against `pattern`, segment by segment.
pub(crate) fn match_pattern<'a>(pattern: &'static str, path: &'a str) -> Option<Params<'a>> {
    let mut params = Params::default();
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(h)) => match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) if !h.is_empty() => params.0.push((name, h)),
                Some(_) => return None,
                None if w == h => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

/// A request as the handlers see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub verb: Verb,
    pub path: &'a str,
    /// The raw query string, without the `?`.
    pub(crate) query: &'a str,
    /// The value of the `Authorization` header.
    pub(crate) authorization: Option<&'a [u8]>,
    /// The value of the `Cookie` header.
    pub(crate) cookie: Option<&'a str>,
    /// Where the request came from, when it came over TCP.
    pub(crate) peer: Option<SocketAddr>,
    /// Whether the browser reached us over TLS (a proxy in front said so with
    /// `X-Forwarded-Proto: https`); cookies are then marked `Secure`.
    pub(crate) tls: bool,
    /// The `Origin` and `Host` headers: a browser's form from another site names its
    /// own origin, which the panel refuses.
    pub(crate) origin: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

impl Request<'_> {
    /// The peer address for the audit log and the login throttle.
    pub(crate) fn address(&self) -> String {
        self.peer
            .map_or_else(|| "unknown".to_owned(), |peer| peer.ip().to_string())
    }
}

/// Who is calling the API, once their token checked out.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) actor: Actor,
    pub(crate) role: AdminRole,
}

/// A role too low for what was asked: the same words on the API and the panel.
pub(crate) fn forbidden(role: AdminRole, needed: AdminRole) -> ApiError {
    ApiError::new(
        403,
        "forbidden",
        format!(
            "your role ({}) cannot do this; it needs {}",
            role.name(),
            needed.name()
        ),
    )
}

/// The body of `POST /api/v1/auth/token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    username: String,
    password: String,
    #[serde(default)]
    totp: String,
}

/// The admin listener's request handling, without the socket.
pub(crate) struct Admin {
    state: Arc<AdminState>,
    active_users: ActiveUsersCache,
}

impl Admin {
    pub fn new(state: Arc<AdminState>) -> Admin {
        Admin {
            state,
            active_users: ActiveUsersCache::default(),
        }
    }

    pub(crate) async fn handle(&self, req: Request<'_>) -> Reply {
        let is_api = req.path == API_PREFIX
            || req
                .path
                .strip_prefix(API_PREFIX)
                .is_some_and(|rest| rest.starts_with('/'));
        let mut allowed = Vec::new();
        for route in ROUTES {
            let Some(params) = match_pattern(route.pattern, req.path) else {
                continue;
            };
            if route.verb != req.verb {
                allowed.push(route.verb.as_str());
                continue;
            }
            // Open routes change nothing, so their actor is never audited.
            let actor = match route.need {
                Need::Anyone => Actor {
                    name: "anonymous".into(),
                    address: req.address(),
                },
                Need::Role(needed) => match self.authorize(&req) {
                    Ok(caller) if caller.role >= needed => caller.actor,
                    Ok(caller) => return forbidden(caller.role, needed).reply(),
                    Err(e) => return refusal(&e),
                },
            };
            return match self.run(route.endpoint, &params, req, actor).await {
                Ok(reply) => reply,
                Err(e) => e.reply(),
            };
        }
        if !allowed.is_empty() {
            let mut reply = ApiError::new(
                405,
                "method_not_allowed",
                format!("{} takes {}", req.path, allowed.join(", ")),
            )
            .reply();
            reply.headers.push(("allow", allowed.join(", ")));
            return reply;
        }
        if !is_api {
            return panel::handle(&self.state, req).await;
        }
        // An unknown API path tells a caller without a token nothing about what exists.
        match self.authorize(&req) {
            Ok(_) => ApiError::not_found(format!("no such path: {}", req.path)).reply(),
            Err(e) => refusal(&e),
        }
    }

    /// The caller behind the request's bearer token: the static token (an owner) or a
    /// signed token issued to an account (that account's role now).
    fn authorize(&self, req: &Request<'_>) -> Result<Caller, ApiError> {
        // The scheme is case-insensitive (RFC 9110); the token is not.
        let presented = req
            .authorization
            .and_then(|value| value.split_at_checked(7))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|(_, token)| token.trim_ascii());
        let address = req.address();
        // The comparison is constant-time; only its outcome is observable.
        if let (Some(token), Some(candidate)) = (&self.state.token, presented)
            && token.matches(candidate)
        {
            return Ok(Caller {
                actor: Actor {
                    name: "api-token".into(),
                    address,
                },
                role: AdminRole::Owner,
            });
        }
        let gate = &self.state.gate;
        if let Some(candidate) = presented.and_then(|c| std::str::from_utf8(c).ok())
            && let Some((name, role)) = gate.token_account(candidate).map_err(internal)?
        {
            return Ok(Caller {
                actor: Actor { name, address },
                role,
            });
        }
        if self.state.token.is_none() && !gate.any_account().map_err(internal)? {
            return Err(ApiError::new(
                403,
                "api_disabled",
                "the admin API is off: set admin.token or EDGEBOT_ADMIN_TOKEN, or add an \
                 account with `edgebot admin add`",
            ));
        }
        Err(ApiError::new(
            401,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        ))
    }

    async fn run(
        &self,
        endpoint: Endpoint,
        params: &Params<'_>,
        req: Request<'_>,
        actor: Actor,
    ) -> Result<Reply, ApiError> {
        let state = &self.state;
        let query = Query::parse(req.query);
        let id = || user_id(params.get("id").unwrap_or_default());
        Ok(match endpoint {
            Endpoint::Health => Reply::json(200, &json!({ "status": "ok" })),
            Endpoint::Ready => ready::check(state).await.reply(),
            Endpoint::Metrics => Reply {
                status: 200,
                content_type: OPENMETRICS,
                body: scrape::render(state, &self.active_users).await.into_bytes(),
                headers: Vec::new(),
            },
            Endpoint::OpenApi => Reply {
                status: 200,
                content_type: JSON,
                body: openapi::DOCUMENT.as_bytes().to_vec(),
                headers: Vec::new(),
            },
            Endpoint::IssueToken => {
                let asked: TokenRequest = parse_body(req.body)?;
                let issued = state
                    .gate
                    .issue_token(
                        &asked.username,
                        &asked.password,
                        &asked.totp,
                        &req.address(),
                    )
                    .await;
                match issued {
                    Ok((token, expires_in)) => Reply::json(
                        200,
                        &json!({ "token": token, "token_type": "Bearer", "expires_in": expires_in }),
                    ),
                    Err(e) => {
                        let (error, retry_after) = sign_in_refusal(e);
                        let mut reply = refusal(&error);
                        reply.headers.extend(retry_after);
                        return Ok(reply);
                    }
                }
            }
            Endpoint::ListUsers => {
                let filter = api::UserFilter::from_query(&query)?;
                Reply::json(200, &api::list_users(&state.store, filter).await?.to_json())
            }
            Endpoint::GetUser => Reply::json(200, &json!(api::get_user(&state.store, id()?)?)),
            Endpoint::PatchUser => {
                let change = parse_body(req.body)?;
                let user = api::patch_user(&state.store, id()?, change, &actor).await?;
                Reply::json(200, &json!(user))
            }
            Endpoint::DeleteUser => {
                api::delete_user(&state.store, id()?, &actor).await?;
                Reply::empty(204)
            }
            Endpoint::Stats => {
                let days = query.number("days")?.unwrap_or(api::DEFAULT_STATS_DAYS);
                Reply::json(200, &api::stats(&state.store, days).await?.to_json())
            }
            Endpoint::Events => {
                let filter = api::EventFilter::from_query(&query)?;
                Reply::json(
                    200,
                    &api::list_events(&state.store, filter).await?.to_json(),
                )
            }
            Endpoint::SendMessage => {
                let message = parse_body(req.body)?;
                let chat_id =
                    api::send_message(&state.store, &state.outbox, message, &actor).await?;
                Reply::json(202, &json!({ "queued": true, "chat_id": chat_id }))
            }
            Endpoint::Audit => {
                let filter = api::AuditFilter::from_query(&query)?;
                Reply::json(200, &api::audit(&state.store, filter)?.to_json())
            }
            Endpoint::Conversations => {
                let export = api::export_conversations(&state.store, id()?, &actor).await?;
                Reply::json(200, &export.to_json())
            }
            Endpoint::LlmUsage => {
                let days = query.number("days")?.unwrap_or(api::DEFAULT_USAGE_DAYS);
                Reply::json(200, &api::llm_usage(&state.store, days).await?.to_json())
            }
        })
    }
}

/// A refused request; a 401 names the scheme it wants.
fn refusal(e: &ApiError) -> Reply {
    let mut reply = e.reply();
    if e.status == 401 {
        reply
            .headers
            .push(("www-authenticate", "Bearer realm=\"edgebot\"".into()));
    }
    reply
}

fn internal(e: AuthError) -> ApiError {
    tracing::error!(error = %e, "admin API: accounts unreadable");
    ApiError::new(500, "internal", e.to_string())
}

/// What a failed sign-in looks like, on the API and the panel alike: the error and,
/// when the throttle says wait, the `Retry-After` header.
pub(crate) fn sign_in_refusal(e: AuthError) -> (ApiError, Option<(&'static str, String)>) {
    match e {
        AuthError::Refused => (ApiError::new(401, "unauthorized", e.to_string()), None),
        AuthError::Throttled(secs) => (
            ApiError::new(429, "too_many_attempts", e.to_string()),
            Some(("retry-after", secs.to_string())),
        ),
        other => (internal(other), None),
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(422, "invalid_body", format!("the JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_capture_one_segment() {
        let params = match_pattern("/api/v1/users/{id}", "/api/v1/users/42").unwrap();
        assert_eq!(params.get("id"), Some("42"));
        assert!(match_pattern("/api/v1/users/{id}", "/api/v1/users/").is_none());
        assert!(match_pattern("/api/v1/users/{id}", "/api/v1/users/4/x").is_none());
        assert!(match_pattern("/api/v1/users", "/api/v1/users/").is_none());
        assert!(match_pattern("/health", "/health").is_some());
    }

    async fn admin_over_temp_store(token: Option<&str>) -> (Admin, tempfile::TempDir) {
        let (state, dir) = super::super::tests::state_over_temp_store(token, None).await;
        (Admin::new(state), dir)
    }

    fn request<'a>(verb: Verb, path: &'a str, authorization: Option<&'a [u8]>) -> Request<'a> {
        Request {
            verb,
            path,
            query: "",
            authorization,
            cookie: None,
            peer: None,
            tls: false,
            origin: None,
            host: None,
            body: b"",
        }
    }

    #[tokio::test]
    async fn requests_are_handled_without_a_socket() {
        let (admin, _dir) = admin_over_temp_store(Some("tok")).await;
        let users = |auth: &'static [u8]| request(Verb::Get, "/api/v1/users", Some(auth));
        assert_eq!(admin.handle(users(b"Bearer tok")).await.status, 200);
        assert_eq!(admin.handle(users(b"bearer  tok ")).await.status, 200);
        assert_eq!(admin.handle(users(b"Bearer to")).await.status, 401);
        assert_eq!(admin.handle(users(b"Basic tok")).await.status, 401);
        assert_eq!(admin.handle(users(b"tok")).await.status, 401);
        let wrong_verb = admin
            .handle(request(Verb::Other, "/api/v1/users/5", Some(b"Bearer tok")))
            .await;
        assert_eq!(wrong_verb.status, 405);
        assert_eq!(
            wrong_verb.headers,
            vec![("allow", "GET, PATCH, DELETE".to_owned())]
        );

        let (off, _dir) = admin_over_temp_store(None).await;
        let reply = off.handle(request(Verb::Get, "/api/v1/users", None)).await;
        assert_eq!(reply.status, 403);
        assert_eq!(
            off.handle(request(Verb::Get, "/health", None)).await.status,
            200
        );
    }

    #[test]
    fn queries_decode_escapes_and_plus() {
        let q = Query::parse("q=J%C3%BCrgen+M&limit=5&after=&x");
        assert_eq!(q.get("q"), Some("Jürgen M"));
        assert_eq!(q.number::<usize>("limit").unwrap(), Some(5));
        assert_eq!(q.get("after"), None);
        assert!(q.number::<usize>("q").is_err());
        assert_eq!(Query::parse("q=100%").get("q"), Some("100%"));
        assert_eq!(Query::parse("q=%4").get("q"), Some("%4"));
    }
}
