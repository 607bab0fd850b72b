//! A RabbitMQ cluster of the test's own: nodes on their own ports and names,
//! one Erlang cookie, joined with `rabbitmqctl join_cluster` as an operator
//! would. Every node is killed (its process group) when the cluster is dropped.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command},
};

use serde_json::Value;

use crate::{
    helpers::unique_name,
    tls::support::{TempDir, free_port, spawn_rabbitmq_node, wait_node_listening},
};

/// One node: where it listens and keeps its data, and its process while up.
struct Node {
    name: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

pub struct RabbitCluster {
    nodes: Vec<Node>,
    /// HOME of every node and of `rabbitmqctl`: holds the shared cookie.
    dir: TempDir,
}

impl RabbitCluster {
    /// Starts `size` nodes and joins the others to the first.
    pub async fn start(size: usize) -> Self {
        let dir = TempDir::new();
        let cookie = dir.0.join(".erlang.cookie");
        std::fs::write(&cookie, unique_name()).expect("write cookie");
        let mut permissions = std::fs::metadata(&cookie).expect("cookie").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o400);
        std::fs::set_permissions(&cookie, permissions).expect("cookie mode");
        let tag = &unique_name()[2..12];
        let nodes = (1..=size)
            .map(|i| {
                let node_dir = dir.0.join(format!("n{i}"));
                std::fs::create_dir_all(&node_dir).expect("node dir");
                Node {
                    name: format!("stewrd_{tag}_{i}@localhost"),
                    port: free_port(),
                    dist_port: free_port(),
                    dir: node_dir,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Self { nodes, dir };
        for i in 0..size {
            cluster.spawn(i);
        }
        for i in 0..size {
            cluster.wait_listening(i).await;
        }
        let first = cluster.nodes[0].name.clone();
        for i in 1..size {
            cluster.ctl(i, &["stop_app"]).await;
            cluster.ctl(i, &["join_cluster", &first]).await;
            cluster.ctl(i, &["start_app"]).await;
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let config = format!(
            "listeners.tcp.default = 127.0.0.1:{}\nloopback_users = none\n",
            node.port
        );
        node.child = Some(spawn_rabbitmq_node(
            &node.name,
            node.port,
            node.dist_port,
            &config,
            &node.dir,
            &self.dir.0,
        ));
    }

    async fn wait_listening(&self, i: usize) {
        let node = &self.nodes[i];
        wait_node_listening(&node.name, node.port, &node.dir).await;
    }

    /// `AMQP_URL` naming every node, the first first.
    pub fn amqp_url(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("amqp://guest:guest@127.0.0.1:{}/%2f", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Which index is the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// Runs `rabbitmqctl` against node `i` (off the runtime: it takes seconds);
    /// panics with its output when it fails.
    pub async fn ctl(&self, i: usize, args: &[&str]) -> String {
        let home = self.dir.0.clone();
        let mut full = vec!["-n".to_owned(), self.nodes[i].name.clone()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        let output = tokio::task::spawn_blocking(move || {
            Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
                .args(&full)
                .env("HOME", home)
                .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                .output()
                .expect("run rabbitmqctl")
        })
        .await
        .expect("rabbitmqctl finished");
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} on node {i} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The leader and members of `queue`, asked of node `i`.
    pub async fn queue_members(&self, i: usize, queue: &str) -> (String, Vec<String>) {
        let text = self
            .ctl(
                i,
                &[
                    "list_queues",
                    "name",
                    "leader",
                    "members",
                    "--formatter",
                    "json",
                ],
            )
            .await;
        let queues: Vec<Value> = serde_json::from_str(&text).expect("list_queues JSON");
        let found = queues
            .iter()
            .find(|q| q["name"] == queue)
            .unwrap_or_else(|| panic!("no queue {queue} in {text}"));
        let members = found["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (
            found["leader"].as_str().unwrap_or_default().to_owned(),
            members,
        )
    }

    /// How many client connections each node holds, asked of node `i`.
    pub async fn connections_by_node(&self, i: usize) -> HashMap<String, usize> {
        let text = self
            .ctl(i, &["list_connections", "port", "--formatter", "json"])
            .await;
        let connections: Vec<Value> = serde_json::from_str(&text).expect("connections JSON");
        let mut counts = HashMap::new();
        // The listening port a connection reached says which node holds it.
        for connection in connections {
            let port = connection["port"].as_u64();
            if let Some(node) = self.nodes.iter().find(|n| Some(u64::from(n.port)) == port) {
                *counts.entry(node.name.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// SIGKILL to node `i`'s process group: the machine went away.
    pub async fn kill(&mut self, i: usize) {
        if let Some(child) = self.nodes[i].child.take() {
            kill_group(child).await;
        }
    }

    /// Starts node `i` again on its own data; it rejoins the cluster by itself.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_listening(i).await;
    }
}

async fn kill_group(mut child: Child) {
    let group = format!("-{}", child.id());
    tokio::task::spawn_blocking(move || {
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = child.wait();
    })
    .await
    .expect("node killed");
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let group = format!("-{}", child.id());
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                let _ = child.wait();
            }
        }
    }
}
