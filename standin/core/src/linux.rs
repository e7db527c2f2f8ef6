//! The numbers of the Linux x86_64 user ABI that the host answers. Facts from the kernel's
//! `arch/x86/entry/syscalls/syscall_64.tbl`, `include/uapi/asm-generic/errno-base.h`/`errno.h`,
//! `include/uapi/linux/auxvec.h`, `mman-common.h`, `futex.h`, `asm/prctl.h`; the host tests
//! compare each with the `libc` crate's value.

/// System call numbers (`rax` at `syscall`).
#[allow(missing_docs)]
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const FSTAT: u64 = 5;
    pub const POLL: u64 = 7;
    pub const LSEEK: u64 = 8;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const RT_SIGACTION: u64 = 13;
    pub const RT_SIGPROCMASK: u64 = 14;
    pub const IOCTL: u64 = 16;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const SCHED_YIELD: u64 = 24;
    pub const MREMAP: u64 = 25;
    pub const MADVISE: u64 = 28;
    pub const NANOSLEEP: u64 = 35;
    pub const GETPID: u64 = 39;
    pub const EXIT: u64 = 60;
    pub const KILL: u64 = 62;
    pub const UNAME: u64 = 63;
    pub const FCNTL: u64 = 72;
    pub const GETTIMEOFDAY: u64 = 96;
    pub const GETRLIMIT: u64 = 97;
    pub const TIMES: u64 = 100;
    pub const GETUID: u64 = 102;
    pub const GETGID: u64 = 104;
    pub const GETEUID: u64 = 107;
    pub const GETEGID: u64 = 108;
    pub const GETPPID: u64 = 110;
    pub const SIGALTSTACK: u64 = 131;
    pub const ARCH_PRCTL: u64 = 158;
    pub const GETTID: u64 = 186;
    pub const TKILL: u64 = 200;
    pub const TIME: u64 = 201;
    pub const FUTEX: u64 = 202;
    pub const SCHED_GETAFFINITY: u64 = 204;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const CLOCK_GETRES: u64 = 229;
    pub const CLOCK_NANOSLEEP: u64 = 230;
    pub const EXIT_GROUP: u64 = 231;
    pub const TGKILL: u64 = 234;
    pub const PPOLL: u64 = 271;
    pub const SET_ROBUST_LIST: u64 = 273;
    pub const PRLIMIT64: u64 = 302;
    pub const GETRANDOM: u64 = 318;
}

/// Error numbers; a system call returns `-errno`.
#[allow(missing_docs)]
pub mod errno {
    pub const EPERM: u64 = 1;
    pub const ENOENT: u64 = 2;
    pub const ESRCH: u64 = 3;
    pub const EBADF: u64 = 9;
    pub const EAGAIN: u64 = 11;
    pub const ENOMEM: u64 = 12;
    pub const EFAULT: u64 = 14;
    pub const EEXIST: u64 = 17;
    pub const ENODEV: u64 = 19;
    pub const EINVAL: u64 = 22;
    pub const ENOTTY: u64 = 25;
    pub const ESPIPE: u64 = 29;
    pub const ENOSYS: u64 = 38;
}

/// Auxiliary vector keys (`AT_*`).
#[allow(missing_docs)]
pub mod auxv {
    pub const AT_NULL: u64 = 0;
    pub const AT_PHDR: u64 = 3;
    pub const AT_PHENT: u64 = 4;
    pub const AT_PHNUM: u64 = 5;
    pub const AT_PAGESZ: u64 = 6;
    pub const AT_BASE: u64 = 7;
    pub const AT_FLAGS: u64 = 8;
    pub const AT_ENTRY: u64 = 9;
    pub const AT_UID: u64 = 11;
    pub const AT_EUID: u64 = 12;
    pub const AT_GID: u64 = 13;
    pub const AT_EGID: u64 = 14;
    pub const AT_HWCAP: u64 = 16;
    pub const AT_CLKTCK: u64 = 17;
    pub const AT_SECURE: u64 = 23;
    pub const AT_RANDOM: u64 = 25;
    pub const AT_HWCAP2: u64 = 26;
    pub const AT_EXECFN: u64 = 31;
    /// AT_HWCAP2 bit: the kernel enabled CR4.FSGSBASE, `rdfsbase` & co. may be used.
    pub const HWCAP2_FSGSBASE: u64 = 1 << 1;
}

