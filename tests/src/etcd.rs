//! A real etcd (Debian's `etcd-server`) for the tests of the `etcd` lookup
//! plugin: members started inside a test's network namespace, listening
//! only on addresses of that namespace, with data in a temporary
//! directory, stopped by their own process id.

use crate::{net::Netns, TempDir};
use std::{
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// One etcd member.
pub struct EtcdMember {
    /// Member name.
    pub name: String,
    /// Its client URL (`http://IP:2379`).
    pub client_url: String,
    netns: String,
    args: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
}

/// Client URLs of `members`, comma-separated (for `etcd/endpoints`).
pub fn endpoints(members: &[EtcdMember]) -> String {
    members
        .iter()
        .map(|m| m.client_url.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl EtcdMember {
    /// A single-member cluster on `ip` in `ns`, started and healthy.
    pub fn single(ns: &Netns, ip: &str) -> EtcdMember {
        let mut v = Self::cluster(ns, &[ip]);
        v.pop().expect("one member")
    }

    /// A cluster of one member per address of `ips`, all in `ns`, started
    /// together and healthy.
    pub fn cluster(ns: &Netns, ips: &[&str]) -> Vec<EtcdMember> {
        let initial: Vec<String> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| format!("m{i}=http://{ip}:2380"))
            .collect();
        let initial = initial.join(",");
        let mut members: Vec<EtcdMember> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let dir = TempDir::new(&format!("etcd-m{i}"));
                let name = format!("m{i}");
                let client_url = format!("http://{ip}:2379");
                let peer_url = format!("http://{ip}:2380");
                let args = vec![
                    "--name".into(),
                    name.clone(),
                    "--data-dir".into(),
                    dir.join("data").display().to_string(),
                    "--listen-client-urls".into(),
                    client_url.clone(),
                    "--advertise-client-urls".into(),
                    client_url.clone(),
                    "--listen-peer-urls".into(),
                    peer_url.clone(),
                    "--initial-advertise-peer-urls".into(),
                    peer_url,
                    "--initial-cluster".into(),
                    initial.clone(),
                    "--initial-cluster-state".into(),
                    "new".into(),
                    "--initial-cluster-token".into(),
                    format!("ovt-{}", std::process::id()),
                    // Short elections, so that losing a member is noticed
                    // quickly.
                    "--heartbeat-interval".into(),
                    "100".into(),
                    "--election-timeout".into(),
                    "1000".into(),
                ];
                EtcdMember {
                    name,
                    client_url,
                    netns: ns.name.clone(),
                    args,
                    dir,
                    child: None,
                }
            })
            .collect();
        for m in &mut members {
            m.spawn();
        }
        for m in &members {
            m.wait_healthy();
        }
        members
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("etcd.log")).expect("etcd log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "etcd"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("etcd starts (scripts/install-deps installs etcd-server)");
        self.child = Some(child);
    }

    /// Waits (at most 30 s) until the member answers a health check.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.ctl(&["endpoint", "health"]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd {} did not become healthy in 30 s:\n{}\n{}",
                self.name,
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `etcdctl --endpoints <this member> args...` in the namespace.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns, "etcdctl"])
            .args(["--dial-timeout", "2s", "--command-timeout", "3s"])
            .arg(format!("--endpoints={}", self.client_url))
            .args(args)
            .env("ETCDCTL_API", "3")
            .stdin(Stdio::null())
            .output()
            .expect("etcdctl runs (scripts/install-deps installs etcd-client)")
    }

    /// Runs etcdctl, panicking when it fails; returns its stdout.
    #[track_caller]
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "etcdctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes every `(key, value)` of `entries`, in transactions of at
    /// most 100 puts (etcd's default limit is 128 operations). Values must
    /// hold no whitespace (compact JSON does not).
    pub fn put_many(&self, entries: &[(String, String)]) {
        use std::io::Write as _;
        for chunk in entries.chunks(100) {
            // No comparisons, the puts on success, nothing on failure.
            let mut script = String::from("\n");
            for (k, v) in chunk {
                assert!(
                    !k.contains(char::is_whitespace) && !v.contains(char::is_whitespace),
                    "put_many: {k} {v} has whitespace"
                );
                script.push_str(&format!("put {k} {v}\n"));
            }
            script.push_str("\n\n");
            let mut child = Command::new("ip")
                .args(["netns", "exec", &self.netns, "etcdctl"])
                .args(["--dial-timeout", "2s", "--command-timeout", "10s"])
                .arg(format!("--endpoints={}", self.client_url))
                .arg("txn")
                .env("ETCDCTL_API", "3")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("etcdctl runs (scripts/install-deps installs etcd-client)");
            child
                .stdin
                .take()
                .expect("etcdctl's stdin")
                .write_all(script.as_bytes())
                .expect("etcdctl reads its transaction");
            let out = child.wait_with_output().expect("etcdctl ends");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.starts_with("SUCCESS"),
                "etcdctl txn: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The value of `key`, when it exists.
    #[track_caller]
    pub fn get(&self, key: &str) -> Option<String> {
        self.try_get(key).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The value of `key`, when it exists, or etcdctl's error (a cluster
    /// electing a new leader answers no linearizable read for a while).
    pub fn try_get(&self, key: &str) -> Result<Option<String>, String> {
        let out = self.ctl(&["get", "--print-value-only", key]);
        if !out.status.success() {
            return Err(format!(
                "etcdctl get --print-value-only {key}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let out = String::from_utf8_lossy(&out.stdout);
        let v = out.trim_end_matches('\n');
        Ok((!v.is_empty()).then(|| v.to_string()))
    }

    /// Stops the member: SIGKILL to its own pid, then reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the member again on its data (after [`EtcdMember::kill`]) and
    /// waits until it is healthy.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "etcd {} is running", self.name);
        if let Some(i) = self
            .args
            .iter()
            .position(|a| a == "--initial-cluster-state")
        {
            self.args[i + 1] = "existing".into();
        }
        self.spawn();
        self.wait_healthy();
    }

    /// What the member logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.kill();
    }
}
