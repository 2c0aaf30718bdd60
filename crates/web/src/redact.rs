//! `Debug` for request and response bodies that carry secrets (passwords,
//! one-time codes, tokens shown once): the secret fields print as
//! `[redacted]`, so a `?body` in a log line or a panic message cannot leak
//! them.

/// Implements `Debug` for `$ty`, printing the fields before `redacting`
/// and only the names of those after it.
macro_rules! debug_redacted {
    ($ty:ident { $($field:ident),* } redacting { $($secret:ident),+ }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    $(.field(stringify!($secret), &crate::redact::Redacted))+
                    .finish()
            }
        }
    };
}
pub(crate) use debug_redacted;

/// What a secret field prints as.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use crate::routes::account::{CreatedToken, TotpEnrollment};
    use crate::routes::auth::{Credentials, EmailToken, ResetConfirm, SecondFactor};
    use crate::routes::privacy::EraseConfirm;
    use crate::routes::webhooks::{CreatedEndpoint, EndpointOut};

    const SECRET: &str = "s3cret-VALUE";

    fn secret() -> String {
        SECRET.to_owned()
    }

    #[test]
    fn bodies_with_secrets_never_print_them() {
        let printed = [
            format!("{:?}", Credentials { email: "ada@example.com".into(), password: secret(), totp: Some(secret()) }),
            format!(
                "{:?}",
                SecondFactor { totp: Some(secret()), recovery_code: Some(secret()), challenge: Some(secret()) }
            ),
            format!("{:?}", EmailToken { token: secret() }),
            format!("{:?}", ResetConfirm { token: secret(), password: secret() }),
            format!("{:?}", EraseConfirm { password: secret() }),
            format!("{:?}", TotpEnrollment { otpauth_uri: secret(), qr_svg: secret(), secret: secret() }),
            format!(
                "{:?}",
                CreatedToken { id: "tok_1".into(), token: secret(), scopes: vec![], expires_at: "2027-01-01".into() }
            ),
            format!(
                "{:?}",
                CreatedEndpoint {
                    endpoint: EndpointOut {
                        id: "we_1".into(),
                        url: "https://erp.example/hook".into(),
                        events: vec![],
                        status: "active".into(),
                        created_at: "2026-11-27".into(),
                    },
                    secret: secret(),
                }
            ),
        ];
        for p in &printed {
            assert!(!p.contains(SECRET), "{p}");
            assert!(p.contains("[redacted]"), "{p}");
        }
        // What is not secret still prints, to keep Debug useful.
        assert!(printed[0].contains("ada@example.com") && printed[6].contains("tok_1") && printed[7].contains("we_1"));
    }
}
