//! `storefort serve`: open the store, seed, listen, and shut down gracefully.

use crate::config::Config;
use crate::keyfile;
use anyhow::{Context, Result};
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Duration;
use storefort_store::{Store, StoreOptions};
use storefort_web::identity::mailer::{Mailer, SmtpConfig, SmtpTls};
use storefort_web::{AppState, SystemClock, demo, jobs, ledger};
use tokio::sync::watch;

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STOREFORT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

pub fn prepare_data_dir(cfg: &Config) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))
}

/// Purpose label of the ledger MAC key derived from the server key.
pub const LEDGER_MAC_PURPOSE: &str = "storefort/ledger-mac/v1";

pub async fn open_store(cfg: &Config, key: &storefort_web::ServerKey) -> Result<Store> {
    let url = cfg.database_url()?;
    let options = StoreOptions {
        url,
        max_connections: cfg.store.max_db_connections,
        ledger_mac_key: key.subkey(LEDGER_MAC_PURPOSE),
        record_ledger: true,
    };
    // The URL may hold a password: errors name the backend, never the URL.
    Store::open(&options).await.map_err(|e| {
        anyhow::anyhow!("cannot open the database: {e} ({:?})", std::error::Error::source(&e).map(ToString::to_string))
    })
}

pub fn now_ms() -> i64 {
    use storefort_web::Clock;
    SystemClock.now_ms()
}

