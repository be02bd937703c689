//! Socket calls beyond nlproto's transport: the daemon's listening socket
//! (created with no access for others), socket options by level and name,
//! internet socket addresses, and what the kernel still holds for a peer.

use nix::sys::socket::{SockaddrLike, SockaddrStorage};
use overlay_plugin_abi::prop::ip_from_in6;
use std::{
    io,
    net::{IpAddr, SocketAddrV4, SocketAddrV6},
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

/// A non-blocking `SOCK_SEQPACKET` socket listening at `path`, its file
/// created with no access for others (mode 0660 at most, before the caller
/// gives it its group): nobody outside root's group can connect before
/// the group is set.
pub fn listen_private(path: &Path, backlog: i32) -> io::Result<OwnedFd> {
    use nix::sys::stat::{umask, Mode};
    let fd = nlproto::sys::seqpacket_socket(true)?;
    // The umask is the process's: nothing else creates files while the
    // control side starts.
    let old = umask(Mode::from_bits_truncate(0o117));
    let r = nlproto::sys::bind_listen(fd.as_fd(), path, backlog);
    umask(old);
    r.map(|()| fd)
}

/// A new close-on-exec socket of `domain`, `ty` (with `SOCK_NONBLOCK`
/// and other flags as the caller wants) and `protocol`: the one `socket(2)`
/// of the daemon and its packet path.
///
/// On libc, not nix: nix's `socket` takes the protocol only as a variant
/// of its `SockProtocol` enum, which cannot carry the number a plugin
/// declares for its underlay socket (`SocketSpec::protocol`), nor the
/// family and type as plain numbers.
pub fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds `fd` to the internet address `addr`.
pub fn bind(fd: BorrowedFd<'_>, addr: &InetAddr) -> io::Result<()> {
    nix::sys::socket::bind(fd.as_raw_fd(), addr.storage()).map_err(io::Error::from)
}

/// Binds the packet socket `fd` to the interface `ifindex` for frames of
/// every protocol (`ETH_P_ALL`).
///
/// On libc, not nix: nix's `LinkAddr` (its `sockaddr_ll`) can only be read
/// from what the kernel returns, not built from an interface index.
pub fn bind_packet(fd: BorrowedFd<'_>, ifindex: libc::c_int) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a sockaddr_ll of the length passed, read during the
    // call only.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the socket option `name` at `level` to the bytes of `value`: an
/// integer (`&1i32`), a structure (`&packet_mreq`, `&sock_fprog`), or
/// bytes as they come (`&[u8]`, as plugins declare options). The one
/// untyped `setsockopt` of the daemon, for the options nix has no typed
/// [`nix::sys::socket::sockopt`] for (`PACKET_*`, `IPV6_CHECKSUM`,
/// `SO_ATTACH_FILTER`, a plugin's own); the others are set with nix's.
pub fn setsockopt<T: ?Sized>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = std::mem::size_of_val(value);
    // SAFETY: `value` is a live reference to `len` readable bytes for the
    // duration of the call; the kernel only reads them.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            len as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An internet socket address with its exact length, for the calls that
/// take a `sockaddr` pointer and a length (`sendmmsg`'s `msg_name`), and
/// for nix's calls ([`InetAddr::storage`]).
#[derive(Clone, Copy)]
pub struct InetAddr {
    addr: SockaddrStorage,
    len: libc::socklen_t,
}

impl InetAddr {
    /// The socket address of `ip` (an `in6_addr`, IPv4 v4-mapped) and
    /// `port` for a socket of `domain` (`AF_INET` or `AF_INET6`); `None`
    /// when the address is of the other family.
    pub fn new(domain: libc::c_int, ip: [u8; 16], port: u16) -> Option<InetAddr> {
        let (addr, len): (SockaddrStorage, usize) = match (domain, ip_from_in6(ip)) {
            (libc::AF_INET, IpAddr::V4(a)) => (
                SocketAddrV4::new(a, port).into(),
                size_of::<libc::sockaddr_in>(),
            ),
            (libc::AF_INET6, IpAddr::V6(a)) => (
                SocketAddrV6::new(a, port, 0, 0).into(),
                size_of::<libc::sockaddr_in6>(),
            ),
            _ => return None,
        };
        Some(InetAddr {
            addr,
            len: len as libc::socklen_t,
        })
    }

    /// `0.0.0.0:0`, for a slot that is written before it is used.
    pub fn unspecified() -> InetAddr {
        InetAddr {
            addr: SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            len: size_of::<libc::sockaddr_in>() as libc::socklen_t,
        }
    }

    /// A pointer to the `sockaddr`, valid while `self` is.
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        self.addr.as_ptr()
    }

    /// The length of the `sockaddr_in` or `sockaddr_in6`.
    pub fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// Never empty (for clippy's sake: an address always has a length).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// As nix's type, for nix's socket calls.
    pub fn storage(&self) -> &SockaddrStorage {
        &self.addr
    }
}

mod ioctl {
    nix::ioctl_read_bad!(siocoutq, libc::TIOCOUTQ, libc::c_int);
}

/// Bytes sent on a connected socket that the peer has not read yet
/// (`SIOCOUTQ`); 0 when the kernel cannot tell, so that a caller pacing
/// on it never stalls.
pub fn unread_bytes(fd: BorrowedFd<'_>) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int through the valid pointer.
    match unsafe { ioctl::siocoutq(fd.as_raw_fd(), &mut n) } {
        Ok(_) => usize::try_from(n).unwrap_or(0),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{getsockopt, sockopt};
    use std::net::UdpSocket;

    #[test]
    fn options_of_every_shape_set_through_one_call() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = s.as_fd();
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &65536i32).unwrap();
        // The kernel doubles what it is given.
        assert_eq!(getsockopt(&fd, sockopt::RcvBuf).unwrap(), 2 * 65536);
        setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &65536i32.to_ne_bytes()[..],
        )
        .unwrap();
        assert_eq!(getsockopt(&fd, sockopt::SndBuf).unwrap(), 2 * 65536);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 3,
        };
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger).unwrap();
        let e = setsockopt(fd, libc::SOL_SOCKET, 0x7fff, &1i32).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOPROTOOPT));
    }

    #[test]
    fn socket_addresses_follow_the_family() {
        let v4 = overlay_plugin_abi::prop::ip_to_in6("192.0.2.1".parse().unwrap());
        let v6 = overlay_plugin_abi::prop::ip_to_in6("2001:db8::1".parse().unwrap());
        let a = InetAddr::new(libc::AF_INET, v4, 4789).unwrap();
        assert_eq!(a.len() as usize, size_of::<libc::sockaddr_in>());
        let s = a.storage().as_sockaddr_in().unwrap();
        assert_eq!(s.to_string(), "192.0.2.1:4789");
        assert_eq!(a.as_ptr(), a.storage().as_ptr());
        let a = InetAddr::new(libc::AF_INET6, v6, 0).unwrap();
        assert_eq!(a.len() as usize, size_of::<libc::sockaddr_in6>());
        let s = a.storage().as_sockaddr_in6().unwrap();
        assert_eq!(s.to_string(), "[2001:db8::1]:0");
        assert!(InetAddr::new(libc::AF_INET, v6, 1).is_none());
        assert!(InetAddr::new(libc::AF_INET6, v4, 1).is_none());
        // Bound through nix with it.
        let fd = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let lo = overlay_plugin_abi::prop::ip_to_in6("127.0.0.1".parse().unwrap());
        let a = InetAddr::new(libc::AF_INET, lo, 0).unwrap();
        nix::sys::socket::bind(fd.as_raw_fd(), a.storage()).unwrap();
    }

    #[test]
    fn a_private_listener_counts_what_its_peers_left_unread() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("overlayd-sys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.sock");
        let _ = std::fs::remove_file(&path);
        let l = listen_private(&path, 4).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777 & !0o660, 0, "{mode:o}");
        let client = nlproto::sys::connect(&path).unwrap();
        let server = nlproto::sys::accept(l.as_fd(), true).unwrap().unwrap();
        assert_eq!(unread_bytes(server.as_fd()), 0);
        nlproto::sys::send(server.as_fd(), &[0u8; 1000]).unwrap();
        assert!(unread_bytes(server.as_fd()) >= 1000);
        nlproto::sys::recv(client.as_fd()).unwrap();
        assert!(unread_bytes(server.as_fd()) < 256);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
