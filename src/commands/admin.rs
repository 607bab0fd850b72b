//! `stewrd admin …`: project and key management from the shell. Output is JSON on
//! stdout, so scripts can read the key shown this once.

use anyhow::{Context, anyhow};
use secrecy::ExposeSecret;
use serde_json::json;
use stewrd_shared::{
    config::Config,
    db::{
        api_key::{insert_api_key, revoke_api_key},
        project::{create_project_with_key, get_project, project_name},
    },
    id::{ApiKeyId, ProjectId},
    token::generate_api_key,
};

use super::{DevKey, connect_db, master_keys};
use crate::cli::AdminCommand;

pub async fn run(config: &mut Config, command: AdminCommand) -> anyhow::Result<()> {
    let pool = connect_db(config).await?;
    let output = match command {
        AdminCommand::CreateProject { name } => {
            let name = project_name(&name).map_err(|why| anyhow!("--name: {why}"))?;
            let keys = master_keys(config, DevKey::UseIfPresent)?;
            let (project, key) = create_project_with_key(&pool, name, &keys).await?;
            json!({"project_id": project.id, "api_key": key.secret.expose_secret()})
        }
        AdminCommand::CreateKey { project } => {
            let project_id: ProjectId = project.parse().context("--project: not a project id")?;
            let client = pool.get().await?;
            get_project(&client, project_id)
                .await?
                .ok_or_else(|| anyhow!("--project: no such project"))?;
            let key = generate_api_key();
            insert_api_key(&client, project_id, &key).await?;
            json!({"project_id": project_id, "key_id": key.id, "api_key": key.secret.expose_secret()})
        }
        AdminCommand::RevokeKey { key } => {
            let key_id: ApiKeyId = key.parse().context("--key: not a key id")?;
            let client = pool.get().await?;
            if !revoke_api_key(&client, None, key_id).await? {
                return Err(anyhow!("--key: no such unrevoked API key"));
            }
            json!({"key_id": key_id, "revoked": true})
        }
    };
    println!("{output}");
    Ok(())
}
