//! Who is at the other end of a control connection, and what it may do.
//!
//! A connection is privileged when its peer is uid 0 or holds
//! `CAP_NET_ADMIN` in its effective set; every other peer may run only the
//! commands the family tables mark read-only. The decision is made once, at
//! accept, from the credentials the kernel recorded at `connect()`.
//!
//! # Reading the capability without a race
//!
//! `SO_PEERCRED` gives the peer's uid and pid, but not its capabilities;
//! those are only in `/proc/<pid>/status`. Reading that file by pid alone
//! races with pid reuse: the connecting process could exit (handing the
//! socket to a child) and its pid be recycled by a privileged process
//! before the daemon reads the file. So the daemon asks for the peer's
//! pidfd (`SO_PEERPIDFD`, Linux 6.5), which pins the very process that
//! connected: it reads the pid that pidfd stands for (`/proc/self/fdinfo`),
//! then the status file, then the pidfd's pid once more. A pid is not
//! reused while its process has not been reaped, and the pidfd reports
//! no pid once it has been, so when both readings name the same live pid
//! the status read belonged to the connecting process.
//!
//! On kernels without `SO_PEERPIDFD` the daemon falls back to the pid of
//! `SO_PEERCRED` and accepts the capability only when the status file's
//! effective uid is the one the kernel recorded. The race left is
//! narrow (connect to accept, a few microseconds on an idle daemon) and
//! needs a privileged process of the same uid to take over the pid;
//! a peer that can arrange that already holds the privilege it would gain.
//!
//! Like a netlink socket, the privilege belongs to the connection: a
//! privileged process that passes its connected socket to another process
//! passes its privilege with it, and dropping capabilities after connecting
//! does not revoke it.

use nix::sys::socket::{getsockopt, sockopt};
use nlproto::spec::Privilege;
use std::os::fd::{AsFd, AsRawFd};

/// `CAP_NET_ADMIN`'s bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;

/// What the kernel says of a connection's peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's process id at connect time (0 when unknown).
    pub pid: i32,
    /// Its effective uid.
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
    /// What it may run.
    pub access: Privilege,
}

/// The credentials and privilege of the peer of a connected socket. A
/// peer whose credentials cannot be read gets read-only access.
pub fn peer_cred(fd: impl AsFd) -> PeerCred {
    let Ok(cred) = getsockopt(&fd, sockopt::PeerCredentials) else {
        return PeerCred {
            pid: 0,
            uid: u32::MAX,
            gid: u32::MAX,
            access: Privilege::ReadOnly,
        };
    };
    let (pid, uid, gid) = (cred.pid(), cred.uid(), cred.gid());
    let admin = uid == 0 || has_net_admin(&fd, pid, uid);
    PeerCred {
        pid,
        uid,
        gid,
        access: if admin {
            Privilege::Admin
        } else {
            Privilege::ReadOnly
        },
    }
}

fn has_net_admin(fd: &impl AsFd, cred_pid: i32, uid: u32) -> bool {
    match getsockopt(fd, sockopt::PeerPidfd) {
        Ok(pidfd) => {
            let Some(pid) = pidfd_pid(pidfd.as_raw_fd()) else {
                return false;
            };
            let caps = status_field(pid, "CapEff:").and_then(|v| u64::from_str_radix(&v, 16).ok());
            // Still the same, unreaped process: the status was its own.
            pidfd_pid(pidfd.as_raw_fd()) == Some(pid)
                && caps.is_some_and(|c| c & (1 << CAP_NET_ADMIN) != 0)
        }
        Err(_) if cred_pid > 0 => {
            let caps =
                status_field(cred_pid, "CapEff:").and_then(|v| u64::from_str_radix(&v, 16).ok());
            let euid = status_field(cred_pid, "Uid:")
                .and_then(|v| v.split_whitespace().nth(1).and_then(|e| e.parse().ok()));
            euid == Some(uid) && caps.is_some_and(|c| c & (1 << CAP_NET_ADMIN) != 0)
        }
        Err(_) => false,
    }
}

/// The pid a pidfd stands for; `None` once the process has been reaped.
fn pidfd_pid(pidfd: i32) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{pidfd}")).ok()?;
    let pid: i32 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()?;
    (pid > 0).then_some(pid)
}

/// The value of a `/proc/<pid>/status` line, without its label.
fn status_field(pid: i32, label: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socketpair_peer_is_this_process() {
        let (a, _b) = nlproto::sys::seqpacket_pair().unwrap();
        let cred = peer_cred(&a);
        assert_eq!(cred.pid, std::process::id() as i32);
        let euid = nix::unistd::geteuid().as_raw();
        assert_eq!(cred.uid, euid);
        let caps = status_field(std::process::id() as i32, "CapEff:")
            .and_then(|v| u64::from_str_radix(&v, 16).ok())
            .unwrap();
        let expect_admin = euid == 0 || caps & (1 << CAP_NET_ADMIN) != 0;
        assert_eq!(cred.access == Privilege::Admin, expect_admin);
        // Through the pidfd as well, whoever we are.
        assert_eq!(
            has_net_admin(&a, cred.pid, cred.uid),
            caps & (1 << CAP_NET_ADMIN) != 0
        );
    }
}
