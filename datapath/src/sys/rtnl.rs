//! The two route-netlink requests the packet path makes: put an interface
//! into an interface group, and delete every interface of a group at once.
//!
//! Deleting interfaces one by one costs the kernel a synchronisation of
//! the network stack each (about 23 ms on this machine kind: closing 1,000
//! TAP descriptors took 23 s), while deleting a group unregisters them as
//! one batch (1,000 in about half a second). The daemon puts its TAPs in a
//! group of its own so that a stop with thousands of devices is quick.

use nix::sys::socket::{
    recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
};
use std::{io, os::fd::AsRawFd};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const IFLA_GROUP: u16 = 27;

/// The message: netlink header, `ifinfomsg`, one `IFLA_GROUP` attribute.
fn message(kind: u16, index: u32, group: u32) -> [u8; 40] {
    let mut m = [0u8; 40];
    m[0..4].copy_from_slice(&40u32.to_ne_bytes());
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // ifinfomsg: family AF_UNSPEC, type 0, index, flags 0, change 0.
    m[20..24].copy_from_slice(&index.to_ne_bytes());
    m[32..34].copy_from_slice(&8u16.to_ne_bytes());
    m[34..36].copy_from_slice(&IFLA_GROUP.to_ne_bytes());
    m[36..40].copy_from_slice(&group.to_ne_bytes());
    m
}

/// Sends one request and reads its acknowledgment.
fn request(kind: u16, index: u32, group: u32) -> io::Result<()> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    send(
        sock.as_raw_fd(),
        &message(kind, index, group),
        MsgFlags::empty(),
    )?;
    let mut buf = [0u8; 1024];
    let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    if n < 20 || u16::from_ne_bytes([buf[4], buf[5]]) != NLMSG_ERROR {
        return Err(io::Error::other(
            "route netlink answered with something other than an acknowledgment",
        ));
    }
    let errno = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if errno != 0 {
        return Err(io::Error::from_raw_os_error(-errno));
    }
    Ok(())
}

/// Puts interface `index` into interface group `group`.
pub fn set_group(index: u32, group: u32) -> io::Result<()> {
    request(RTM_NEWLINK, index, group)
}

/// Deletes every interface of group `group` (of the calling thread's
/// network namespace) in one batch. `ENODEV` when the group has none.
pub fn delete_group(group: u32) -> io::Result<()> {
    request(RTM_DELLINK, 0, group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{ifctl::IfCtl, testnet};

    #[test]
    fn messages_are_laid_out_as_the_kernel_reads_them() {
        let m = message(RTM_DELLINK, 0, 0x1234);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 17);
        assert_eq!(u16::from_ne_bytes(m[34..36].try_into().unwrap()), 27);
        assert_eq!(u32::from_ne_bytes(m[36..40].try_into().unwrap()), 0x1234);
    }

    #[test]
    fn a_group_is_deleted_at_once() {
        testnet::run("a_group_is_deleted_at_once", |ns| {
            for name in ["grp0", "grp1", "other0"] {
                ns.ip(&["tuntap", "add", "dev", name, "mode", "tap"]);
            }
            for name in ["grp0", "grp1"] {
                let index = IfCtl::new(name).unwrap().index().unwrap();
                set_group(index, 4242).unwrap();
            }
            delete_group(4242).unwrap();
            for name in ["grp0", "grp1"] {
                assert!(IfCtl::new(name).unwrap().index().is_err(), "{name} remains");
            }
            // Other groups are left alone; an empty group is ENODEV.
            assert!(IfCtl::new("other0").unwrap().index().is_ok());
            let e = delete_group(4242).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
        });
    }
}
