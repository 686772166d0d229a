//! What the panel's forms do: signing in and out, acting on a user, managing accounts.
//!
//! Each form reads its fields, calls the same function the API calls (or `auth`'s), and
//! answers with a redirect carrying a notice code, or with a page naming what was wrong,
//! having changed nothing. Reaching a form here means the session, its CSRF token and
//! its role were already checked.

use super::views::LoginView;
use super::{COOKIE, Form, Visit, error_page, html, redirect};
use crate::auth::AuthError;
use crate::http::AdminState;
use crate::http::api::{self, NewMessage, SettableStatus, UserChange};
use crate::http::routes::{Request, sign_in_refusal};
use crate::http::wire::{ApiError, Query, Reply, user_id};
use crate::store::records::{AdminRole, Role};

/// The notices a redirect may ask a page to show, by code: a fixed list, so a link
/// cannot make the panel say anything else.
const NOTICES: &[(&str, &str)] = &[
    (
        "banned",
        "The user is banned: the bot ignores what they send.",
    ),
    ("unbanned", "The user is no longer banned."),
    ("role", "The user's role is changed."),
    (
        "sent",
        "The message is queued; the bot sends it within its limits.",
    ),
    (
        "deleted",
        "The user's record, events, sessions and conversations are deleted.",
    ),
    ("account_added", "The account is added."),
    ("account_removed", "The account is removed and signed out."),
];

pub(super) fn notice_text(code: &str) -> Option<&'static str> {
    NOTICES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, text)| *text)
}

pub(super) async fn login_page(state: &AdminState, req: &Request<'_>) -> Reply {
    // Already signed in: straight to the dashboard.
    if let Some(value) = super::cookie(req.cookie)
        && let Ok(Some(_)) = state.gate.session(value).await
    {
        return redirect("/");
    }
    html(200, LoginView::default().render())
}

pub(super) async fn login(state: &AdminState, req: &Request<'_>) -> Reply {
    let form = Query::parse(&String::from_utf8_lossy(req.body));
    let username = form.get("username").unwrap_or_default().trim().to_owned();
    let password = form.get("password").unwrap_or_default();
    let code = form.get("totp").unwrap_or_default();
    let started = state
        .gate
        .start_session(&username, password, code, &req.address())
        .await;
    match started {
        Ok((cookie, _)) => {
            let mut reply = redirect("/");
            let max_age = state.gate.session_max().as_secs();
            reply.headers.push((
                "set-cookie",
                format!("{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"),
            ));
            reply
        }
        Err(e) => {
            let (refused, retry_after) = sign_in_refusal(e);
            let view = LoginView {
                error: Some(refused.message.clone()),
                username,
                totp_needed: false,
            };
            let mut reply = html(refused.status, view.render());
            reply.headers.extend(retry_after);
            reply
        }
    }
}

fn invalid(field: &str, why: &str) -> ApiError {
    ApiError::new(422, "invalid_form", format!("`{field}`: {why}"))
}

pub(super) async fn submit(visit: &Visit<'_>, form: Form) -> Reply {
    match run(visit, form).await {
        Ok(reply) => reply,
        Err(e) => visit.refuse(&e),
    }
}

async fn run(visit: &Visit<'_>, form: Form) -> Result<Reply, ApiError> {
    let store = &visit.state.store;
    let fields = Query::parse(&String::from_utf8_lossy(visit.req.body));
    let user_id = || user_id(visit.id.unwrap_or_default());
    let change = |status, role| UserChange { role, status };
    Ok(match form {
        Form::Logout => {
            let address = visit.req.address();
            if let Err(e) = visit
                .state
                .gate
                .end_session(&visit.signed_in, &address)
                .await
            {
                tracing::error!(error = %e, "panel: the session could not be ended");
                return Ok(error_page(
                    None,
                    500,
                    "the session could not be ended; see the log",
                ));
            }
            let mut reply = redirect("/login");
            reply.headers.push((
                "set-cookie",
                format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
            ));
            reply
        }
        Form::Ban | Form::Unban => {
            let id = user_id()?;
            let (status, notice) = if form == Form::Ban {
                (SettableStatus::Banned, "banned")
            } else {
                (SettableStatus::Active, "unbanned")
            };
            api::patch_user(store, id, change(Some(status), None), &visit.actor()).await?;
            redirect(&format!("/users/{id}?notice={notice}"))
        }
        Form::SetRole => {
            let id = user_id()?;
            let role = match fields.get("role") {
                Some("user") => Role::User,
                Some("admin") => Role::Admin,
                _ => return Err(invalid("role", "choose user or admin")),
            };
            api::patch_user(store, id, change(None, Some(role)), &visit.actor()).await?;
            redirect(&format!("/users/{id}?notice=role"))
        }
        Form::Message => {
            let id = user_id()?;
            let text = fields.get("text").unwrap_or_default().to_owned();
            if text.trim().is_empty() {
                return Err(invalid("text", "write the message to send"));
            }
            let message = NewMessage { user_id: id, text };
            api::send_message(store, &visit.state.outbox, message, &visit.actor()).await?;
            redirect(&format!("/users/{id}?notice=sent"))
        }
        Form::Delete => {
            let id = user_id()?;
            if fields.get("confirm").is_none() {
                return Err(invalid("confirm", "tick the box to confirm the deletion"));
            }
            api::delete_user(store, id, &visit.actor()).await?;
            redirect("/users?notice=deleted")
        }
        Form::AddAccount => {
            let name = fields.get("name").unwrap_or_default().trim().to_owned();
            let role = fields
                .get("role")
                .and_then(AdminRole::parse)
                .ok_or_else(|| invalid("role", "choose viewer, editor or owner"))?;
            let password = fields.get("password").unwrap_or_default().to_owned();
            crate::auth::add_account(store, &name, role, password, &visit.actor())
                .await
                .map_err(account_error)?;
            redirect("/accounts?notice=account_added")
        }
        Form::RemoveAccount => {
            let name = fields.get("name").unwrap_or_default();
            crate::auth::remove_account(store, name, &visit.actor())
                .await
                .map_err(account_error)?;
            redirect("/accounts?notice=account_removed")
        }
    })
}

/// An account change refused for what was typed is the typist's to fix (422); anything
/// else is ours (500).
fn account_error(e: AuthError) -> ApiError {
    match e {
        AuthError::BadName(_) | AuthError::Password(_) => {
            ApiError::new(422, "invalid_form", e.to_string())
        }
        AuthError::Exists(_) | AuthError::LastOwner(_) => {
            ApiError::new(409, "conflict", e.to_string())
        }
        AuthError::NoSuchAccount(_) => ApiError::not_found(e.to_string()),
        other => {
            tracing::error!(error = %other, "panel: account change failed");
            ApiError::new(500, "internal", other.to_string())
        }
    }
}
