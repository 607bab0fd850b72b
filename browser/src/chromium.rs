//! One Chromium process tree per run, in a process group of its own that dies
//! with the host: Chromium is started by a small `sh` that leads the group and
//! waits on a pipe from the host; when the pipe closes (the host closed the
//! browser, or died, even by `kill -9`) the shell kills the whole group. No
//! `unsafe` pre-exec hook is needed for it. Whatever a host killed without
//! that chance (a `kill -9` of the whole tree) is found by its profile folder,
//! under the host's own, and killed when the next host starts.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, ChildStdin, Command},
};

/// How long Chromium has to print its DevTools address.
const START_PATIENCE: Duration = Duration::from_secs(30);
/// Tries at removing a profile Chromium may still be writing to (see `remove_profile`).
const REMOVAL_TRIES: usize = 20;

/// The shell that leads the group: Chromium in the background, then a read of
/// the host's pipe, which returns only when the host is gone or done.
const LEADER: &str = r#""$0" "$@" & read _ignored; kill -KILL 0"#;

/// A running Chromium.
pub struct Browser {
    /// The group leader (the shell); its pid is the group's id.
    leader: Child,
    /// The pipe whose closing kills the group.
    lifeline: Option<ChildStdin>,
    /// Where its DevTools protocol listens.
    pub devtools: String,
    /// Its profile, removed when it closes.
    profile: PathBuf,
}

/// Why no browser started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot start {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("Chromium did not start: {0}")]
    NoDevtools(String),
}

/// How to start one.
pub struct Launch<'a> {
    pub executable: &'a str,
    /// Under the host's folder (how leftovers are found).
    pub profile: PathBuf,
    /// The egress proxy every request of the browser goes through.
    pub proxy_port: u16,
}

