//! The route table of the admin listener, and the request and reply it deals in.
//!
//! Every path the listener serves is one line of [`ROUTES`]; matching is a walk over that
//! table, never a chain of `if`s, so the OpenAPI document can be checked against it. The
//! types here carry no socket and no hyper body: a test builds a [`Request`], hands it to
//! [`Admin::handle`] and looks at the [`Reply`].

use super::scrape::ActiveUsersCache;
use super::wire::{ApiError, JSON, OPENMETRICS, Query, Reply};
use super::{AdminState, api, openapi, ready, scrape};
use serde_json::json;
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
}

/// One line of the table. Patterns use OpenAPI's syntax: `{name}` stands for one path
/// segment.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub verb: Verb,
    pub pattern: &'static str,
    pub(crate) endpoint: Endpoint,
}

const fn route(verb: Verb, pattern: &'static str, endpoint: Endpoint) -> Route {
    Route {
        verb,
        pattern,
        endpoint,
    }
}

/// Every route of the admin listener.
pub const ROUTES: &[Route] = &[
    route(Verb::Get, "/health", Endpoint::Health),
    route(Verb::Get, "/health/ready", Endpoint::Ready),
    route(Verb::Get, "/metrics", Endpoint::Metrics),
    route(Verb::Get, "/api/v1/openapi.json", Endpoint::OpenApi),
    route(Verb::Get, "/api/v1/users", Endpoint::ListUsers),
    route(Verb::Get, "/api/v1/users/{id}", Endpoint::GetUser),
    route(Verb::Patch, "/api/v1/users/{id}", Endpoint::PatchUser),
    route(Verb::Delete, "/api/v1/users/{id}", Endpoint::DeleteUser),
    route(Verb::Get, "/api/v1/stats", Endpoint::Stats),
    route(Verb::Get, "/api/v1/events", Endpoint::Events),
    route(Verb::Post, "/api/v1/messages", Endpoint::SendMessage),
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
    pub(crate) body: &'a [u8],
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
        if is_api && let Err(e) = self.authorize(req.authorization) {
            let mut reply = e.reply();
            if e.status == 401 {
                reply
                    .headers
                    .push(("www-authenticate", "Bearer realm=\"edgebot\"".into()));
            }
            return reply;
        }
        let mut allowed = Vec::new();
        for route in ROUTES {
            let Some(params) = match_pattern(route.pattern, req.path) else {
                continue;
            };
            if route.verb != req.verb {
                allowed.push(route.verb.as_str());
                continue;
            }
            return match self.run(route.endpoint, &params, req).await {
                Ok(reply) => reply,
                Err(e) => e.reply(),
            };
        }
        if allowed.is_empty() {
            return ApiError::not_found(format!("no such path: {}", req.path)).reply();
        }
        let mut reply = ApiError::new(
            405,
            "method_not_allowed",
            format!("{} takes {}", req.path, allowed.join(", ")),
        )
        .reply();
        reply.headers.push(("allow", allowed.join(", ")));
        reply
    }

    fn authorize(&self, authorization: Option<&[u8]>) -> Result<(), ApiError> {
        let Some(token) = &self.state.token else {
            return Err(ApiError::new(
                403,
                "api_disabled",
                "the admin API is off: set admin.token or EDGEBOT_ADMIN_TOKEN to turn it on",
            ));
        };
        // The scheme is case-insensitive (RFC 9110); the token is not.
        let presented = authorization
            .and_then(|value| value.split_at_checked(7))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|(_, token)| token.trim_ascii());
        // The comparison is constant-time; only its outcome is observable.
        match presented {
            Some(candidate) if token.matches(candidate) => Ok(()),
            _ => Err(ApiError::new(
                401,
                "unauthorized",
                "a valid `Authorization: Bearer <token>` header is required",
            )),
        }
    }

    async fn run(
        &self,
        endpoint: Endpoint,
        params: &Params<'_>,
        req: Request<'_>,
    ) -> Result<Reply, ApiError> {
        let state = &self.state;
        let query = Query::parse(req.query);
        let id = || user_id(params);
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
            Endpoint::ListUsers => {
                let filter = api::UserFilter::from_query(&query)?;
                Reply::json(200, &api::list_users(&state.store, filter).await?)
            }
            Endpoint::GetUser => Reply::json(200, &api::get_user(&state.store, id()?)?),
            Endpoint::PatchUser => {
                let change = parse_body(req.body)?;
                Reply::json(200, &api::patch_user(&state.store, id()?, change).await?)
            }
            Endpoint::DeleteUser => {
                api::delete_user(&state.store, id()?).await?;
                Reply::empty(204)
            }
            Endpoint::Stats => {
                let days = query.number("days")?.unwrap_or(api::DEFAULT_STATS_DAYS);
                Reply::json(200, &api::stats(&state.store, days).await?)
            }
            Endpoint::Events => {
                let filter = api::EventFilter::from_query(&query)?;
                Reply::json(200, &api::list_events(&state.store, filter).await?)
            }
            Endpoint::SendMessage => {
                let message = parse_body(req.body)?;
                Reply::json(
                    202,
                    &api::send_message(&state.store, &state.outbox, message).await?,
                )
            }
        })
    }
}

fn user_id(params: &Params<'_>) -> Result<i64, ApiError> {
    let raw = params.get("id").unwrap_or_default();
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("`{raw}` is not a user id")))
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

    fn admin_over_temp_store(token: Option<&str>) -> (Admin, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        // Nothing is sent in these tests: the sender points at the discard port.
        let client = crate::botapi::Client::new(
            "http://127.0.0.1:9",
            &crate::secret::Secret::new("1:test"),
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        let metrics: Arc<crate::telemetry::metrics::Metrics> = Arc::default();
        let health: Arc<crate::telemetry::health::Health> = Arc::default();
        let outbox = crate::engine::sender::Outbox::start(
            client,
            store.clone(),
            None,
            metrics.clone(),
            health.clone(),
        );
        let state = AdminState {
            store,
            metrics,
            health,
            token: token.map(crate::secret::Secret::new),
            outbox,
        };
        (Admin::new(Arc::new(state)), dir)
    }

    fn request<'a>(verb: Verb, path: &'a str, authorization: Option<&'a [u8]>) -> Request<'a> {
        Request {
            verb,
            path,
            query: "",
            authorization,
            body: b"",
        }
    }

    #[tokio::test]
    async fn requests_are_handled_without_a_socket() {
        let (admin, _dir) = admin_over_temp_store(Some("tok"));
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

        let (off, _dir) = admin_over_temp_store(None);
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
