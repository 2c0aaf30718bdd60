//! Outgoing mail: verification and password-reset links.
//!
//! By default mail is written to an outbox directory (one `.eml` file per
//! message, 0600), which works on a first run with no mail server and lets
//! tests read what was sent. With SMTP configured it goes out over SMTP with
//! STARTTLS required. Sending runs in the background, so how long a request
//! takes never reveals whether a mail was sent (account enumeration).

use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncTransport, Tokio1Executor};
use std::path::PathBuf;

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// Files in a directory.
    Outbox(PathBuf),
    /// An SMTP relay.
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox },
}

/// A message to send.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// SMTP settings.
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub from: String,
    pub tls: SmtpTls,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on this machine (loopback), where there is
    /// no network to protect.
    LoopbackPlain,
}

impl SmtpTls {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Implicit),
            "none" => Some(SmtpTls::LoopbackPlain),
            _ => None,
        }
    }
}

/// True for a host name or address that stays on this machine.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Mailer {
    /// An SMTP mailer. Credentials never cross a network unencrypted: TLS
    /// is required unless the relay is on loopback.
    pub fn smtp(c: SmtpConfig) -> Result<Self, String> {
        let from: Mailbox = c.from.parse().map_err(|_| "from is not a valid address".to_owned())?;
        let builder = match c.tls {
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host),
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host),
            SmtpTls::LoopbackPlain if is_loopback(&c.host) => {
                Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host))
            }
            SmtpTls::LoopbackPlain => return Err("smtp_tls = \"none\" is only allowed for a loopback smtp_host".into()),
        };
        let mut builder = builder.map_err(|_| "smtp_host is not usable".to_owned())?.port(c.port);
        if !c.username.is_empty() {
            builder = builder.credentials(Credentials::new(c.username, c.password));
        }
        Ok(Mailer::Smtp { transport: builder.build(), from })
    }

    /// Sends in the background. Failures are logged without the address.
    pub fn send_later(&self, mail: Mail) {
        let mailer = self.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(mail).await {
                tracing::warn!(error = %e, "could not send mail");
            }
        });
    }

    /// Sends now.
    pub async fn send(&self, mail: Mail) -> Result<(), String> {
        match self {
            Mailer::Outbox(dir) => {
                let message = build(&mail, &"Storefort <no-reply@localhost>".parse().map_err(|_| "from")?)?;
                write_outbox(dir.clone(), message.formatted()).await
            }
            Mailer::Smtp { transport, from } => {
                let message = build(&mail, from)?;
                transport.send(message).await.map(|_| ()).map_err(|e| format!("smtp: {e}"))
            }
        }
    }
}

fn build(mail: &Mail, from: &Mailbox) -> Result<Message, String> {
    let to: Mailbox = mail.to.parse().map_err(|_| "the recipient address does not parse".to_owned())?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .body(mail.body.clone())
        .map_err(|e| format!("building the message: {e}"))
}

async fn write_outbox(dir: PathBuf, bytes: Vec<u8>) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| e.to_string())?;
        let name = format!("{}.eml", uuid::Uuid::now_v7());
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| e.to_string())?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| e.to_string())?;
        // Renamed into place whole, so a reader never sees half a message.
        std::fs::rename(&tmp, dir.join(name)).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}
