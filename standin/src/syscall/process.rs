//! The process as Linux would describe it: pid 1, root, one CPU, no signals delivered.
//! exit and exit_group end the run; a signal sent to itself (abort() raising SIGABRT, a
//! panic under panic=abort) ends it as "killed".

use standin_core::linux::arch_prctl::{ARCH_GET_FS, ARCH_GET_GS, ARCH_SET_FS, ARCH_SET_GS};
use standin_core::linux::errno::{EAGAIN, EINVAL, ENOSYS, EPERM, ESRCH};
use standin_core::linux::futex::{
    FUTEX_CMD_MASK, FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAKE, FUTEX_WAKE_BITSET,
};
use standin_core::linux::{RLIMIT_STACK, RLIM_INFINITY, SS_DISABLE};
use x86_64::registers::model_specific::FsBase;
use x86_64::VirtAddr;

use super::SysResult;
use crate::{finish, percpu, program, random, user};

/// The program's process and thread id.
pub const PID: u64 = 1;
/// Signals are 1..=64.
const MAX_SIGNAL: u64 = 64;
/// `struct k_sigaction` as the kernel takes it: handler, flags, restorer, mask (8 bytes).
const K_SIGACTION_WORDS: usize = 4;
/// `struct utsname`: six fields of 65 bytes.
const UTS_FIELD: usize = 65;

/// exit(status) / exit_group(status).
pub fn exit(status: u64) -> SysResult {
    finish::program_exited(status & 0xFF)
}

/// kill/tkill/tgkill(target, signal): signal 0 probes; a real signal to itself ends the run.
pub fn kill(target: u64, signal: u64) -> SysResult {
    let to_self = target == PID || target == 0 || target as i64 == -1;
    if !to_self {
        return Err(ESRCH);
    }
    match signal {
        0 => Ok(0),
        1..=MAX_SIGNAL => finish::program_killed(signal),
        _ => Err(EINVAL),
    }
}

/// arch_prctl(code, addr): FS base is the program's (its TLS); GS base is the host's per-CPU
/// block and stays so.
pub fn arch_prctl(code: u64, addr: u64) -> SysResult {
    match code {
        ARCH_SET_FS => {
            let base = VirtAddr::try_new(addr).map_err(|_| EPERM)?;
            FsBase::write(base);
            Ok(0)
        }
        ARCH_GET_FS => {
            user::write_words(addr, &[FsBase::read().as_u64()])?;
            Ok(0)
        }
        ARCH_SET_GS => {
            crate::println!(
                "standin: arch_prctl(ARCH_SET_GS) refused: GS base is the host's per-CPU block"
            );
            Err(EPERM)
        }
        ARCH_GET_GS => {
            user::write_words(addr, &[percpu::address()])?;
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

/// rt_sigaction(signal, act, oldact): accepted and forgotten (no signal is ever delivered);
/// the old action reads as SIG_DFL.
pub fn rt_sigaction(signal: u64, _act: u64, old: u64) -> SysResult {
    if signal == 0 || signal > MAX_SIGNAL {
        return Err(EINVAL);
    }
    if old != 0 {
        user::write_words(old, &[0; K_SIGACTION_WORDS])?;
    }
    Ok(0)
}

/// rt_sigprocmask(how, set, oldset): the old mask reads as empty.
pub fn rt_sigprocmask(old: u64) -> SysResult {
    if old != 0 {
        user::write_words(old, &[0])?;
    }
    Ok(0)
}

/// sigaltstack(ss, old_ss): the old one reads as disabled (stack_t: sp, flags, size).
pub fn sigaltstack(old: u64) -> SysResult {
    if old != 0 {
        user::write_words(old, &[0, SS_DISABLE as u64, 0])?;
    }
    Ok(0)
}

/// prlimit64(pid, resource, new, old) and getrlimit(resource, old): the stack limit is the
/// mapped stack's size, everything else unlimited; new limits are ignored.
pub fn prlimit64(resource: u64, old: u64) -> SysResult {
    if old != 0 {
        let limit = if resource == RLIMIT_STACK {
            program::stack_size()
        } else {
            RLIM_INFINITY
        };
        user::write_words(old, &[limit, limit])?;
    }
    Ok(0)
}

/// sched_getaffinity(pid, size, mask): CPU 0 alone (the host runs on one CPU); returns the
/// bytes written, as the raw call does.
pub fn sched_getaffinity(size: u64, mask: u64) -> SysResult {
    if size < 8 || !size.is_multiple_of(8) {
        return Err(EINVAL);
    }
    user::write_words(mask, &[1])?;
    Ok(8)
}

/// What uname() answers, field by field (`struct utsname`: sysname, nodename, release,
/// version, machine, domainname): what the Unikraft 0.20 kernel answers (measured there:
/// `Unikraft`, `5.15.148-Kiviuq`, `0.20.0~5a22d73`, `x86_64`), with a version and node name that
/// say this is the stand-in.
const UTSNAME: [&[u8]; 6] = [
    b"Unikraft",
    b"standin",
    b"5.15.148-Kiviuq",
    b"0.20.0~standin",
    b"x86_64",
    b"(none)",
];

/// uname(buf).
pub fn uname(buf: u64) -> SysResult {
    let mut bytes = [0u8; 6 * UTS_FIELD];
    for (i, f) in UTSNAME.iter().enumerate() {
        bytes[i * UTS_FIELD..i * UTS_FIELD + f.len()].copy_from_slice(f);
    }
    user::copy_to(buf, &bytes)?;
    Ok(0)
}

/// futex(addr, op, value, ...): one CPU and one thread, so a wait never sleeps: EAGAIN when
/// the word differs (as Linux), else an immediate (spurious, which callers must allow) wake-up.
/// A wake wakes nobody.
pub fn futex(addr: u64, op: u64, value: u64) -> SysResult {
    match op & FUTEX_CMD_MASK {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            if user::read_u32(addr)? != value as u32 {
                Err(EAGAIN)
            } else {
                Ok(0)
            }
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => Ok(0),
        _ => {
            crate::println!("standin: futex operation {op:#x} not implemented");
            Err(ENOSYS)
        }
    }
}

/// getrandom(buf, len, flags).
pub fn getrandom(buf: u64, len: u64) -> SysResult {
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        random::fill(&mut chunk[..n]);
        user::copy_to(buf + done, &chunk[..n])?;
        done += n as u64;
    }
    Ok(len)
}
