//! NATS credentials and TLS: the `[nats]` keys (and their command-line twins) turned
//! into a client configuration, with the secrets read from files or the environment at
//! connect time.
//!
//! This module owns every secret capstream handles. A secret is held in [`Secret`],
//! whose `Debug` and `Display` print `<redacted>`, and no message built here contains
//! one: errors name the file, the environment variable or the method, never the value.
//! It must not decide what to do when a connection fails; [`Connection::open`](crate::transport::Connection::open)
//! (super::Connection::open) reports that, naming the server and [`Settings::describe`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::NatsConfig;
use crate::error::{Error, Result};

/// The password for `user` when no `password_file` is set.
pub const ENV_PASSWORD: &str = "CAPSTREAM_NATS_PASSWORD";
/// The authentication token when no `token_file` is set.
pub const ENV_TOKEN: &str = "CAPSTREAM_NATS_TOKEN";

/// A secret value: printable only as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that hands it to the client library.
    fn expose(&self) -> String {
        self.0.clone()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// No credentials (a server without an `authorization` block).
    Anonymous,
    /// `user` with a password.
    UserPassword {
        /// The user name (not secret).
        user: String,
        /// The password.
        password: Secret,
    },
    /// A shared token.
    Token(Secret),
    /// An nkey seed; the server knows the public key.
    Nkey(Secret),
    /// A `.creds` file: a user JWT and its nkey seed (operator mode).
    Credentials(PathBuf),
}

/// TLS as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// TLS is required (a `tls://` URL or any `tls_*` key).
    pub required: bool,
    /// CA certificates that replace the system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Everything the client needs besides the URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How it authenticates.
    pub method: Method,
    /// TLS.
    pub tls: Tls,
    /// Each attempt's limit.
    pub connect_timeout: Duration,
}

/// Reads a one-line secret file: trailing line breaks are not part of the secret.
fn read_secret(path: &Path, what: &str) -> Result<Secret> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("[nats] {what} {}: {e}", path.display())))?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(Error::Config(format!(
            "[nats] {what} {} is empty",
            path.display()
        )));
    }
    Ok(Secret(value.to_string()))
}

/// Fails when a URL carries credentials: async-nats ignores them (the server would
/// answer with an authorization violation), and a secret on a command line is visible
/// to every user of the machine.
fn check_urls(urls: &[&str]) -> Result<()> {
    for url in urls {
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return Err(Error::Config(format!(
                "NATS URL {}: credentials in a URL are not used; set [nats] user with \
                 password_file, or token_file (or --nats-user/--nats-password-file)",
                redact_url(url)
            )));
        }
    }
    Ok(())
}

/// `url` with any userinfo replaced, for messages.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let authority = rest.split('/').next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            let path = &rest[authority.len()..];
            format!("{scheme}<redacted>@{host}{path}")
        }
        None => url.to_string(),
    }
}

