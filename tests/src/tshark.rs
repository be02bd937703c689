//! tshark capturing on an interface of a test's namespace, printing chosen
//! fields of each frame into a file: what a test checks on the wire is
//! dissected by Wireshark's dissectors, not by the test's own parsing.

use crate::{net::Netns, TempDir};
use std::{
    fs::File,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running capture.
pub struct Capture {
    child: Child,
    dir: TempDir,
}

impl Capture {
    /// Starts capturing at most `count` frames matching the capture filter
    /// `filter` on `ifname` of `ns` (`any` for every interface) for at most
    /// `secs` seconds, printing `fields` (first occurrence) tab-separated,
    /// one line per frame; `extra` goes to tshark as it is (such as `-d
    /// udp.port==4789,vxlan` to decode a port as a protocol). Returns once
    /// tshark says it captures.
    pub fn start(
        ns: &Netns,
        ifname: &str,
        filter: &str,
        extra: &[&str],
        count: u32,
        secs: u32,
        fields: &[&str],
    ) -> Capture {
        let dir = TempDir::new("tshark");
        let (count, duration) = (count.to_string(), format!("duration:{secs}"));
        let limit = (secs + 10).to_string();
        let mut args = vec![
            "netns",
            "exec",
            &ns.name,
            "timeout",
            &limit,
            "tshark",
            "-n",
            "-i",
            ifname,
            "-c",
            &count,
            "-a",
            &duration,
            "-f",
            filter,
            "-T",
            "fields",
            "-E",
            "separator=/t",
            // Inner and outer IP headers both have ip.src: keep the outer.
            "-E",
            "occurrence=f",
        ];
        args.extend_from_slice(extra);
        for f in fields {
            args.push("-e");
            args.push(f);
        }
        let child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("out")).unwrap())
            .stderr(File::create(dir.join("err")).unwrap())
            .spawn()
            .expect("tshark starts (scripts/install-deps installs it)");
        let mut cap = Capture { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cap.stderr().contains("Capturing on") {
            if Instant::now() > deadline || cap.child.try_wait().unwrap().is_some() {
                panic!("tshark did not start capturing:\n{}", cap.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cap
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("err")).unwrap_or_default()
    }

    /// Waits (bounded by tshark's own limits) for the capture to end and
    /// returns one row of fields per frame.
    pub fn finish(mut self) -> Vec<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "tshark did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = std::fs::read_to_string(self.dir.join("out")).unwrap();
        out.lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// Ends the capture now (SIGINT, which `timeout` passes on to tshark,
    /// which then prints what it has and exits) and returns its rows.
    pub fn stop(self) -> Vec<Vec<String>> {
        // SAFETY: kill on the pid of our own child, not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.finish()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
