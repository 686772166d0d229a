//! The admin web panel: server-rendered pages over the same functions as the API.
//!
//! Every path the panel serves is one line of [`PANEL`]: its verb, its pattern, the role
//! it needs and what it does. A request is matched there, then its session is looked up
//! from the `edgebot_session` cookie, a form's CSRF token is checked against the
//! session's, the role is checked, and only then does a page ([`pages`]) or a form
//! ([`forms`]) run. Pages are rendered by [`views`]; every answer carries the same
//! security headers.
//!
//! Adding a page: a line in [`PANEL`], a [`Page`] variant, its function in `pages.rs`,
//! its view and template in `views`, and its link in `templates/base.html`. A
//! [`Download`] is a file a page links to (JSON the API would answer), served from
//! `pages.rs` too.

mod forms;
mod pages;
pub(crate) mod views;

use super::AdminState;
use super::routes::{Request, Verb, forbidden, match_pattern};
use super::wire::{ApiError, Query, Reply};
use crate::auth::{Actor, SignedIn};
use crate::store::records::AdminRole;
use views::{ErrorView, Frame, PANEL_CSS};

/// The session cookie's name.
const COOKIE: &str = "edgebot_session";

/// Every answer of the panel carries these: no script at all, styles only from the
/// panel's own stylesheet, never framed, never sniffed, never cached.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A page: shown by `GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Dashboard,
    Users,
    User,
    Events,
    Audit,
    Settings,
    Accounts,
}

/// A form: posted, changes something, answers with a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Logout,
    Ban,
    Unban,
    SetRole,
    Delete,
    Message,
    AddAccount,
    RemoveAccount,
}

/// A file to save: shown by `GET`, answered as the API would answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Download {
    /// A user's LLM conversations (`/users/{id}/conversations.json`).
    Conversations,
}

/// What a route does: the three that come before signing in, or the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Stylesheet,
    LoginPage,
    Login,
    Signed(Signed),
}

/// What needs a signed-in session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signed {
    Page(Page),
    Form(Form),
    Download(Download),
}

const fn page(page: Page) -> Action {
    Action::Signed(Signed::Page(page))
}

const fn form(form: Form) -> Action {
    Action::Signed(Signed::Form(form))
}

const fn download(download: Download) -> Action {
    Action::Signed(Signed::Download(download))
}

/// One line of the panel's table. `need: None` is for what comes before signing in.
#[derive(Debug, Clone, Copy)]
struct PanelRoute {
    verb: Verb,
    pattern: &'static str,
    need: Option<AdminRole>,
    action: Action,
}

const fn at(
    verb: Verb,
    pattern: &'static str,
    need: Option<AdminRole>,
    action: Action,
) -> PanelRoute {
    PanelRoute {
        verb,
        pattern,
        need,
        action,
    }
}

const VIEWER: Option<AdminRole> = Some(AdminRole::Viewer);
const EDITOR: Option<AdminRole> = Some(AdminRole::Editor);
const OWNER: Option<AdminRole> = Some(AdminRole::Owner);

/// Every path of the panel.
const PANEL: &[PanelRoute] = &[
    at(Verb::Get, "/static/panel.css", None, Action::Stylesheet),
    at(Verb::Get, "/login", None, Action::LoginPage),
    at(Verb::Post, "/login", None, Action::Login),
    at(Verb::Post, "/logout", VIEWER, form(Form::Logout)),
    at(Verb::Get, "/", VIEWER, page(Page::Dashboard)),
    at(Verb::Get, "/users", VIEWER, page(Page::Users)),
    at(Verb::Get, "/users/{id}", VIEWER, page(Page::User)),
    at(Verb::Post, "/users/{id}/ban", EDITOR, form(Form::Ban)),
    at(Verb::Post, "/users/{id}/unban", EDITOR, form(Form::Unban)),
    at(Verb::Post, "/users/{id}/role", EDITOR, form(Form::SetRole)),
    at(
        Verb::Post,
        "/users/{id}/message",
        EDITOR,
        form(Form::Message),
    ),
    at(Verb::Post, "/users/{id}/delete", OWNER, form(Form::Delete)),
    // Personal data: an owner's, as on the API, and audited there.
    at(
        Verb::Get,
        "/users/{id}/conversations.json",
        OWNER,
        download(Download::Conversations),
    ),
    at(Verb::Get, "/events", VIEWER, page(Page::Events)),
    at(Verb::Get, "/audit", VIEWER, page(Page::Audit)),
    at(Verb::Get, "/settings", OWNER, page(Page::Settings)),
    at(Verb::Get, "/accounts", OWNER, page(Page::Accounts)),
    at(Verb::Post, "/accounts/add", OWNER, form(Form::AddAccount)),
    at(
        Verb::Post,
        "/accounts/remove",
        OWNER,
        form(Form::RemoveAccount),
    ),
];

/// What a page or form works with once the request passed the gate.
struct Visit<'a> {
    state: &'a AdminState,
    req: Request<'a>,
    signed_in: SignedIn,
    /// `{id}` of the path, when the pattern has one.
    id: Option<&'a str>,
}