impl Settings {
    /// Resolves `n` for a connection to `urls`: checks that at most one method is set
    /// and that every file it names is readable; `env` looks up environment variables
    /// (the process environment in production, a map in tests). Paths relative to
    /// `base` (the pipeline file's folder) are resolved against it.
    pub fn resolve(
        n: &NatsConfig,
        urls: &[&str],
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings> {
        check_urls(urls)?;
        let abs = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        let env_token = env(ENV_TOKEN).filter(|t| !t.is_empty());
        let mut chosen: Vec<&str> = Vec::new();
        if n.user.is_some() || n.password_file.is_some() {
            chosen.push("user/password");
        }
        if n.token_file.is_some() || env_token.is_some() {
            chosen.push(if n.token_file.is_some() {
                "token_file"
            } else {
                ENV_TOKEN
            });
        }
        if n.nkey_file.is_some() {
            chosen.push("nkey_file");
        }
        if n.credentials_file.is_some() {
            chosen.push("credentials_file");
        }
        if chosen.len() > 1 {
            return Err(Error::Config(format!(
                "[nats] one authentication method at a time; found {}",
                chosen.join(" and ")
            )));
        }
        let method = if let Some(user) = &n.user {
            let password = match &n.password_file {
                Some(p) => read_secret(&abs(p), "password_file")?,
                None => match env(ENV_PASSWORD).filter(|p| !p.is_empty()) {
                    Some(p) => Secret(p),
                    None => {
                        return Err(Error::Config(format!(
                            "[nats] user {user:?} needs a password: set password_file or {ENV_PASSWORD}"
                        )))
                    }
                },
            };
            Method::UserPassword {
                user: user.clone(),
                password,
            }
        } else if n.password_file.is_some() {
            return Err(Error::Config(
                "[nats] password_file needs user (the name the password belongs to)".into(),
            ));
        } else if let Some(p) = &n.token_file {
            Method::Token(read_secret(&abs(p), "token_file")?)
        } else if let Some(t) = env_token {
            Method::Token(Secret(t))
        } else if let Some(p) = &n.nkey_file {
            let seed = read_secret(&abs(p), "nkey_file")?;
            if !seed.0.trim().starts_with('S') {
                return Err(Error::Config(format!(
                    "[nats] nkey_file {} does not hold an nkey seed (it starts with 'S')",
                    abs(p).display()
                )));
            }
            Method::Nkey(Secret(seed.0.trim().to_string()))
        } else if let Some(p) = &n.credentials_file {
            let p = abs(p);
            std::fs::metadata(&p).map_err(|e| {
                Error::Config(format!("[nats] credentials_file {}: {e}", p.display()))
            })?;
            Method::Credentials(p)
        } else {
            Method::Anonymous
        };
        let client = match (&n.tls_cert_file, &n.tls_key_file) {
            (Some(c), Some(k)) => Some((abs(c), abs(k))),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "[nats] tls_cert_file and tls_key_file go together (mutual TLS)".into(),
                ))
            }
        };
        let ca_file = n.tls_ca_file.as_ref().map(abs);
        for f in ca_file
            .iter()
            .chain(client.iter().flat_map(|(c, k)| [c, k]))
        {
            std::fs::metadata(f)
                .map_err(|e| Error::Config(format!("[nats] TLS file {}: {e}", f.display())))?;
        }
        let tls = Tls {
            required: ca_file.is_some()
                || client.is_some()
                || urls.iter().any(|u| u.starts_with("tls://")),
            ca_file,
            client,
        };
        Ok(Settings {
            method,
            tls,
            connect_timeout: Duration::from_millis(n.connect_timeout_ms),
        })
    }

    /// The method and transport in words, for messages: never the secret.
    pub fn describe(&self) -> String {
        let method = match &self.method {
            Method::Anonymous => "no credentials".to_string(),
            Method::UserPassword { user, .. } => format!("user/password (user {user:?})"),
            Method::Token(_) => "token".to_string(),
            Method::Nkey(_) => "nkey".to_string(),
            Method::Credentials(p) => format!("credentials file {}", p.display()),
        };
        let tls = match (&self.tls.required, &self.tls.ca_file, &self.tls.client) {
            (false, _, _) => "plain TCP".to_string(),
            (true, ca, client) => {
                let mut parts = vec![match ca {
                    Some(ca) => format!("CA {}", ca.display()),
                    None => "system roots".to_string(),
                }];
                if let Some((c, _)) = client {
                    parts.push(format!("client certificate {}", c.display()));
                }
                format!("TLS ({})", parts.join(", "))
            }
        };
        format!("{method} over {tls}")
    }

    /// The async-nats options: credentials, TLS and the attempt limit.
    pub async fn options(&self) -> Result<async_nats::ConnectOptions> {
        let mut o = async_nats::ConnectOptions::new().connection_timeout(self.connect_timeout);
        o = match &self.method {
            Method::Anonymous => o,
            Method::UserPassword { user, password } => {
                o.user_and_password(user.clone(), password.expose())
            }
            Method::Token(t) => o.token(t.expose()),
            Method::Nkey(seed) => o.nkey(seed.expose()),
            Method::Credentials(p) => o.credentials_file(p).await.map_err(|e| {
                Error::Config(format!("[nats] credentials_file {}: {e}", p.display()))
            })?,
        };
        if self.tls.required {
            o = o.require_tls(true);
        }
        if let Some(ca) = &self.tls.ca_file {
            o = o.add_root_certificates(ca.clone());
        }
        if let Some((c, k)) = &self.tls.client {
            o = o.add_client_certificate(c.clone(), k.clone());
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn a_password_comes_from_its_file_and_never_prints() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("pw"), "s3cret-value\n").unwrap();
        let n = NatsConfig {
            user: Some("capstream".into()),
            password_file: Some("pw".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&n, &["nats://h:4222"], d.path(), env(&[])).unwrap();
        match &s.method {
            Method::UserPassword { user, password } => {
                assert_eq!(user, "capstream");
                assert_eq!(password.expose(), "s3cret-value", "the newline is not part");
            }
            m => panic!("{m:?}"),
        }
        let shown = format!("{s:?} {}", s.describe());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("user/password"));
    }

    #[test]
    fn the_environment_supplies_a_password_or_a_token() {
        let n = NatsConfig {
            user: Some("u".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&n, &[], Path::new("."), env(&[(ENV_PASSWORD, "pw")])).unwrap();
        assert!(matches!(s.method, Method::UserPassword { .. }));
        let err = Settings::resolve(&n, &[], Path::new("."), env(&[])).unwrap_err();
        assert!(err.to_string().contains(ENV_PASSWORD), "{err}");
        let t = Settings::resolve(
            &NatsConfig::default(),
            &[],
            Path::new("."),
            env(&[(ENV_TOKEN, "tok")]),
        )
        .unwrap();
        assert_eq!(t.method, Method::Token(Secret("tok".into())));
        assert_eq!(format!("{:?}", t.method), "Token(<redacted>)");
    }

    #[test]
    fn two_methods_or_half_a_certificate_are_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("t"), "x").unwrap();
        let n = NatsConfig {
            user: Some("u".into()),
            token_file: Some("t".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&n, &[], d.path(), env(&[(ENV_PASSWORD, "p")])).unwrap_err();
        assert!(
            err.to_string().contains("one authentication method"),
            "{err}"
        );
        let n = NatsConfig {
            tls_cert_file: Some("t".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&n, &[], d.path(), env(&[])).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        let n = NatsConfig {
            password_file: Some("t".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&n, &[], d.path(), env(&[])).is_err());
    }

    #[test]
    fn tls_is_required_by_a_tls_key_or_url_and_files_must_exist() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ca.pem"), "x").unwrap();
        let n = NatsConfig {
            tls_ca_file: Some("ca.pem".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&n, &["nats://h:1"], d.path(), env(&[])).unwrap();
        assert!(s.tls.required);
        assert!(s.describe().contains("TLS (CA"), "{}", s.describe());
        let plain =
            Settings::resolve(&NatsConfig::default(), &["tls://h:1"], d.path(), env(&[])).unwrap();
        assert!(plain.tls.required && plain.tls.ca_file.is_none());
        let n = NatsConfig {
            tls_ca_file: Some("missing.pem".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&n, &[], d.path(), env(&[])).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_echoing_them() {
        let err = Settings::resolve(
            &NatsConfig::default(),
            &["nats://alice:hunter2@h:4222"],
            Path::new("."),
            env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("not used") && !err.contains("hunter2"),
            "{err}"
        );
        assert_eq!(redact_url("nats://a:b@h:1"), "nats://<redacted>@h:1");
        assert_eq!(redact_url("nats://h:1"), "nats://h:1");
    }

    #[test]
    fn an_nkey_file_must_hold_a_seed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("k"), "UABC\n").unwrap();
        let n = NatsConfig {
            nkey_file: Some("k".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&n, &[], d.path(), env(&[])).unwrap_err();
        assert!(err.to_string().contains("seed"), "{err}");
    }
}
