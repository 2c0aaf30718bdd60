//! `storefort admin …`: account work for the operator at the machine, who
//! needs no password to reach the database and so needs none here either.
//! Every change still goes through the spine (ledger entry and event).

use crate::config::Config;
use crate::{keyfile, serve};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::io::Read;
use storefort_auth::{AccountRole, PasswordHasher, Permission, policy};
use storefort_core::{Actor, Email, EventKind, SecurityEvent};
use storefort_store::{NewAccount, NewApiToken, Store, hash_secret};
use storefort_web::identity::email_key;
use storefort_web::secrets::random_token;

async fn open(cfg: &Config) -> Result<(Store, storefort_web::ServerKey)> {
    cfg.settings()?;
    serve::prepare_data_dir(cfg)?;
    let key = keyfile::load_or_create(&cfg.data_dir)?;
    let store = serve::open_store(cfg, &key).await?;
    Ok((store, key))
}

/// Reads a password from standard input (one line, newline trimmed).
fn password_from_stdin() -> Result<zeroize::Zeroizing<String>> {
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin().take(4096).read_to_string(&mut text).context("cannot read the password from standard input")?;
    let trimmed = zeroize::Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    Ok(trimmed)
}

/// `storefort admin create --email … --role … --password-stdin`.
pub async fn create(cfg: Config, email: &str, role: &str, password_stdin: bool) -> Result<()> {
    if !password_stdin {
        bail!(
            "pass the password on standard input with --password-stdin (never as an argument: it would show in `ps` and shell history)"
        );
    }
    let role =
        AccountRole::parse(role).filter(|r| r.is_staff()).context("--role must be owner, admin, staff or support")?;
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let password = password_from_stdin()?;
    policy::check(&password, policy::Role::Staff, &[email.as_str()])
        .map_err(|e| anyhow::anyhow!("the password {e}"))?;
    let (store, key) = open(&cfg).await?;
    let index = key.email_index(&email_key(&email));
    if store.account_by_email_index(&index).await?.is_some() {
        bail!("that email already has an account");
    }
    let hash = PasswordHasher::owasp().hash(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let id = uuid::Uuid::now_v7().to_string();
    let vault = serve::open_vault(&cfg).await?;
    let sealed_email = vault
        .encrypt_new(&id, serve::now_ms(), &[("email", email.as_str())])
        .await
        .map_err(|e| anyhow::anyhow!("cannot encrypt the email: {}", e.message))?
        .remove(0);
    let mut tx = store.begin_write(serve::now_ms(), &Actor::Operator.label(), None).await?;
    tx.insert_account(&NewAccount {
        id: id.clone(),
        email: sealed_email,
        email_index: index,
        role: role.as_str().to_owned(),
        password_hash: hash,
        email_verified: true,
    })
    .await?;
    tx.commit(
        SecurityEvent::new(EventKind::RoleChanged, Actor::Operator).target(id.clone()).with("new", role.as_str()),
    )
    .await?;
    store.close().await;
    vault.key_store().close().await;
    println!("created {} account {id}", role.as_str());
    println!("sign in at POST /api/v1/auth/sign-in; you will be asked to set up two-factor sign-in first");
    Ok(())
}

/// `storefort admin token --email … --scope … --days …`: an API token for
/// an integration, printed once.
pub async fn token(cfg: Config, email: &str, scopes: &[String], days: u32, name: &str) -> Result<()> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let (store, key) = open(&cfg).await?;
    let account = store
        .account_by_email_index(&key.email_index(&email_key(&email)))
        .await?
        .context("no account has that email")?;
    let role = AccountRole::parse(&account.role).context("the account's role is unknown")?;
    let max_days = cfg.auth.api_token_max_days;
    if days == 0 || days > max_days {
        bail!("--days must be 1 to {max_days}");
    }
    let mut granted = Vec::new();
    for s in scopes {
        let p = Permission::parse(s).with_context(|| format!("unknown scope {s}"))?;
        if !p.grantable_to_tokens() || !storefort_auth::allows(role, p) {
            bail!("scope {s} cannot be granted to this account's tokens");
        }
        granted.push(p.as_str().to_owned());
    }
    if granted.is_empty() {
        bail!("give at least one --scope");
    }
    let token = format!("{}{}", storefort_web::identity::guard::API_TOKEN_PREFIX, random_token()?);
    let id = uuid::Uuid::now_v7().to_string();
    let now = serve::now_ms();
    let expires_at = now + i64::from(days) * 86_400_000;
    let mut tx = store.begin_write(now, &Actor::Operator.label(), None).await?;
    tx.insert_api_token(&NewApiToken {
        id: id.clone(),
        account_id: account.id.clone(),
        name: name.to_owned(),
        token_hash: hash_secret(&token),
        scopes: granted.clone(),
        expires_at,
    })
    .await?;
    tx.append(
        "api_token_created",
        vec![account.id.clone(), id.clone()],
        json!({"scopes": granted, "expires_at": expires_at}),
    )
    .await?;
    tx.commit(SecurityEvent::new(EventKind::ApiTokenCreated, Actor::Operator).target(account.id).with("token", id))
        .await?;
    store.close().await;
    // Printed once to the terminal, never logged.
    println!("{token}");
    Ok(())
}