impl Browser {
    pub async fn launch(launch: Launch<'_>) -> Result<Self, LaunchError> {
        remove_profile(&launch.profile);
        std::fs::create_dir_all(&launch.profile)
            .map_err(|e| LaunchError::Spawn(launch.executable.to_owned(), e))?;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(LEADER)
            .arg(launch.executable)
            .args(arguments(&launch.profile, launch.proxy_port))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut leader = command
            .spawn()
            .map_err(|e| LaunchError::Spawn(launch.executable.to_owned(), e))?;
        let lifeline = leader.stdin.take();
        let stderr = leader.stderr.take();
        let mut browser = Self {
            leader,
            lifeline,
            devtools: String::new(),
            profile: launch.profile,
        };
        let Some(stderr) = stderr else {
            return Err(LaunchError::NoDevtools("no output".into()));
        };
        let mut lines = BufReader::new(stderr).lines();
        let mut said = String::new();
        let found = tokio::time::timeout(START_PATIENCE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    return Some(line[at..].trim().to_owned());
                }
                if said.len() < 2048 {
                    said.push_str(&line);
                    said.push('\n');
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(url)) => browser.devtools = url,
            Ok(None) => return Err(LaunchError::NoDevtools(said)),
            Err(_) => return Err(LaunchError::NoDevtools("no answer in 30 s".into())),
        }
        // Chromium keeps writing to stderr: read on, or it blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(browser)
    }

    /// The process group (every process of this browser).
    pub fn group(&self) -> Option<i32> {
        self.leader.id().and_then(|id| i32::try_from(id).ok())
    }

    /// Kills every process of the browser and removes its profile.
    pub fn close(&mut self) {
        self.lifeline.take();
        if let Some(group) = self.group() {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        let _ = self.leader.start_kill();
        remove_profile(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.close();
    }
}

/// Chromium's flags: headless, its own profile, every request through the
/// egress proxy (loopback too: `<-loopback>` takes it off the bypass list),
/// no QUIC and no WebRTC UDP (neither could go through the proxy), nothing
/// fetched in the background.
fn arguments(profile: &Path, proxy_port: u16) -> Vec<String> {
    let mut flags = vec![
        "--headless=new".to_owned(),
        "--remote-debugging-port=0".to_owned(),
        "--remote-debugging-address=127.0.0.1".to_owned(),
        format!("--user-data-dir={}", profile.display()),
        format!("--proxy-server=http://127.0.0.1:{proxy_port}"),
        "--proxy-bypass-list=<-loopback>".to_owned(),
        "--disable-quic".to_owned(),
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp".to_owned(),
        "--webrtc-ip-handling-policy=disable_non_proxied_udp".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-default-apps".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-extensions".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-gpu".to_owned(),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--metrics-recording-only".to_owned(),
        "--password-store=basic".to_owned(),
        "--window-size=1280,800".to_owned(),
    ];
    // Chromium's sandbox refuses to run as root (a container's default user);
    // run the host as another user to keep it.
    if nix::unistd::geteuid().is_root() {
        flags.push("--no-sandbox".to_owned());
    }
    flags.push("about:blank".to_owned());
    flags
}

/// Kills every process whose command line names a profile under `root`:
/// browsers a host before this one left behind.
pub fn kill_leftovers(root: &Path) -> usize {
    let marker = format!("--user-data-dir={}", root.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.split('\0').any(|arg| arg.starts_with(&marker)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed += 1;
        }
    }
    for profile in std::fs::read_dir(root).into_iter().flatten().flatten() {
        remove_profile(&profile.path());
    }
    let _ = std::fs::remove_dir_all(root);
    killed
}

/// Removes a profile and Chromium's singleton folder. Chromium makes that
/// folder under the system's temporary folder (a socket's path must be
/// short), links it from the profile, and removes it only when it exits
/// cleanly: ours are killed, and each left a folder in `/tmp`. Only a folder
/// of that name right under the temporary folder is removed, wherever the
/// link points.
fn remove_profile(profile: &Path) {
    if let Ok(socket) = std::fs::read_link(profile.join("SingletonSocket"))
        && let Some(folder) = socket.parent()
        && folder.parent() == Some(std::env::temp_dir().as_path())
        && folder
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("org.chromium.Chromium."))
    {
        let _ = std::fs::remove_dir_all(folder);
    }
    // A killed Chromium may write into its profile for a moment more (the
    // signal lands when it is next scheduled), so a removal can meet a file
    // made after its listing: a few tries, 5 ms apart, only while it is there
    // (blocking, as `close` runs in `Drop`; the first try nearly always does it).
    for _ in 0..REMOVAL_TRIES {
        let _ = std::fs::remove_dir_all(profile);
        if !profile.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The memory every process in `group` uses, in bytes: the sum of their
/// proportional set sizes (a shared page counted once over the processes
/// that share it: Chromium's processes share most of their libraries, and
/// summing their resident sizes would count those once per process).
pub fn group_memory(group: i32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // Fields after the command's closing parenthesis: state, ppid, pgrp, …
            let rest = stat.rsplit_once(')')?.1;
            let pgrp: i32 = rest.split_whitespace().nth(2)?.parse().ok()?;
            (pgrp == group).then_some(())?;
            let rollup = std::fs::read_to_string(entry.path().join("smaps_rollup")).ok()?;
            let pss = rollup.lines().find_map(|line| {
                let kb = line.strip_prefix("Pss:")?.trim().strip_suffix("kB")?;
                kb.trim().parse::<u64>().ok()
            })?;
            Some(pss * 1024)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real Chromium in a profile under `root`, and the folder its
    /// singleton socket is in, once Chromium has linked it.
    async fn started(root: &Path) -> (Browser, PathBuf, PathBuf) {
        let profile = root.join("run");
        let executable = std::env::var("STEWRD_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let browser = Browser::launch(Launch {
            executable: &executable,
            profile: profile.clone(),
            proxy_port: 9, // nothing is fetched from about:blank
        })
        .await
        .expect("Chromium starts");
        let linked = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(socket) = std::fs::read_link(profile.join("SingletonSocket")) {
                    return socket;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("Chromium links its singleton socket from the profile");
        let folder = linked.parent().expect("in a folder").to_owned();
        assert!(folder.is_dir(), "{folder:?}");
        (browser, profile, folder)
    }

    fn root(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("stewrd-chromium-{name}-{}", std::process::id()))
    }

    #[tokio::test]
    async fn a_closed_browser_leaves_no_folder_behind() {
        let root = root("closed");
        let (mut browser, profile, singleton) = started(&root).await;
        browser.close();
        assert!(!profile.exists(), "the profile is removed");
        assert!(!singleton.exists(), "Chromium's folder in /tmp is removed");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn a_browser_left_by_a_dead_host_is_killed_and_leaves_no_folder_behind() {
        let root = root("left");
        let (browser, profile, singleton) = started(&root).await;
        let group = browser.group().expect("a group");
        // The host died without closing it: nothing of `browser` runs.
        std::mem::forget(browser);
        assert!(kill_leftovers(&root) > 0, "its processes are found");
        assert!(!profile.exists(), "the profile is removed");
        assert!(!singleton.exists(), "Chromium's folder in /tmp is removed");
        // Whatever of the group could be left, for the next test's sake.
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
}
