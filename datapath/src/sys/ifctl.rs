//! Network interfaces addressed by name: their names as the kernel takes
//! them, and the `SIOC[GS]IF*` ioctls (MTU, flags, index, hardware
//! address) the backends need.

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use std::{ffi::CStr, io, os::fd::AsRawFd};

/// Prefixes an OS error with what was being done (the kind is kept).
pub fn with_context(e: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// `name` as the kernel wants it in `ifr_name`: at most `IFNAMSIZ - 1`
/// bytes, NUL-terminated.
pub fn ifname_bytes(name: &str, allow_empty: bool) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}: {why}"),
        )
    };
    if name.len() >= libc::IFNAMSIZ {
        return Err(invalid(&format!(
            "longer than {} bytes",
            libc::IFNAMSIZ - 1
        )));
    }
    if name.is_empty() && !allow_empty {
        return Err(invalid("empty"));
    }
    if name
        .bytes()
        .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
    {
        return Err(invalid("contains NUL, '/' or white space"));
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (d, s) in out.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(out)
}

/// The name held in an `ifr_name` field.
pub fn name_from_ifreq(raw: &[libc::c_char; libc::IFNAMSIZ]) -> String {
    let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
}

/// An interface addressed by name through the `SIOC[GS]IF*` ioctls. Each
/// call opens an `AF_INET` datagram socket for the ioctl (the conventional
/// handle for them) and closes it: a device holds no descriptor for it,
/// which matters with thousands of devices. The socket is created in, and
/// so addresses, the calling thread's network namespace.
pub struct IfCtl {
    name: String,
    raw_name: [libc::c_char; libc::IFNAMSIZ],
}

impl IfCtl {
    /// A handle on interface `name` (which need not exist yet).
    pub fn new(name: &str) -> io::Result<IfCtl> {
        let raw_name = ifname_bytes(name, false)?;
        Ok(IfCtl {
            name: name.to_owned(),
            raw_name,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A request naming the interface, every other field zero.
    pub fn request(&self) -> libc::ifreq {
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        ifr.ifr_name = self.raw_name;
        ifr
    }

    /// Runs one `SIOC*IF*` ioctl on `ifr`; errors name the interface.
    pub fn ioctl(&self, req: libc::c_ulong, what: &str, ifr: &mut libc::ifreq) -> io::Result<()> {
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| with_context(e.into(), "cannot open a control socket"))?;
        // SAFETY: every request passed here reads and/or writes exactly one
        // `struct ifreq`, which `ifr` points to; the socket is open.
        if unsafe { libc::ioctl(sock.as_raw_fd(), req as _, ifr as *mut libc::ifreq) } < 0 {
            let e = io::Error::last_os_error();
            return Err(with_context(e, format!("{what} on {}", self.name)));
        }
        Ok(())
    }

    /// The interface MTU.
    pub fn mtu(&self) -> io::Result<u32> {
        let mut ifr = self.request();
        self.ioctl(libc::SIOCGIFMTU, "SIOCGIFMTU", &mut ifr)?;
        // SAFETY: SIOCGIFMTU filled in the `ifru_mtu` member.
        Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
    }

    /// Sets the interface MTU (the kernel checks the device's range).
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        let mtu = libc::c_int::try_from(mtu).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MTU {mtu} out of range for {}", self.name),
            )
        })?;
        let mut ifr = self.request();
        ifr.ifr_ifru.ifru_mtu = mtu;
        self.ioctl(libc::SIOCSIFMTU, "SIOCSIFMTU", &mut ifr)
    }

    /// Brings the interface up (keeping its other flags).
    pub fn set_up(&self) -> io::Result<()> {
        let mut ifr = self.request();
        self.ioctl(libc::SIOCGIFFLAGS, "SIOCGIFFLAGS", &mut ifr)?;
        // SAFETY: SIOCGIFFLAGS filled in the `ifru_flags` member.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, "SIOCSIFFLAGS", &mut ifr)
    }

    /// The interface index.
    pub fn index(&self) -> io::Result<u32> {
        let mut ifr = self.request();
        self.ioctl(libc::SIOCGIFINDEX, "SIOCGIFINDEX", &mut ifr)?;
        // SAFETY: SIOCGIFINDEX filled in the `ifru_ifindex` member.
        Ok(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32)
    }

    /// The link-layer type (`ARPHRD_*`) and the first six bytes of the
    /// hardware address.
    pub fn hwaddr(&self) -> io::Result<(u16, [u8; 6])> {
        let mut ifr = self.request();
        self.ioctl(libc::SIOCGIFHWADDR, "SIOCGIFHWADDR", &mut ifr)?;
        // SAFETY: SIOCGIFHWADDR filled in the `ifru_hwaddr` member.
        let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *d = *s as u8;
        }
        Ok((sa.sa_family, mac))
    }
}
