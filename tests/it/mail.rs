//! Mail through a real SMTP conversation: a minimal relay on loopback that
//! speaks RFC 5321 and keeps what it receives.

use crate::support::spawn_with_mailer;
use serde_json::json;
use std::sync::{Arc, Mutex};
use storefort_web::identity::mailer::{Mailer, SmtpConfig, SmtpTls};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Accepts SMTP sessions and stores each message's DATA.
async fn fake_relay() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 relay.test ESMTP\r\n").await.ok();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            store.lock().expect("lock").push(data.take().unwrap_or_default());
                            write.write_all(b"250 2.0.0 queued\r\n").await.ok();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split(' ').next().unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-relay.test\r\n250 8BITMIME\r\n",
                        "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.1.0 ok\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.ok();
                            break;
                        }
                        _ => b"502 5.5.2 not implemented\r\n",
                    };
                    write.write_all(reply).await.ok();
                }
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn verification_mail_goes_through_the_configured_smtp_relay() {
    let (port, received) = fake_relay().await;
    let mailer = Mailer::smtp(SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        username: String::new(),
        password: String::new(),
        from: "Shop <shop@example.com>".into(),
        tls: SmtpTls::LoopbackPlain,
    })
    .expect("mailer");
    let app = spawn_with_mailer(mailer).await;
    let r = app
        .post("/api/v1/auth/sign-up", json!({"email": "mo@example.com", "password": crate::accounts::PASSWORD}))
        .await;
    assert_eq!(r.status, 202);
    let mut message = None;
    for _ in 0..200 {
        if let Some(m) = received.lock().expect("lock").first().cloned() {
            message = Some(m);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let message = message.expect("the relay received the mail");
    assert!(message.contains("To: mo@example.com"), "{message}");
    assert!(message.contains("From: Shop <shop@example.com>"), "{message}");
    let token: String = message.split("Your code: ").nth(1).expect("code").chars().take(43).collect();
    assert_eq!(app.post("/api/v1/auth/verify-email", json!({"token": token})).await.status, 200);
    assert!(!app.dir.path().join("outbox").exists(), "nothing went to the outbox");
}

#[tokio::test]
async fn plain_smtp_is_refused_off_loopback() {
    let config = |host: &str| SmtpConfig {
        host: host.into(),
        port: 25,
        username: "u".into(),
        password: "p".into(),
        from: "shop@example.com".into(),
        tls: SmtpTls::LoopbackPlain,
    };
    assert!(Mailer::smtp(config("mail.example.com")).is_err());
    assert!(Mailer::smtp(config("localhost")).is_ok());
}
