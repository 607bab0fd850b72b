//! Controlling the machine's RabbitMQ and Postgres for outage tests. Every change
//! comes with a guard that undoes it on drop, even when the test fails.

use std::{
    process::Command,
    time::{Duration, Instant},
};

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn wait_port(port: u16, open: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while port_open(port) != open {
        assert!(Instant::now() < deadline, "port {port} never became {open}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// RabbitMQ stopped (`rabbitmqctl stop_app`) until dropped.
pub struct BrokerStopped {
    started: bool,
}

impl BrokerStopped {
    pub fn new() -> Self {
        run("rabbitmqctl", &["stop_app"]);
        wait_port(5672, false);
        Self { started: false }
    }

    /// Starts the broker again and waits until it accepts connections.
    pub fn start(mut self) {
        self.start_now();
    }

    fn start_now(&mut self) {
        if !self.started {
            run("rabbitmqctl", &["start_app"]);
            run("rabbitmqctl", &["await_startup"]);
            wait_port(5672, true);
            self.started = true;
        }
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        self.start_now();
    }
}

/// Restarts Postgres (fast shutdown: every connection is cut).
pub fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .max()
        .expect("a Postgres cluster");
    run(
        "pg_ctlcluster",
        &[
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "-m",
            "fast",
        ],
    );
    wait_port(5432, true);
}

/// A broker-wide RabbitMQ setting changed until dropped (restored to its value).
pub struct BrokerSetting {
    name: &'static str,
    previous: String,
}

impl BrokerSetting {
    pub fn set(name: &'static str, value: u64) -> Self {
        let previous = run(
            "rabbitmqctl",
            &["eval", &format!("application:get_env(rabbit, {name}).")],
        )
        .trim()
        .to_owned();
        run(
            "rabbitmqctl",
            &[
                "eval",
                &format!("application:set_env(rabbit, {name}, {value})."),
            ],
        );
        Self { name, previous }
    }
}

impl Drop for BrokerSetting {
    fn drop(&mut self) {
        let expression = match self
            .previous
            .strip_prefix("{ok,")
            .and_then(|v| v.strip_suffix('}'))
        {
            Some(value) => format!("application:set_env(rabbit, {}, {value}).", self.name),
            None => format!("application:unset_env(rabbit, {}).", self.name),
        };
        let _ = Command::new("rabbitmqctl")
            .args(["eval", &expression])
            .output();
    }
}
