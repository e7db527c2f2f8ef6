//! Linux system calls, made with the `syscall` instruction from ring 0, answered by the host
//! (what a Rust `std` program on musl needs; the rest gets -ENOSYS and one console line each).

mod io;
mod memory;
mod process;
mod stats;
mod time;

use core::mem::{offset_of, size_of};

use standin_core::linux::errno::ENOSYS;
use standin_core::linux::nr;
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

use crate::{gdt, percpu};

pub use memory::{init as init_memory, map_stack};
pub use stats::print_summary;

core::arch::global_asm!(
    include_str!("entry.S"),
    PROGRAM_RSP = const percpu::PROGRAM_RSP,
    STACK_TOP = const percpu::SYSCALL_STACK_TOP,
    CODE = const gdt::CODE,
    DATA = const gdt::DATA,
    PER_CPU = sym percpu::PER_CPU,
    REPORT_STACK = sym crate::stacks::EXCEPTION,
    REPORT_STACK_TOP = const crate::stacks::ExceptionStack::TOP_OFFSET,
    options(att_syntax)
);

extern "C" {
    fn syscall_entry();
}

/// What entry.S saved: the number and six arguments (Linux x86_64 convention: RAX; RDI, RSI,
/// RDX, R10, R8, R9), then an IRETQ frame back to the program.
#[repr(C)]
#[allow(missing_docs)]
pub struct SyscallFrame {
    /// The number on entry, the result on return.
    pub rax: u64,
    pub args: [u64; 6],
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// entry.S pushes ss, rsp, rflags, cs, rip, r9, r8, r10, rdx, rsi, rdi, rax.
const _: () = {
    assert!(offset_of!(SyscallFrame, args) == 8);
    assert!(offset_of!(SyscallFrame, rip) == 7 * 8);
    assert!(size_of::<SyscallFrame>() == 12 * 8);
};

/// The result of one call: a value, or an errno (returned negated).
pub type SysResult = Result<u64, u64>;

/// Turns SYSCALL on: EFER.SCE, the entry in IA32_LSTAR, CS/SS in IA32_STAR, and IA32_FMASK
/// clearing IF (no interrupt before the stack switch), TF, DF, AC, NT and IOPL (SDM Vol. 3A
/// §5.8.8 "Fast System Calls in 64-Bit Mode"; Vol. 4 Table 2-2 for the MSRs).
pub fn init() {
    // SAFETY: SCE only enables the SYSCALL instruction.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    // SAFETY: STAR[47:32] = the host's ring-0 code selector, whose next entry is its data
    // selector, as SYSCALL requires. STAR[63:48] (SYSRET's selectors) stays 0: nothing here
    // returns with SYSRET.
    unsafe { Star::write_raw(0, gdt::CODE) };
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK
            | RFlags::IOPL_HIGH
            | RFlags::IOPL_LOW,
    );
}

/// Called by entry.S, on the exception stack, when GS base no longer points at the host's
/// per-CPU block.
#[no_mangle]
extern "C" fn syscall_gs_moved(number: u64) -> ! {
    let gs = x86_64::registers::model_specific::GsBase::read().as_u64();
    crate::fail!(
        "system call {number} ({}) made with GS base {gs:#x}, not the host's per-CPU block {:#x}: \
         the program (or a library in it) moved GS base, or another CPU called in; this host, like \
         a Unikraft kernel, needs GS base for its system-call entry",
        standin_core::linux::syscall_name(number),
        percpu::address()
    )
}

/// Called by entry.S on the system-call stack, interrupts off.
#[no_mangle]
extern "C" fn syscall_dispatch(frame: &mut SyscallFrame) {
    let number = frame.rax;
    let [a0, a1, a2, a3, _, _] = frame.args;
    stats::count(number);
    let result = match number {
        nr::READ => io::read(a0, a1, a2),
        nr::WRITE => io::write(a0, a1, a2),
        nr::READV => io::readv(a0, a1, a2),
        nr::WRITEV => io::writev(a0, a1, a2),
        nr::CLOSE => io::close(a0),
        nr::LSEEK => io::lseek(a0),
        nr::POLL => io::poll(a0, a1),
        nr::PPOLL => io::poll(a0, a1),
        nr::FCNTL => io::fcntl(a0, a1),
        nr::IOCTL => io::ioctl(a0, a1),
        nr::BRK => Ok(memory::brk(a0)),
        nr::MMAP => memory::mmap(a0, a1, a2, a3),
        nr::MUNMAP => memory::munmap(a0, a1),
        nr::MPROTECT => memory::mprotect(a0, a1, a2),
        nr::MADVISE => memory::madvise(a0, a1, a2),
        nr::EXIT | nr::EXIT_GROUP => process::exit(a0),
        nr::KILL | nr::TKILL => process::kill(a0, a1),
        nr::TGKILL => process::kill(a1, a2),
        nr::GETPID | nr::GETTID => Ok(process::PID),
        nr::GETPPID => Ok(0),
        nr::GETUID | nr::GETEUID | nr::GETGID | nr::GETEGID => Ok(0),
        nr::SET_TID_ADDRESS => Ok(process::PID),
        nr::SET_ROBUST_LIST => Ok(0),
        nr::ARCH_PRCTL => process::arch_prctl(a0, a1),
        nr::RT_SIGACTION => process::rt_sigaction(a0, a1, a2),
        nr::RT_SIGPROCMASK => process::rt_sigprocmask(a2),
        nr::SIGALTSTACK => process::sigaltstack(a1),
        nr::PRLIMIT64 => process::prlimit64(a1, a3),
        nr::GETRLIMIT => process::prlimit64(a0, a1),
        nr::SCHED_GETAFFINITY => process::sched_getaffinity(a1, a2),
        nr::SCHED_YIELD => Ok(0),
        nr::UNAME => process::uname(a0),
        nr::FUTEX => process::futex(a0, a1, a2),
        nr::GETRANDOM => process::getrandom(a0, a1),
        nr::CLOCK_GETTIME => time::clock_gettime(a0, a1),
        nr::CLOCK_GETRES => time::clock_getres(a0, a1),
        nr::GETTIMEOFDAY => time::gettimeofday(a0, a1),
        nr::TIME => time::time(a0),
        nr::NANOSLEEP => time::nanosleep(a0),
        nr::CLOCK_NANOSLEEP => time::clock_nanosleep(a0, a1, a2),
        nr::TIMES => time::times(a0),
        _ => {
            stats::not_implemented(number);
            Err(ENOSYS)
        }
    };
    frame.rax = match result {
        Ok(value) => value,
        Err(errno) => errno.wrapping_neg(),
    };
}