/// `mmap`/`mprotect` protections and flags.
#[allow(missing_docs)]
pub mod mman {
    pub const PROT_READ: u64 = 0x1;
    pub const PROT_WRITE: u64 = 0x2;
    pub const PROT_EXEC: u64 = 0x4;
    pub const MAP_SHARED: u64 = 0x01;
    pub const MAP_PRIVATE: u64 = 0x02;
    pub const MAP_FIXED: u64 = 0x10;
    pub const MAP_ANONYMOUS: u64 = 0x20;
    pub const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
}

/// `arch_prctl` codes (`asm/prctl.h`).
#[allow(missing_docs)]
pub mod arch_prctl {
    pub const ARCH_SET_GS: u64 = 0x1001;
    pub const ARCH_SET_FS: u64 = 0x1002;
    pub const ARCH_GET_FS: u64 = 0x1003;
    pub const ARCH_GET_GS: u64 = 0x1004;
}

/// `futex` operations (`linux/futex.h`).
#[allow(missing_docs)]
pub mod futex {
    pub const FUTEX_WAIT: u64 = 0;
    pub const FUTEX_WAKE: u64 = 1;
    pub const FUTEX_WAIT_BITSET: u64 = 9;
    pub const FUTEX_WAKE_BITSET: u64 = 10;
    /// The operation's bits without FUTEX_PRIVATE_FLAG (128) and FUTEX_CLOCK_REALTIME (256).
    pub const FUTEX_CMD_MASK: u64 = !(128 | 256);
}

/// Clock ids (`linux/time.h`): 0 REALTIME .. 7 BOOTTIME; 8..11 are alarm/TAI variants.
pub const MAX_CLOCK_ID: u64 = 11;
/// `CLOCK_REALTIME`, the only clock that counts from the epoch.
pub const CLOCK_REALTIME: u64 = 0;
/// `CLOCK_REALTIME_COARSE`.
pub const CLOCK_REALTIME_COARSE: u64 = 5;

/// `fcntl` commands.
#[allow(missing_docs)]
pub mod fcntl {
    pub const F_GETFD: u64 = 1;
    pub const F_SETFD: u64 = 2;
    pub const F_GETFL: u64 = 3;
    pub const F_SETFL: u64 = 4;
    /// `O_RDWR`, what F_GETFL says of the console descriptors.
    pub const O_RDWR: u64 = 2;
}

/// `TIOCGWINSZ`, the terminal size ioctl (answered ENOTTY: the console is no terminal).
pub const TIOCGWINSZ: u64 = 0x5413;
/// `RLIMIT_STACK`.
pub const RLIMIT_STACK: u64 = 3;
/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;
/// `SS_DISABLE`, what sigaltstack reports for "no alternate stack".
pub const SS_DISABLE: u32 = 2;

