//! Accounts: register, login, refresh (rotating, reuse-detecting), logout, me.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiResult, AppState, JsonBody, SignedIn};
use crate::auth::{self, hash_password};
use crate::rate_limit::RateLimiter;
use crate::store::{new_id, RefreshUse, Role, User};

#[derive(Deserialize)]
pub struct Register {
    email: String,
    password: String,
    name: String,
}

#[derive(Deserialize)]
pub struct Login {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshBody {
    refresh_token: String,
}

pub async fn register(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody<Register>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !s.config().auth.allow_registration {
        return Err(ApiError::Forbidden(
            "registration is closed on this server".into(),
        ));
    }
    validate_account(&body.email, &body.password, &body.name)?;
    limit(
        &s.register_limiter,
        &peer.ip().to_string(),
        "sign-ups from this address",
    )?;
    let password = body.password;
    let hash = s
        .auth
        .with_hasher(move || hash_password(&password))
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = s
        .store
        .create_user(&body.email, body.name.trim(), &hash, Role::User)
        .await?;
    Ok((StatusCode::CREATED, Json(session(&s, &user, None).await?)))
}

pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody<Login>,
) -> ApiResult<Json<Value>> {
    // The address first: it is bounded in size, and it stops one client whatever it sends.
    limit(
        &s.address_limiter,
        &peer.ip().to_string(),
        "sign-in attempts",
    )?;
    // Only a well-formed email becomes a limiter key (a 1 MB "email" must not).
    validate_email(&body.email)?;
    validate_password(&body.password)?;
    let email = body.email.trim().to_lowercase();
    limit(&s.login_limiter, &email, "sign-in attempts")?;
    let user = s.store.user_by_email(&email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let state = s.clone();
    let ok = s
        .auth
        .with_hasher(move || state.auth.check_password(&body.password, hash.as_deref()))
        .await?;
    match (ok, user) {
        (true, Some(user)) => Ok(Json(session(&s, &user, None).await?)),
        _ => Err(ApiError::Unauthorized("wrong email or password".into())),
    }
}

pub async fn refresh(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> ApiResult<Json<Value>> {
    match s
        .store
        .use_refresh_token(&auth::refresh_hash(&body.refresh_token))
        .await?
    {
        RefreshUse::Rotated { user_id, family } => {
            let user = s
                .store
                .user_by_id(&user_id)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("account no longer exists".into()))?;
            Ok(Json(session(&s, &user, Some(family)).await?))
        }
        RefreshUse::Reused => Err(ApiError::Unauthorized(
            "refresh token already used: this sign-in has been revoked, sign in again".into(),
        )),
        RefreshUse::Invalid => Err(ApiError::Unauthorized(
            "invalid or expired refresh token".into(),
        )),
    }
}

pub async fn logout(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> ApiResult<StatusCode> {
    if let Some(family) = s
        .store
        .refresh_family(&auth::refresh_hash(&body.refresh_token))
        .await?
    {
        s.store.revoke_family(&family).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(State(s): State<AppState>, who: SignedIn) -> ApiResult<Json<Value>> {
    let user = s
        .store
        .user_by_id(who.id())
        .await?
        .ok_or_else(|| ApiError::Unauthorized("account no longer exists".into()))?;
    Ok(Json(json!({ "user": user })))
}

/// A new access token and a refresh token (in `family`, or a new family for a new sign-in).
async fn session(s: &AppState, user: &User, family: Option<String>) -> ApiResult<Value> {
    let (refresh, hash) = auth::new_refresh_token();
    let family = family.unwrap_or_else(new_id);
    s.store
        .insert_refresh_token(&hash, &user.id, &family, s.auth.refresh_expiry())
        .await?;
    Ok(json!({
        "accessToken": s.auth.issue_access(user),
        "refreshToken": refresh,
        "expiresIn": s.auth.access_ttl().as_secs(),
        "user": user,
    }))
}

/// Counts an attempt for `key`; 429 with Retry-After when it is over its limit.
fn limit(limiter: &RateLimiter, key: &str, what: &str) -> ApiResult<()> {
    limiter.attempt(key, Instant::now()).map_err(|wait| {
        let secs = wait.as_secs().max(1);
        ApiError::TooManyRequests(format!("too many {what}; try again in {secs} s"), secs)
    })
}

pub fn validate_account(email: &str, password: &str, name: &str) -> ApiResult<()> {
    validate_email(email)?;
    validate_password(password)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "name: must be 1 to 100 characters".into(),
        ));
    }
    Ok(())
}

fn validate_email(email: &str) -> ApiResult<()> {
    let email = email.trim();
    let (local, domain) = email.split_once('@').unwrap_or_default();
    if email.len() > 254
        || local.is_empty()
        || !domain.contains('.')
        || email.contains(char::is_whitespace)
    {
        return Err(ApiError::BadRequest(
            "email: not a valid email address".into(),
        ));
    }
    Ok(())
}

fn validate_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(ApiError::BadRequest(
            "password: must be 8 to 1024 characters".into(),
        ));
    }
    Ok(())
}
