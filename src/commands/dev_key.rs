//! The development master key: `stewrd dev` keeps one in `.stewrd/master.key`
//! when `STEWRD_MASTER_KEYS` is unset, and the operator commands run in the same
//! folder use it too (saying so), so the quickstart works as written. Only
//! `stewrd dev` ever creates it: `api` and `worker` never fall back to it.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use secrecy::ExposeSecret;
use stewrd_shared::{runtime::config::Config, secrets::crypto::MasterKeyRing};
use zeroize::Zeroizing;

/// Where the development master key lives, relative to the working directory.
pub const DEV_MASTER_KEY: &str = ".stewrd/master.key";

/// What a command does when `STEWRD_MASTER_KEYS` is unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevKey {
    /// `stewrd dev`: use the development key, creating it on first use.
    CreateIfMissing,
    /// Operator commands: use the development key if `stewrd dev` made one here.
    UseIfPresent,
}

/// The master keys: `STEWRD_MASTER_KEYS`, else the development key as `dev_key` says.
pub fn master_keys(config: &mut Config, dev_key: DevKey) -> anyhow::Result<Arc<MasterKeyRing>> {
    if let Ok(keys) = config.master_keys() {
        return Ok(keys);
    }
    let path = Path::new(DEV_MASTER_KEY);
    match dev_key {
        DevKey::CreateIfMissing if !path.exists() => create(path)?,
        DevKey::UseIfPresent if !path.exists() => {
            let error = config.master_keys().err();
            return Err(anyhow::anyhow!(
                "{} (or run this where `stewrd dev` keeps {DEV_MASTER_KEY})",
                error.map(|e| e.to_string()).unwrap_or_default()
            ));
        }
        DevKey::UseIfPresent => tracing::warn!(
            "STEWRD_MASTER_KEYS is not set: using the development master key in {DEV_MASTER_KEY}, as `stewrd dev` does"
        ),
        DevKey::CreateIfMissing => {}
    }
    config.set_master_keys(load(path)?);
    Ok(config.master_keys()?)
}

/// Writes a new key readable by its owner only.
fn create(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let entry = MasterKeyRing::generate_entry("dev");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {DEV_MASTER_KEY}"))?;
    std::io::Write::write_all(&mut file, entry.expose_secret().as_bytes())?;
    tracing::warn!(
        "created a development master key in {DEV_MASTER_KEY}; set STEWRD_MASTER_KEYS in production"
    );
    Ok(())
}

fn load(path: &Path) -> anyhow::Result<MasterKeyRing> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {DEV_MASTER_KEY}"))?,
    );
    MasterKeyRing::parse(text.trim()).map_err(|why| anyhow::anyhow!("{DEV_MASTER_KEY}: {why}"))
}