/// A system call's name, for the console ("?" when not listed here).
pub fn syscall_name(number: u64) -> &'static str {
    match number {
        nr::READ => "read",
        nr::WRITE => "write",
        nr::OPEN => "open",
        nr::CLOSE => "close",
        4 => "stat",
        nr::FSTAT => "fstat",
        6 => "lstat",
        nr::POLL => "poll",
        nr::LSEEK => "lseek",
        nr::MMAP => "mmap",
        nr::MPROTECT => "mprotect",
        nr::MUNMAP => "munmap",
        nr::BRK => "brk",
        nr::RT_SIGACTION => "rt_sigaction",
        nr::RT_SIGPROCMASK => "rt_sigprocmask",
        nr::IOCTL => "ioctl",
        17 => "pread64",
        nr::READV => "readv",
        nr::WRITEV => "writev",
        21 => "access",
        22 => "pipe",
        nr::SCHED_YIELD => "sched_yield",
        nr::MREMAP => "mremap",
        nr::MADVISE => "madvise",
        32 => "dup",
        33 => "dup2",
        nr::NANOSLEEP => "nanosleep",
        nr::GETPID => "getpid",
        56 => "clone",
        57 => "fork",
        59 => "execve",
        nr::EXIT => "exit",
        61 => "wait4",
        nr::KILL => "kill",
        nr::UNAME => "uname",
        nr::FCNTL => "fcntl",
        79 => "getcwd",
        89 => "readlink",
        nr::GETTIMEOFDAY => "gettimeofday",
        nr::GETRLIMIT => "getrlimit",
        nr::TIMES => "times",
        nr::GETUID => "getuid",
        nr::GETGID => "getgid",
        nr::GETEUID => "geteuid",
        nr::GETEGID => "getegid",
        nr::GETPPID => "getppid",
        nr::SIGALTSTACK => "sigaltstack",
        nr::ARCH_PRCTL => "arch_prctl",
        nr::GETTID => "gettid",
        nr::TKILL => "tkill",
        nr::TIME => "time",
        nr::FUTEX => "futex",
        203 => "sched_setaffinity",
        nr::SCHED_GETAFFINITY => "sched_getaffinity",
        nr::SET_TID_ADDRESS => "set_tid_address",
        nr::CLOCK_GETTIME => "clock_gettime",
        nr::CLOCK_GETRES => "clock_getres",
        nr::CLOCK_NANOSLEEP => "clock_nanosleep",
        nr::EXIT_GROUP => "exit_group",
        nr::TGKILL => "tgkill",
        257 => "openat",
        262 => "newfstatat",
        nr::PPOLL => "ppoll",
        nr::SET_ROBUST_LIST => "set_robust_list",
        293 => "pipe2",
        nr::PRLIMIT64 => "prlimit64",
        nr::GETRANDOM => "getrandom",
        332 => "statx",
        334 => "rseq",
        435 => "clone3",
        _ => "?",
    }
}

