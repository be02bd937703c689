//! The ioctls of a TAP descriptor (`/dev/net/tun`), on nix's ioctl macros.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

mod ioctl {
    nix::ioctl_readwrite_bad!(tunsetiff, libc::TUNSETIFF, libc::ifreq);
    nix::ioctl_write_ptr_bad!(tunsetvnethdrsz, libc::TUNSETVNETHDRSZ, libc::c_int);
    nix::ioctl_write_int_bad!(tunsetoffload, libc::TUNSETOFFLOAD);
}

/// `TUNSETIFF`: attaches the descriptor to the interface `ifr` asks for;
/// the kernel writes back the name it used.
pub fn set_iff(fd: BorrowedFd<'_>, ifr: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `ifr`
    // is; the descriptor is open.
    unsafe { ioctl::tunsetiff(fd.as_raw_fd(), ifr) }?;
    Ok(())
}

/// `TUNSETVNETHDRSZ`: the length of the virtio-net header before frames.
pub fn set_vnet_hdr_len(fd: BorrowedFd<'_>, len: libc::c_int) -> io::Result<()> {
    // SAFETY: TUNSETVNETHDRSZ reads one int, which `len` is.
    unsafe { ioctl::tunsetvnethdrsz(fd.as_raw_fd(), &len) }?;
    Ok(())
}

/// `TUNSETOFFLOAD`: the offloads (`TUN_F_*`) the reader accepts; the flags
/// are the ioctl's argument itself.
pub fn set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: no memory is passed; the descriptor is open.
    unsafe { ioctl::tunsetoffload(fd.as_raw_fd(), flags as _) }?;
    Ok(())
}