impl Visit<'_> {
    /// The frame around a page: who is signed in, the CSRF token for its forms, and the
    /// notice a redirect asked for.
    fn frame(&self) -> Frame {
        let query = Query::parse(self.req.query);
        Frame {
            account: self.signed_in.account.clone(),
            role: self.signed_in.role,
            csrf: self.signed_in.csrf.clone(),
            notice: query
                .get("notice")
                .and_then(forms::notice_text)
                .map(str::to_owned),
            error: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// Who the audit log names for what this visit does.
    fn actor(&self) -> Actor {
        Actor {
            name: self.signed_in.account.clone(),
            address: self.req.address(),
        }
    }

    /// A refusal shown inside the panel's frame.
    fn refuse(&self, e: &ApiError) -> Reply {
        error_page(Some(self.frame()), e.status, &e.message)
    }
}

/// Serves a request the API's table did not take.
pub(crate) async fn handle(state: &AdminState, req: Request<'_>) -> Reply {
    let mut allowed = Vec::new();
    for route in PANEL {
        let Some(params) = match_pattern(route.pattern, req.path) else {
            continue;
        };
        if route.verb != req.verb {
            allowed.push(route.verb.as_str());
            continue;
        }
        let id = params.get("id");
        return secured(serve(state, req, route, id).await, req.tls);
    }
    let reply = if allowed.is_empty() {
        error_page(None, 404, &format!("no such page: {}", req.path))
    } else {
        let mut reply = error_page(
            None,
            405,
            &format!("{} takes {}", req.path, allowed.join(", ")),
        );
        reply.headers.push(("allow", allowed.join(", ")));
        reply
    };
    secured(reply, req.tls)
}

async fn serve<'a>(
    state: &'a AdminState,
    req: Request<'a>,
    route: &PanelRoute,
    id: Option<&'a str>,
) -> Reply {
    if route.verb == Verb::Post && !same_origin(&req) {
        return error_page(
            None,
            403,
            "a form from another site was refused; use the panel's own pages",
        );
    }
    let signed = match route.action {
        Action::Stylesheet => {
            return Reply {
                status: 200,
                content_type: CSS,
                body: PANEL_CSS.as_bytes().to_vec(),
                headers: Vec::new(),
            };
        }
        Action::LoginPage => return forms::login_page(state, &req).await,
        Action::Login => return forms::login(state, &req).await,
        Action::Signed(signed) => signed,
    };
    let session = match cookie(req.cookie) {
        Some(value) => state.gate.session(value).await,
        None => Ok(None),
    };
    let signed_in = match session {
        Ok(Some(signed_in)) => signed_in,
        Ok(None) => return redirect("/login"),
        Err(e) => {
            tracing::error!(error = %e, "panel: sessions unreadable");
            return error_page(None, 500, "the store could not be read; see the log");
        }
    };
    let visit = Visit {
        state,
        req,
        signed_in,
        id,
    };
    if let Signed::Form(_) = signed {
        let form = Query::parse(&String::from_utf8_lossy(req.body));
        let presented = form.get("csrf").unwrap_or_default().as_bytes();
        // Constant-time: the token must not leak byte by byte through timing.
        let expected = crate::secret::Secret::new(visit.signed_in.csrf.clone());
        if !expected.matches(presented) {
            return error_page(
                Some(visit.frame()),
                403,
                "the form is missing its CSRF token or it is wrong; reload the page and try again",
            );
        }
    }
    if let Some(needed) = route.need
        && visit.signed_in.role < needed
    {
        return visit.refuse(&forbidden(visit.signed_in.role, needed));
    }
    match signed {
        Signed::Page(page) => pages::show(&visit, page).await,
        Signed::Form(form) => forms::submit(&visit, form).await,
        Signed::Download(download) => pages::download(&visit, download).await,
    }
}

/// Whether a posted form came from the panel's own pages. Browsers name the page's
/// origin on every POST; a request without one (not a browser, or a very old one) is
/// left to the CSRF token. This also guards the sign-in form, which has no session yet
/// to hold a token.
fn same_origin(req: &Request<'_>) -> bool {
    let Some(origin) = req.origin else {
        return true;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, host)| host);
    req.host
        .is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
}

/// The session cookie's value among the request's cookies.
fn cookie(header: Option<&str>) -> Option<&str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Adds the security headers, and marks the session cookie `Secure` over TLS.
fn secured(mut reply: Reply, tls: bool) -> Reply {
    for (name, value) in SECURITY_HEADERS {
        reply.headers.push((name, value.to_owned()));
    }
    if tls {
        for (name, value) in &mut reply.headers {
            if *name == "set-cookie" {
                value.push_str("; Secure");
            }
        }
    }
    reply
}

fn html(status: u16, body: String) -> Reply {
    Reply {
        status,
        content_type: HTML,
        body: body.into_bytes(),
        headers: Vec::new(),
    }
}

/// `303 See Other`: after a form, the browser gets the page anew, so a reload never
/// posts twice.
fn redirect(to: &str) -> Reply {
    let mut reply = html(303, String::new());
    reply.headers.push(("location", to.to_owned()));
    reply
}

fn error_page(frame: Option<Frame>, status: u16, message: &str) -> Reply {
    let view = ErrorView {
        frame,
        status,
        message: message.to_owned(),
    };
    html(status, view.render())
}

#[cfg(test)]
mod tests;