/// Loads the master key and opens the key store; refuses a master key that
/// is not the one the key store was set up with.
pub async fn open_vault(cfg: &Config) -> Result<Arc<storefort_web::vault::Vault>> {
    let source = cfg.master_key_source();
    let (master, created) =
        storefort_vault::MasterKey::load(&source).map_err(|e| anyhow::anyhow!("cannot load the master key: {e}"))?;
    // A rotation that did not finish left the old key beside the new one.
    let retired = match source.retired_file() {
        Some(path) => storefort_vault::load_existing_file(&path)
            .map_err(|e| anyhow::anyhow!("cannot load the retiring master key: {e}"))?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    if created {
        tracing::info!(key = master.id(), "created a new master key; back it up apart from the database");
    }
    // The URL may hold a password: errors name the store, never the URL.
    let keys = storefort_store::KeyStore::open(&cfg.key_store_url()?)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the key store: {e}"))?;
    Ok(Arc::new(storefort_web::vault::Vault::open(master, retired, Some(source), keys).await?))
}

/// The mailer the configuration asks for.
pub fn mailer(cfg: &Config) -> Result<Mailer> {
    if cfg.mail.smtp_host.is_empty() {
        return Ok(Mailer::Outbox(cfg.outbox_dir()));
    }
    Mailer::smtp(SmtpConfig {
        host: cfg.mail.smtp_host.clone(),
        port: cfg.mail.smtp_port,
        username: cfg.mail.smtp_username.clone(),
        password: cfg.mail.smtp_password.0.clone(),
        from: cfg.mail.from.clone(),
        tls: SmtpTls::parse(&cfg.mail.smtp_tls)
            .ok_or_else(|| anyhow::anyhow!("invalid configuration: `mail.smtp_tls` must be starttls, tls or none"))?,
    })
    .map_err(|e| anyhow::anyhow!("invalid configuration: mail: {e}"))
}

async fn announce_missing_owner(store: &Store) -> Result<()> {
    let owners = store.staff_accounts().await?.into_iter().filter(|a| a.role == "owner").count();
    if owners == 0 {
        // Printed, not logged: it is an instruction for the person at the
        // terminal, and there is no secret in it.
        println!();
        println!("  No owner account yet. Create one (you will set up two-factor sign-in at first sign-in):");
        println!();
        println!("      storefort admin create --email you@example.com --role owner --password-stdin");
        println!();
    }
    Ok(())
}

/// Runs the store until SIGTERM or SIGINT.
pub async fn serve(cfg: Config, demo_data: bool) -> Result<()> {
    let settings = cfg.settings()?;
    init_logging(&cfg.log_format);
    // A bad certificate stops the start before anything else is opened.
    let tls = match cfg.tls_files()? {
        Some((cert, key)) => Some(crate::tls::load(&cert, &key).await?),
        None => None,
    };
    prepare_data_dir(&cfg)?;
    // ACME: answer challenges on the plain-HTTP port, and get a certificate
    // before serving if there is none yet (or it is due).
    let acme = cfg.acme()?;
    let challenges = crate::acme::Challenges::default();
    let tls = match &acme {
        Some(settings) => {
            let listener = tokio::net::TcpListener::bind(settings.http_listen)
                .await
                .with_context(|| format!("cannot listen on {} for ACME challenges", settings.http_listen))?;
            let app = crate::acme::http_app(challenges.clone(), settings.domains.clone());
            tokio::spawn(async move { axum::serve(listener, app).await });
            if settings.due() {
                crate::acme::obtain(settings, &challenges).await?;
            }
            Some(crate::tls::load(&settings.cert_file(), &settings.key_file()).await?)
        }
        None => tls,
    };
    let key = keyfile::load_or_create(&cfg.data_dir)?;
    let store = open_store(&cfg, &key).await?;
    tracing::info!(backend = ?store.backend(), "database ready");
    if demo_data {
        let added = demo::seed_if_empty(&store, settings.currency.code(), now_ms()).await?;
        if added > 0 {
            tracing::info!(products = added, "seeded the demo catalog");
        }
    }
    announce_missing_owner(&store).await?;
    let seed = keyfile::ledger_seed(&cfg.data_dir)?;
    let signer = ledger::open_signer(&store, &seed, cfg.ledger_origin(), Some(cfg.witness_dir()), now_ms()).await?;
    let mac_key = key.subkey(LEDGER_MAC_PURPOSE);
    if let Err(problem) = ledger::fast_check(&signer, &store, &mac_key).await {
        let event = storefort_core::SecurityEvent::new(
            storefort_core::EventKind::LedgerTampered,
            storefort_core::Actor::System,
        );
        let _ = store.record_event(&event, now_ms()).await;
        tracing::error!(target: "security", %problem, "ledger check at start failed");
        anyhow::bail!(
            "the ledger check at start failed: {problem}. Run `storefort ledger verify` for the full report."
        );
    }
    tracing::info!(origin = signer.origin(), key = %signer.verifier(), "ledger ready");
    let mailer = mailer(&cfg)?;
    let vault = open_vault(&cfg).await?;
    let state =
        AppState::with_mailer(store.clone(), settings, Arc::new(SystemClock), key, signer.clone(), vault, mailer);
    // Erasures interrupted by a crash, or undone by restoring an old backup
    // of either database, are finished before the first request.
    match storefort_web::routes::privacy::reconcile_erasures(&state).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(target: "security", reapplied = n, "re-applied erasures after a restore or crash"),
        Err(e) => anyhow::bail!("cannot re-apply erasures: {e}"),
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let checkpoints = tokio::spawn(ledger::run_checkpoints(
        signer,
        store.clone(),
        Arc::new(SystemClock),
        Duration::from_secs(cfg.ledger.checkpoint_interval_seconds),
        cfg.ledger.checkpoint_every_entries,
        stop_rx.clone(),
    ));
    let expiry = tokio::spawn(jobs::run_expiry(
        state.clone(),
        Duration::from_secs(cfg.jobs.expiry_interval_seconds),
        stop_rx.clone(),
    ));
    let webhooks = tokio::spawn(storefort_web::webhooks::run(state.clone(), Duration::from_secs(2), stop_rx.clone()));
    let audits = tokio::spawn(ledger::run_full_audits(
        store.clone(),
        mac_key,
        Some(cfg.witness_dir()),
        Duration::from_secs(cfg.ledger.full_verify_hours * 3600),
        Arc::new(SystemClock),
        stop_rx.clone(),
    ));
    let addr = cfg.listen_addr()?;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %addr, "storefort listening on {scheme}://{addr}");
    let mut stop_signal = stop_rx.clone();
    let stopped = async move {
        let _ = stop_signal.changed().await;
    };
    if let (Some(settings), Some(config)) = (acme, tls.clone()) {
        tokio::spawn(crate::acme::renew_forever(settings, challenges, config, stop_rx.clone()));
    }
    let app = storefort_web::app(state);
    let server: std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>> = match tls {
        Some(config) => Box::pin(crate::tls::serve(listener, config, app, stopped)),
        None => {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            Box::pin(async move { Ok(axum::serve(listener, app).with_graceful_shutdown(stopped).await?) })
        }
    };
    let server = tokio::spawn(server);
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    // In-flight requests get a bounded time to finish.
    match tokio::time::timeout(Duration::from_secs(30), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server error during shutdown"),
        Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("requests still running after 30 s; stopping anyway"),
    }
    let _ = expiry.await;
    let _ = webhooks.await;
    let _ = checkpoints.await;
    let _ = audits.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
}

/// `storefort witness serve`: keeps the checkpoints a store sends.
pub async fn witness(listen: &str, dir: std::path::PathBuf) -> Result<()> {
    init_logging("human");
    let addr: std::net::SocketAddr = listen.parse().context("--listen must be an address such as 127.0.0.1:8090")?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(address = %addr, dir = %dir.display(), "witness listening");
    let app = storefort_web::witness::router(storefort_web::witness::Witness::new(dir));
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}
