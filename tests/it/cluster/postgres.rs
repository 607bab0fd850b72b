//! A Postgres primary and its streaming standby of the test's own: Debian's
//! server binaries run as the `postgres` user on their own ports and data
//! directories, the standby made by `pg_basebackup` and synchronous, so a
//! commit (and so a 202) is on both before it returns.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    helpers::{PATIENCE, connect_db, wait_for},
    tls::support::{TempDir, free_port},
};

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PgPair {
    pub primary_port: u16,
    pub standby_port: u16,
    primary: PathBuf,
    standby: PathBuf,
    dir: TempDir,
}

/// Runs a server binary as `postgres` (the server refuses to run as root).
fn as_postgres(program: &str, args: &[&str]) -> String {
    let binary = Path::new(BIN).join(program);
    assert!(
        binary.exists(),
        "{} is missing: the PostgreSQL 15 server package is not installed",
        binary.display()
    );
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(&binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("blocking work")
}

fn path(dir: &Path) -> String {
    dir.display().to_string()
}

impl PgPair {
    /// Starts the primary, clones it into a synchronous standby and waits until
    /// the primary reports the standby in sync.
    pub async fn start() -> Self {
        let dir = TempDir::new();
        // The server runs as `postgres`, who must own its directories.
        chown_postgres(&dir.0);
        let primary = dir.0.join("primary");
        let standby = dir.0.join("standby");
        let (primary_port, standby_port) = (free_port(), free_port());
        let socket_dir = path(&dir.0);
        {
            let primary = path(&primary);
            blocking(move || {
                as_postgres(
                    "initdb",
                    &[
                        "-D",
                        &primary,
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "--no-sync",
                    ],
                );
            })
            .await;
        }
        std::fs::write(
            primary.join("postgresql.auto.conf"),
            format!(
                "port = {primary_port}\n\
                 listen_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{socket_dir}'\n\
                 shared_buffers = '32MB'\n\
                 max_connections = 60\n\
                 wal_level = replica\n\
                 max_wal_senders = 4\n\
                 synchronous_standby_names = '*'\n"
            ),
        )
        .expect("primary settings");
        let pair = Self {
            primary_port,
            standby_port,
            primary,
            standby,
            dir,
        };
        pair.pg_ctl_start(&pair.primary).await;
        {
            let standby = path(&pair.standby);
            let port = primary_port.to_string();
            blocking(move || {
                as_postgres(
                    "pg_basebackup",
                    &[
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-U",
                        "postgres",
                        "-D",
                        &standby,
                        "-R",
                        "-X",
                        "stream",
                    ],
                );
            })
            .await;
        }
        // The copy has the primary's settings and `primary_conninfo` (from -R);
        // it listens on its own port and, once promoted, waits for no standby.
        let auto = pair.standby.join("postgresql.auto.conf");
        let mut settings = std::fs::read_to_string(&auto).expect("standby settings");
        settings.push_str(&format!(
            "port = {standby_port}\nsynchronous_standby_names = ''\n"
        ));
        std::fs::write(&auto, settings).expect("standby settings");
        pair.pg_ctl_start(&pair.standby).await;
        let url = pair.admin_url(primary_port);
        let in_sync = wait_for(PATIENCE, || async {
            let db = connect_db(&url).await;
            let row = db
                .query_opt(
                    "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
                    &[],
                )
                .await
                .ok()?;
            row.map(|_| ())
        })
        .await;
        assert!(in_sync.is_some(), "the standby never became synchronous");
        pair
    }

    async fn pg_ctl_start(&self, data: &Path) {
        let data_dir = path(data);
        let log = path(&self.dir.0.join(format!(
            "{}.log",
            data.file_name().and_then(|n| n.to_str()).unwrap_or("pg")
        )));
        blocking(move || {
            as_postgres("pg_ctl", &["-D", &data_dir, "-l", &log, "-w", "start"]);
        })
        .await;
    }

    fn admin_url(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    /// Makes `DATABASE_URL` for a database name: both hosts, the writable one
    /// chosen.
    pub fn database_url(&self) -> crate::helpers::DatabaseUrl {
        let hosts = format!(
            "127.0.0.1:{},127.0.0.1:{}",
            self.primary_port, self.standby_port
        );
        Box::new(move |name| {
            format!("postgres://postgres@{hosts}/{name}?target_session_attrs=read-write")
        })
    }

    /// The primary goes away at once, as a crashed machine would (no shutdown
    /// checkpoint, connections cut).
    pub async fn crash_primary(&self) {
        let data_dir = path(&self.primary);
        blocking(move || {
            as_postgres(
                "pg_ctl",
                &["-D", &data_dir, "-m", "immediate", "-w", "stop"],
            );
        })
        .await;
    }

    /// Promotes the standby to primary and waits until it takes writes.
    pub async fn promote_standby(&self) {
        let data_dir = path(&self.standby);
        blocking(move || {
            as_postgres("pg_ctl", &["-D", &data_dir, "-w", "promote"]);
        })
        .await;
    }

    /// Runs `sql` on the primary's `postgres` database.
    pub async fn on_primary(&self, sql: &str) {
        connect_db(&self.admin_url(self.primary_port))
            .await
            .batch_execute(sql)
            .await
            .expect("primary statement");
    }
}

fn chown_postgres(dir: &Path) {
    let status = Command::new("chown")
        .args(["postgres:postgres", &path(dir)])
        .status()
        .expect("chown");
    assert!(
        status.success(),
        "cannot give {} to postgres",
        dir.display()
    );
}

impl Drop for PgPair {
    fn drop(&mut self) {
        for data in [&self.primary, &self.standby] {
            if data.join("postmaster.pid").exists() {
                let _ = Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(Path::new(BIN).join("pg_ctl"))
                    .args(["-D", &path(data), "-m", "immediate", "-w", "stop"])
                    .output();
            }
        }
        // TempDir removes the data once the servers are gone.
    }
}
