//! The browser settings: how a worker reaches `stewrd browser-host`, and how
//! the host runs. The host reads only these (no database, no master keys):
//! a page that breaks out of Chromium finds nothing of stewrd's secrets.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, env::Env};

/// Where a worker's runs get their browsers.
#[derive(Clone, Debug)]
pub struct BrowserAccess {
    /// `STEWRD_BROWSER_HOST_URL`, e.g. `http://127.0.0.1:8091`.
    pub url: Url,
    /// `STEWRD_BROWSER_HOST_TOKEN`: the host answers no one else.
    pub token: SecretString,
}

impl BrowserAccess {
    pub(super) fn from_env(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(url) = env.get("STEWRD_BROWSER_HOST_URL") else {
            return Ok(None);
        };
        let url = Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| ConfigError::new("STEWRD_BROWSER_HOST_URL", "must be an http(s) URL"))?;
        let token = env.secret("STEWRD_BROWSER_HOST_TOKEN").ok_or_else(|| {
            ConfigError::new(
                "STEWRD_BROWSER_HOST_TOKEN",
                "is required with STEWRD_BROWSER_HOST_URL",
            )
        })?;
        Ok(Some(Self { url, token }))
    }
}

/// How `stewrd browser-host` runs.
#[derive(Clone, Debug)]
pub struct BrowserHostSettings {
    /// `STEWRD_BROWSER_HOST_LISTEN`, default `127.0.0.1:8091`.
    pub listen: SocketAddr,
    /// `STEWRD_BROWSER_HOST_TOKEN` (required).
    pub token: SecretString,
    /// `STEWRD_BROWSER_MAX_SESSIONS`, default 4: browsers open at once.
    pub max_sessions: usize,
    /// `STEWRD_BROWSER_IDLE_SECS`, default 600: a browser no action used for
    /// this long is closed (its run's state is kept by the worker).
    pub idle: Duration,
    /// `STEWRD_BROWSER_ACTION_SECS`, default 30: one action, all of its
    /// DevTools commands together; past it the browser is closed.
    pub action_timeout: Duration,
    /// `STEWRD_BROWSER_MEMORY_MB`, default 1024: the resident memory one
    /// browser (all its processes) may use before it is killed.
    pub memory_bytes: u64,
    /// `STEWRD_CHROMIUM`, default `chromium`: the browser's executable.
    pub chromium: String,
    /// `STEWRD_BROWSER_DIR`, default a folder in the temporary directory named
    /// for the listening port: the browsers' profiles (and how a new host
    /// finds what an old one left running).
    pub dir: PathBuf,
    /// `STEWRD_WEBHOOK_ALLOW_PRIVATE`, default false: whether pages may reach
    /// loopback, private and link-local addresses.
    pub allow_private: bool,
}

impl BrowserHostSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let env = Env(&lookup);
        let listen: SocketAddr = env.parse(
            "STEWRD_BROWSER_HOST_LISTEN",
            SocketAddr::from(([127, 0, 0, 1], 8091)),
        )?;
        let token = env
            .secret("STEWRD_BROWSER_HOST_TOKEN")
            .ok_or_else(|| ConfigError::new("STEWRD_BROWSER_HOST_TOKEN", "is required"))?;
        let dir = env.get("STEWRD_BROWSER_DIR").map_or_else(
            || std::env::temp_dir().join(format!("stewrd-browser-host-{}", listen.port())),
            PathBuf::from,
        );
        Ok(Self {
            listen,
            token,
            max_sessions: env.parse_min("STEWRD_BROWSER_MAX_SESSIONS", 4, 1)?,
            idle: env.seconds("STEWRD_BROWSER_IDLE_SECS", 600)?,
            action_timeout: env.seconds("STEWRD_BROWSER_ACTION_SECS", 30)?,
            memory_bytes: env.parse_min("STEWRD_BROWSER_MEMORY_MB", 1024u64, 64)? << 20,
            chromium: env.string("STEWRD_CHROMIUM", "chromium"),
            dir,
            allow_private: env.parse("STEWRD_WEBHOOK_ALLOW_PRIVATE", false)?,
        })
    }
}
