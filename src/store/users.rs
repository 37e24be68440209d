//! Accounts and refresh tokens. Refresh tokens are stored only as hashes, rotate on every use,
//! and a second use of the same token revokes its whole family (stolen-token detection).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{conflict, new_id, now_ms, Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
}

fn user(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: Role::parse(&row.try_get::<String, _>("role")?),
        password_hash: row.try_get("password_hash")?,
    })
}

/// What presenting a refresh token did.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshUse {
    /// Valid and now spent: issue a new one in the same family.
    Rotated { user_id: String, family: String },
    /// Already spent: someone replayed it; the family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

impl Store {
    /// Emails are compared case-insensitively: stored lower-case.
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User> {
        let id = new_id();
        let email = email.trim().to_lowercase();
        sqlx::query("INSERT INTO users (id, email, name, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(&email)
            .bind(name)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(conflict("email"))?;
        Ok(User {
            id,
            email,
            name: name.to_string(),
            role,
            password_hash: password_hash.to_string(),
        })
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn set_role(&self, user_id: &str, role: Role) -> Result<()> {
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every account, oldest first (the admin page's list).
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY created_at, email")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user).collect()
    }

    pub async fn admin_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        user_id: &str,
        family: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO refresh_tokens (token_hash, user_id, family, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash)
            .bind(user_id)
            .bind(family)
            .bind(expires_at)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Spends a refresh token. The conditional update makes two concurrent uses of one token
    /// impossible to both succeed: the loser is treated as a replay.
    pub async fn use_refresh_token(&self, token_hash: &str) -> Result<RefreshUse> {
        let now = now_ms();
        let row = sqlx::query("SELECT user_id, family, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(RefreshUse::Invalid);
        };
        let family: String = row.try_get("family")?;
        let revoked = row.try_get::<Option<i64>, _>("revoked_at")?.is_some();
        let expired = row.try_get::<i64, _>("expires_at")? <= now;
        if revoked || expired {
            return Ok(RefreshUse::Invalid);
        }
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if spent == 0 {
            self.revoke_family(&family).await?;
            return Ok(RefreshUse::Reused);
        }
        Ok(RefreshUse::Rotated {
            user_id: row.try_get("user_id")?,
            family,
        })
    }

    pub async fn revoke_family(&self, family: &str) -> Result<()> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(family)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The family a (possibly spent) token belongs to, for logout.
    pub async fn refresh_family(&self, token_hash: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT family FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("family")).transpose()?)
    }
}
