//! TLS towards Postgres, configured the way libpq users expect: `sslmode` and
//! `sslrootcert` in `DATABASE_URL`, or `STEWRD_DATABASE_CA_FILE`.
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require`, and no
//! `sslrootcert`, so those two options are taken out of the URL here and turned
//! into a rustls configuration; tokio-postgres is told `require` whenever stewrd
//! verifies the certificate itself.

use std::{fmt, str::FromStr, sync::Arc};

use rustls::{ClientConfig, client::WebPkiServerVerifier, client::danger::ServerCertVerifier};
use tokio_postgres::config::{Host, SslMode as Negotiated};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::verify::Lenient;
use crate::runtime::setting::ConfigError;

/// libpq's `sslmode`, as stewrd honours it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it (libpq's default, and ours, except on
    /// loopback; `allow` too).
    Prefer,
    /// Encrypt or fail.
    Require,
    /// Encrypt, and the certificate must chain to a trusted CA.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres is told: it negotiates, stewrd's verifier judges.
    fn negotiated(self) -> Negotiated {
        match self {
            Self::Disable => Negotiated::Disable,
            Self::Prefer => Negotiated::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Negotiated::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        })
    }
}

/// How stewrd's connections to Postgres are encrypted; handed to every
/// connection it opens (pool, migrations, notification listeners).
#[derive(Clone)]
pub struct DatabaseTls {
    mode: SslMode,
    /// No `sslmode` given and only loopback hosts: plain, where libpq would prefer TLS.
    loopback_default: bool,
    /// Where trusted CAs come from, for messages: a file or the system store.
    trust: Option<String>,
    connector: MakeRustlsConnect,
}

impl fmt::Debug for DatabaseTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseTls")
            .field("mode", &self.mode)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl DatabaseTls {
    /// The effective `sslmode`.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The connector every Postgres connection is made with.
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }

    /// A short account of the TLS settings, for the line explaining a failed
    /// connection.
    pub fn describe(&self) -> String {
        match (&self.trust, self.loopback_default) {
            (Some(trust), _) => format!("sslmode={}, CAs from {trust}", self.mode),
            (None, true) => "no sslmode: plain on loopback".to_owned(),
            (None, false) => format!("sslmode={}", self.mode),
        }
    }
}

/// Reads `DATABASE_URL` (and `STEWRD_DATABASE_CA_FILE`, used when the URL has no
/// `sslrootcert`) into tokio-postgres's settings and the TLS to use.
///
/// A CA file makes `prefer` and `require` verify the chain, as libpq does for
/// `require`; `sslrootcert=system` means the system's CA store, which is also
/// what `verify-ca` and `verify-full` use when no CA file is given.
pub fn parse(
    url: &str,
    ca_file: Option<&str>,
) -> Result<(tokio_postgres::Config, DatabaseTls), ConfigError> {
    let bad_url = |reason: String| ConfigError::new("DATABASE_URL", reason);
    let split = if url.contains("://") {
        split_uri(url)
    } else {
        split_key_value(url).map_err(|why| bad_url(why.to_owned()))?
    };
    let mut config = tokio_postgres::Config::from_str(&split.rest)
        .map_err(|e| bad_url(format!("not a Postgres URL ({e})")))?;
    let requested = match split.sslmode.as_deref() {
        None => None,
        Some(text) => Some(SslMode::parse(text).ok_or_else(|| {
            // The value is not repeated: a mistyped string may run on into the password.
            bad_url(
                "sslmode must be disable, allow, prefer, require, verify-ca or verify-full"
                    .to_owned(),
            )
        })?),
    };
    let loopback_default = requested.is_none()
        && split.sslrootcert.is_none()
        && ca_file.is_none()
        && loopback_only(&config);
    let mode = match requested {
        Some(mode) => mode,
        None if loopback_default => SslMode::Disable,
        None => SslMode::Prefer,
    };
    config.ssl_mode(mode.negotiated());

    // (setting to blame, CA file or None for the system store)
    let source = match (split.sslrootcert, ca_file) {
        (Some(root), _) if root == "system" => Some(("DATABASE_URL", None)),
        (Some(root), _) => Some(("DATABASE_URL", Some(root))),
        (None, Some(file)) => Some(("STEWRD_DATABASE_CA_FILE", Some(file.to_owned()))),
        (None, None) => None,
    };
    let verify_chain = match mode {
        SslMode::Disable => false,
        SslMode::Prefer | SslMode::Require => source.is_some(),
        SslMode::VerifyCa | SslMode::VerifyFull => true,
    };
    let provider = super::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad_url(format!("TLS set-up failed: {e}")))?;
    let (trust, verifier): (Option<String>, Arc<dyn ServerCertVerifier>) = if verify_chain {
        let (setting, file) = source.unwrap_or(("DATABASE_URL", None));
        let roots =
            super::roots(file.as_deref()).map_err(|e| ConfigError::new(setting, e.to_string()))?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| ConfigError::new(setting, format!("unusable CAs: {e}")))?;
        let trust = Some(match file {
            Some(file) => format!("{file} ({setting})"),
            None => "the system store".to_owned(),
        });
        if mode == SslMode::VerifyFull {
            (trust, webpki)
        } else {
            (trust, Arc::new(Lenient::chain_only(webpki, &provider)))
        }
    } else {
        (None, Arc::new(Lenient::any_certificate(&provider)))
    };
    let client = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((
        config,
        DatabaseTls {
            mode,
            loopback_default,
            trust,
            connector: MakeRustlsConnect::new(client),
        },
    ))
}

/// Whether every host in `config` is this machine. With no `sslmode`
/// there, stewrd connects in plain: TLS over loopback hides nothing from anyone
/// (who can read loopback owns the host) and costs about 15% of the job
/// throughput (BENCHMARKS.md). A local tunnel or pooler that encrypts onwards is
/// covered too. An explicit `sslmode` is always obeyed.
fn loopback_only(config: &tokio_postgres::Config) -> bool {
    let hosts = config.get_hosts();
    !hosts.is_empty()
        && hosts.iter().all(|host| match host {
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            // Postgres has no TLS on a Unix socket.
            Host::Unix(_) => true,
        })
}

/// A connection string with the two TLS options taken out.
struct Split {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl Split {
    /// Takes out a TLS option; false means the option stays in the URL.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => return false,
        }
        true
    }
}

/// `postgres://…?sslmode=…&sslrootcert=…`; the query is split by hand because a
/// multi-host URL is not one `url::Url` accepts.
fn split_uri(url: &str) -> Split {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut split = Split {
        rest: base.to_owned(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept = Vec::new();
    for piece in query.split('&').filter(|piece| !piece.is_empty()) {
        let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
        let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !split.take(key, value) {
            kept.push(piece);
        }
    }
    if !kept.is_empty() {
        split.rest = format!("{base}?{}", kept.join("&"));
    }
    split
}

/// `host=… sslmode=… sslrootcert='…'`, libpq's key/value form: values may be
/// single-quoted, with `\` escaping.
fn split_key_value(dsn: &str) -> Result<Split, &'static str> {
    let mut split = Split {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept = Vec::new();
    let mut chars = dsn.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next().map(|(_, c)| c) != Some('=') {
            // Never quote the text: a stray word may be a piece of the password.
            return Err("expected key=value pairs (quote a value holding spaces: password='…')");
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        loop {
            match chars.next() {
                None if quoted => return Err("a quoted value is not closed"),
                None => break,
                Some((_, '\\')) => match chars.next() {
                    Some((_, c)) => value.push(c),
                    None => return Err("a value ends in a lone backslash"),
                },
                Some((_, '\'')) if quoted => break,
                Some((_, c)) if !quoted && c.is_whitespace() => break,
                Some((_, c)) => value.push(c),
            }
        }
        let end = chars.peek().map_or(dsn.len(), |&(i, _)| i);
        if !split.take(&key, value) {
            kept.push(dsn[start..end].trim());
        }
    }
    split.rest = kept.join(" ");
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_url_is_refused_without_quoting_its_password() {
        for url in [
            "host=db password=hunter2 secret",
            "host=db password=hun ter2secret",
            "host=db password='hunter2secret",
            "host=db password=hunter2secret\\",
            "host=db sslmode=hunter2secret",
            "postgres://u:hunter2secret@db/x?sslmode=hunter2secret",
            "postgres://u:hunter2secret@db:notaport/x",
            "postgres://u:hunter2secret@db/x?hunter2secret=1",
            "host=db hunter2secret=1",
        ] {
            let error = parse(url, None).err().map(|e| e.to_string());
            let error = error.unwrap_or_else(|| panic!("{url} parsed"));
            for piece in ["hunt", "nter", "ter2", "secr", "cret"] {
                assert!(!error.contains(piece), "{url}: {error}");
            }
        }
    }

    fn parsed(url: &str) -> (tokio_postgres::Config, DatabaseTls) {
        parse(url, None).expect("parses")
    }

    #[test]
    fn a_plain_url_prefers_tls_like_libpq_except_on_loopback() {
        let (config, tls) = parsed("postgres://app@db.internal:5432/stewrd");
        assert_eq!(tls.mode(), SslMode::Prefer);
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        assert_eq!(config.get_dbname(), Some("stewrd"));
        let (_, tls) = parsed("postgres://app@127.0.0.1:5432,db.internal:5432/stewrd");
        assert_eq!(tls.mode(), SslMode::Prefer, "one remote host is enough");
        for local in [
            "postgres://postgres@127.0.0.1:5432/stewrd",
            "postgres://postgres@localhost/stewrd",
            "postgres://postgres@[::1]:5432/stewrd",
            "host=127.0.0.2 dbname=stewrd",
        ] {
            let (config, tls) = parsed(local);
            assert_eq!(tls.mode(), SslMode::Disable, "{local}");
            assert_eq!(
                config.get_ssl_mode(),
                tokio_postgres::config::SslMode::Disable
            );
            assert_eq!(tls.describe(), "no sslmode: plain on loopback");
        }
        let (_, tls) = parsed("postgres://postgres@127.0.0.1/stewrd?sslmode=prefer");
        assert_eq!(tls.mode(), SslMode::Prefer, "an explicit sslmode is obeyed");
        let (_, tls) =
            parse("postgres://postgres@127.0.0.1/stewrd", Some(SNAKEOIL)).expect("parses");
        assert_eq!(tls.mode(), SslMode::Prefer, "a CA file asks for TLS");
    }

    #[test]
    fn verify_modes_are_negotiated_as_require() {
        let (config, tls) = parsed("postgres://u@db.example:5432/app?sslmode=verify-full");
        assert_eq!(tls.mode(), SslMode::VerifyFull);
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            tls.describe(),
            "sslmode=verify-full, CAs from the system store"
        );
        let (config, _) = parsed("postgres://u@h/app?sslmode=disable&application_name=x");
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        assert_eq!(config.get_application_name(), Some("x"));
    }

    const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

    #[test]
    fn sslrootcert_is_read_and_removed_from_the_url() {
        let ca = SNAKEOIL;
        let url = format!(
            "postgres://u@h/app?sslrootcert={}&sslmode=verify-ca",
            ca.replace('/', "%2F")
        );
        let (_, tls) = parsed(&url);
        assert_eq!(tls.mode(), SslMode::VerifyCa);
        assert_eq!(
            tls.describe(),
            format!("sslmode=verify-ca, CAs from {ca} (DATABASE_URL)")
        );
        let (_, tls) = parsed(&format!(
            "host=h dbname=app sslmode = require sslrootcert='{ca}'"
        ));
        assert_eq!(tls.mode(), SslMode::Require);
        assert!(
            tls.describe().contains(ca),
            "a CA file makes require verify"
        );
    }

    #[test]
    fn bad_tls_settings_name_the_variable() {
        let err = parse("postgres://u@h/app?sslmode=verify", None).err();
        assert_eq!(err.map(|e| e.name), Some("DATABASE_URL"));
        let err = parse(
            "postgres://u@h/app?sslmode=require",
            Some("/nonexistent/ca.pem"),
        )
        .err();
        let err = err.expect("a missing CA file is an error");
        assert_eq!(err.name, "STEWRD_DATABASE_CA_FILE");
        assert!(err.reason.contains("/nonexistent/ca.pem"), "{}", err.reason);
        let err = parse("postgres://u@h/app?sslrootcert=/nonexistent", None).err();
        assert_eq!(err.map(|e| e.name), Some("DATABASE_URL"));
        let err = parse("host=h dbname='app", None).err();
        assert_eq!(err.map(|e| e.name), Some("DATABASE_URL"));
    }

    #[test]
    fn key_value_strings_keep_their_other_options() {
        let (config, tls) = parsed("host=h port=6543 dbname='my app' sslmode=disable");
        assert_eq!(tls.mode(), SslMode::Disable);
        assert_eq!(config.get_dbname(), Some("my app"));
        assert_eq!(config.get_ports(), [6543]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_database_url_is_split_without_panicking(text in "\\PC{0,200}") {
            let _ = parse(&text, None);
            let _ = parse(&format!("postgres://{text}"), None);
        }

        #[test]
        fn no_refusal_quotes_the_password(password in "[A-Za-z0-9]{12,24}", junk in "[ '\\\\=a-z]{0,12}", uri in proptest::bool::ANY) {
            let url = if uri {
                format!("postgres://u:{password}@db/x?sslmode={junk}{password}")
            } else {
                format!("host=db password={password}{junk} sslmode=x{password}")
            };
            if let Err(error) = parse(&url, None) {
                let text = error.to_string();
                proptest::prop_assert!(!text.contains(&password[..8]), "{}", text);
            }
        }
    }
}
