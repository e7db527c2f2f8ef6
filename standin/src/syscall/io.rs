//! The three console descriptors: 0 reads as end of file, 1 and 2 write to COM1. There is no
//! file system: every other descriptor is EBADF.

use standin_core::linux::errno::{EBADF, EFAULT, EINVAL, ENOTTY, ESPIPE};
use standin_core::linux::fcntl::{F_GETFD, F_GETFL, F_SETFD, F_SETFL, O_RDWR};

use super::SysResult;
use crate::{console, user};

const STDIN: u64 = 0;
const STDOUT: u64 = 1;
const STDERR: u64 = 2;
/// `struct pollfd` (int fd; short events; short revents).
const POLLFD_SIZE: u64 = 8;
/// poll(2) bits: readable, writable, invalid descriptor.
const POLLIN: u16 = 0x1;
const POLLOUT: u16 = 0x4;
const POLLNVAL: u16 = 0x20;
/// Most iovecs taken in one call (Linux's UIO_MAXIOV).
const IOV_MAX: u64 = 1024;
/// Most pollfds taken in one call.
const POLL_MAX: u64 = 1024;

fn is_console(fd: u64) -> bool {
    fd <= STDERR
}

/// Writes `len` bytes from the program's `buf` to COM1, in pieces.
fn write_console(buf: u64, len: u64) -> SysResult {
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        user::copy_from(buf + done, &mut chunk[..n])?;
        console::write_bytes(&chunk[..n]);
        done += n as u64;
    }
    Ok(len)
}

/// write(fd, buf, count).
pub fn write(fd: u64, buf: u64, len: u64) -> SysResult {
    match fd {
        STDOUT | STDERR => write_console(buf, len),
        _ => Err(EBADF),
    }
}

/// writev(fd, iov, iovcnt).
pub fn writev(fd: u64, iov: u64, count: u64) -> SysResult {
    if fd != STDOUT && fd != STDERR {
        return Err(EBADF);
    }
    if count > IOV_MAX {
        return Err(EINVAL);
    }
    let mut total = 0u64;
    for i in 0..count {
        let base = user::read_u64(iov + 16 * i)?;
        let len = user::read_u64(iov + 16 * i + 8)?;
        total = total.checked_add(len).ok_or(EINVAL)?;
        write_console(base, len)?;
    }
    Ok(total)
}

/// read(fd, buf, count): standard input is at its end.
pub fn read(fd: u64, _buf: u64, _len: u64) -> SysResult {
    match fd {
        STDIN => Ok(0),
        _ => Err(EBADF),
    }
}

/// readv(fd, iov, iovcnt): as read.
pub fn readv(fd: u64, _iov: u64, _count: u64) -> SysResult {
    read(fd, 0, 0)
}

/// close(fd): the console descriptors stay (closing them is allowed and harmless).
pub fn close(fd: u64) -> SysResult {
    if is_console(fd) {
        Ok(0)
    } else {
        Err(EBADF)
    }
}

/// lseek(fd, ...): the console cannot seek.
pub fn lseek(fd: u64) -> SysResult {
    if is_console(fd) {
        Err(ESPIPE)
    } else {
        Err(EBADF)
    }
}

/// poll(fds, nfds, timeout) and ppoll: never waits. Standard input is readable (at its end),
/// standard output and error writable, other descriptors invalid; negative ones ignored.
/// (Rust's std polls 0..2 at start to see that they are open.)
pub fn poll(fds: u64, count: u64) -> SysResult {
    if count > POLL_MAX {
        return Err(EINVAL);
    }
    let mut ready = 0;
    for i in 0..count {
        let at = fds + POLLFD_SIZE * i;
        let mut entry = [0u8; POLLFD_SIZE as usize];
        user::copy_from(at, &mut entry)?;
        let fd = i32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        let events = u16::from_le_bytes([entry[4], entry[5]]);
        let revents = match fd {
            f if f < 0 => 0,
            0 => events & POLLIN,
            1 | 2 => events & POLLOUT,
            _ => POLLNVAL,
        };
        user::copy_to(at + 6, &revents.to_le_bytes()).map_err(|_| EFAULT)?;
        ready += u64::from(revents != 0);
    }
    Ok(ready)
}

/// fcntl(fd, cmd, ...): descriptor and status flags of the console descriptors.
pub fn fcntl(fd: u64, cmd: u64) -> SysResult {
    if !is_console(fd) {
        return Err(EBADF);
    }
    match cmd {
        F_GETFD => Ok(0),
        F_GETFL => Ok(O_RDWR),
        F_SETFD | F_SETFL => Ok(0),
        _ => Err(EINVAL),
    }
}

/// ioctl(fd, request, ...): the console is no terminal (TIOCGWINSZ and all else: ENOTTY).
pub fn ioctl(fd: u64, _request: u64) -> SysResult {
    if is_console(fd) {
        Err(ENOTTY)
    } else {
        Err(EBADF)
    }
}