/// A signal's conventional name, for "killed by signal N (SIGxxx)".
pub fn signal_name(signal: u64) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_numbers_match_libc() {
        let pairs: &[(u64, libc::c_long)] = &[
            (nr::READ, libc::SYS_read),
            (nr::WRITE, libc::SYS_write),
            (nr::OPEN, libc::SYS_open),
            (nr::CLOSE, libc::SYS_close),
            (nr::FSTAT, libc::SYS_fstat),
            (nr::POLL, libc::SYS_poll),
            (nr::LSEEK, libc::SYS_lseek),
            (nr::MMAP, libc::SYS_mmap),
            (nr::MPROTECT, libc::SYS_mprotect),
            (nr::MUNMAP, libc::SYS_munmap),
            (nr::BRK, libc::SYS_brk),
            (nr::RT_SIGACTION, libc::SYS_rt_sigaction),
            (nr::RT_SIGPROCMASK, libc::SYS_rt_sigprocmask),
            (nr::IOCTL, libc::SYS_ioctl),
            (nr::READV, libc::SYS_readv),
            (nr::WRITEV, libc::SYS_writev),
            (nr::SCHED_YIELD, libc::SYS_sched_yield),
            (nr::MREMAP, libc::SYS_mremap),
            (nr::MADVISE, libc::SYS_madvise),
            (nr::NANOSLEEP, libc::SYS_nanosleep),
            (nr::GETPID, libc::SYS_getpid),
            (nr::EXIT, libc::SYS_exit),
            (nr::KILL, libc::SYS_kill),
            (nr::UNAME, libc::SYS_uname),
            (nr::FCNTL, libc::SYS_fcntl),
            (nr::GETTIMEOFDAY, libc::SYS_gettimeofday),
            (nr::GETRLIMIT, libc::SYS_getrlimit),
            (nr::TIMES, libc::SYS_times),
            (nr::GETUID, libc::SYS_getuid),
            (nr::GETGID, libc::SYS_getgid),
            (nr::GETEUID, libc::SYS_geteuid),
            (nr::GETEGID, libc::SYS_getegid),
            (nr::GETPPID, libc::SYS_getppid),
            (nr::SIGALTSTACK, libc::SYS_sigaltstack),
            (nr::ARCH_PRCTL, libc::SYS_arch_prctl),
            (nr::GETTID, libc::SYS_gettid),
            (nr::TKILL, libc::SYS_tkill),
            (nr::TIME, libc::SYS_time),
            (nr::FUTEX, libc::SYS_futex),
            (nr::SCHED_GETAFFINITY, libc::SYS_sched_getaffinity),
            (nr::SET_TID_ADDRESS, libc::SYS_set_tid_address),
            (nr::CLOCK_GETTIME, libc::SYS_clock_gettime),
            (nr::CLOCK_GETRES, libc::SYS_clock_getres),
            (nr::CLOCK_NANOSLEEP, libc::SYS_clock_nanosleep),
            (nr::EXIT_GROUP, libc::SYS_exit_group),
            (nr::TGKILL, libc::SYS_tgkill),
            (nr::PPOLL, libc::SYS_ppoll),
            (nr::SET_ROBUST_LIST, libc::SYS_set_robust_list),
            (nr::PRLIMIT64, libc::SYS_prlimit64),
            (nr::GETRANDOM, libc::SYS_getrandom),
        ];
        for &(ours, theirs) in pairs {
            assert_eq!(ours, theirs as u64);
        }
    }

    #[test]
    fn abi_constants_match_libc() {
        let errnos: &[(u64, i32)] = &[
            (errno::EPERM, libc::EPERM),
            (errno::ENOENT, libc::ENOENT),
            (errno::ESRCH, libc::ESRCH),
            (errno::EBADF, libc::EBADF),
            (errno::EAGAIN, libc::EAGAIN),
            (errno::ENOMEM, libc::ENOMEM),
            (errno::EFAULT, libc::EFAULT),
            (errno::EEXIST, libc::EEXIST),
            (errno::ENODEV, libc::ENODEV),
            (errno::EINVAL, libc::EINVAL),
            (errno::ENOTTY, libc::ENOTTY),
            (errno::ESPIPE, libc::ESPIPE),
            (errno::ENOSYS, libc::ENOSYS),
        ];
        for &(ours, theirs) in errnos {
            assert_eq!(ours, theirs as u64);
        }
        let aux: &[(u64, u64)] = &[
            (auxv::AT_NULL, libc::AT_NULL),
            (auxv::AT_PHDR, libc::AT_PHDR),
            (auxv::AT_PHENT, libc::AT_PHENT),
            (auxv::AT_PHNUM, libc::AT_PHNUM),
            (auxv::AT_PAGESZ, libc::AT_PAGESZ),
            (auxv::AT_BASE, libc::AT_BASE),
            (auxv::AT_FLAGS, libc::AT_FLAGS),
            (auxv::AT_ENTRY, libc::AT_ENTRY),
            (auxv::AT_UID, libc::AT_UID),
            (auxv::AT_EUID, libc::AT_EUID),
            (auxv::AT_GID, libc::AT_GID),
            (auxv::AT_EGID, libc::AT_EGID),
            (auxv::AT_HWCAP, libc::AT_HWCAP),
            (auxv::AT_CLKTCK, libc::AT_CLKTCK),
            (auxv::AT_SECURE, libc::AT_SECURE),
            (auxv::AT_RANDOM, libc::AT_RANDOM),
            (auxv::AT_HWCAP2, libc::AT_HWCAP2),
            (auxv::AT_EXECFN, libc::AT_EXECFN),
        ];
        for &(ours, theirs) in aux {
            assert_eq!(ours, theirs);
        }
        assert_eq!(mman::PROT_READ, libc::PROT_READ as u64);
        assert_eq!(mman::PROT_WRITE, libc::PROT_WRITE as u64);
        assert_eq!(mman::PROT_EXEC, libc::PROT_EXEC as u64);
        assert_eq!(mman::MAP_SHARED, libc::MAP_SHARED as u64);
        assert_eq!(mman::MAP_PRIVATE, libc::MAP_PRIVATE as u64);
        assert_eq!(mman::MAP_FIXED, libc::MAP_FIXED as u64);
        assert_eq!(mman::MAP_ANONYMOUS, libc::MAP_ANONYMOUS as u64);
        assert_eq!(mman::MAP_FIXED_NOREPLACE, libc::MAP_FIXED_NOREPLACE as u64);
        assert_eq!(futex::FUTEX_WAIT, libc::FUTEX_WAIT as u64);
        assert_eq!(futex::FUTEX_WAKE, libc::FUTEX_WAKE as u64);
        assert_eq!(futex::FUTEX_WAIT_BITSET, libc::FUTEX_WAIT_BITSET as u64);
        assert_eq!(futex::FUTEX_WAKE_BITSET, libc::FUTEX_WAKE_BITSET as u64);
        assert_eq!(
            futex::FUTEX_CMD_MASK as i32,
            !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME)
        );
        assert_eq!(fcntl::F_GETFD, libc::F_GETFD as u64);
        assert_eq!(fcntl::F_SETFD, libc::F_SETFD as u64);
        assert_eq!(fcntl::F_GETFL, libc::F_GETFL as u64);
        assert_eq!(fcntl::F_SETFL, libc::F_SETFL as u64);
        assert_eq!(fcntl::O_RDWR, libc::O_RDWR as u64);
        assert_eq!(TIOCGWINSZ, libc::TIOCGWINSZ);
        assert_eq!(RLIMIT_STACK, libc::RLIMIT_STACK as u64);
        assert_eq!(RLIM_INFINITY, libc::RLIM_INFINITY);
        assert_eq!(SS_DISABLE, libc::SS_DISABLE as u32);
        assert_eq!(CLOCK_REALTIME, libc::CLOCK_REALTIME as u64);
        assert_eq!(CLOCK_REALTIME_COARSE, libc::CLOCK_REALTIME_COARSE as u64);
        assert_eq!(MAX_CLOCK_ID, libc::CLOCK_TAI as u64);
    }

    #[test]
    fn syscall_names_match_libc_numbers() {
        assert_eq!(syscall_name(libc::SYS_mremap as u64), "mremap");
        assert_eq!(syscall_name(libc::SYS_openat as u64), "openat");
        assert_eq!(syscall_name(libc::SYS_newfstatat as u64), "newfstatat");
        assert_eq!(syscall_name(libc::SYS_statx as u64), "statx");
        assert_eq!(syscall_name(libc::SYS_rseq as u64), "rseq");
        assert_eq!(syscall_name(libc::SYS_clone3 as u64), "clone3");
        assert_eq!(
            syscall_name(libc::SYS_sched_setaffinity as u64),
            "sched_setaffinity"
        );
        assert_eq!(syscall_name(libc::SYS_pipe2 as u64), "pipe2");
        assert_eq!(syscall_name(libc::SYS_readlink as u64), "readlink");
        assert_eq!(syscall_name(libc::SYS_getcwd as u64), "getcwd");
        assert_eq!(syscall_name(libc::SYS_wait4 as u64), "wait4");
        assert_eq!(syscall_name(libc::SYS_execve as u64), "execve");
        assert_eq!(syscall_name(libc::SYS_clone as u64), "clone");
        assert_eq!(syscall_name(libc::SYS_dup2 as u64), "dup2");
        assert_eq!(syscall_name(libc::SYS_pread64 as u64), "pread64");
        assert_eq!(syscall_name(libc::SYS_access as u64), "access");
        assert_eq!(syscall_name(libc::SYS_stat as u64), "stat");
        assert_eq!(syscall_name(libc::SYS_lstat as u64), "lstat");
        assert_eq!(syscall_name(9999), "?");
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGABRT as u64), "SIGABRT");
        assert_eq!(signal_name(libc::SIGSEGV as u64), "SIGSEGV");
        assert_eq!(signal_name(99), "signal");
    }
}
