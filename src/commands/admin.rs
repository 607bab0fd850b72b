//! `stewrd admin …`: project and key management from the shell, through the
//! same operator actions as the admin API and the dashboard. Output is JSON on
//! stdout, so scripts can read the key shown this once.

use anyhow::{Context, anyhow};
use secrecy::ExposeSecret;
use serde_json::json;
use stewrd_shared::{
    domain::id::{ApiKeyId, ProjectId},
    ops::{self, OpsError, ProjectName},
    runtime::config::Config,
};

use super::{DevKey, connect_db, master_keys};
use crate::cli::AdminCommand;

pub async fn run(config: &mut Config, command: AdminCommand) -> anyhow::Result<()> {
    let pool = connect_db(config).await?;
    let output = match command {
        AdminCommand::CreateProject { name } => {
            let name = ProjectName::parse(&name).map_err(|why| refused("--name", why))?;
            let keys = master_keys(config, DevKey::UseIfPresent)?;
            let (project, key) = ops::create_project(&pool, &keys, &name)
                .await
                .map_err(|why| refused("--name", why))?;
            json!({"project_id": project.id, "api_key": key.secret.expose_secret()})
        }
        AdminCommand::CreateKey { project } => {
            let project_id: ProjectId = project.parse().context("--project: not a project id")?;
            let client = pool.get().await?;
            let (row, key) = ops::issue_api_key(&client, project_id)
                .await
                .map_err(|why| refused("--project", why))?;
            json!({"project_id": project_id, "key_id": row.id, "api_key": key.secret.expose_secret()})
        }
        AdminCommand::RevokeKey { key } => {
            let key_id: ApiKeyId = key.parse().context("--key: not a key id")?;
            let client = pool.get().await?;
            ops::revoke_api_key(&client, None, key_id)
                .await
                .map_err(|why| refused("--key", why))?;
            json!({"key_id": key_id, "revoked": true})
        }
    };
    println!("{output}");
    Ok(())
}

/// The refusal as one line naming the flag, in the words the API uses.
fn refused(flag: &str, why: OpsError) -> anyhow::Error {
    match why {
        OpsError::Db(error) => anyhow::Error::new(error),
        other => anyhow!("{flag}: {other}"),
    }
}
