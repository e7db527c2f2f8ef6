//! Loading the program and starting it the way Linux starts a static-pie executable: its
//! PT_LOAD segments at the load base (rights from their flags, NX where not executable), a
//! stack high up holding argc, argv, envp and the auxiliary vector, then a jump to its entry in
//! ring 0 with interrupts on. Its C library's start code relocates it and sets up TLS.

use core::fmt::{self, Write};

use standin_core::cmdline::CommandLine;
use standin_core::cpio;
use standin_core::elf::{self, Access};
use standin_core::initial_stack::{self, StartInfo};
use standin_core::layout::{self, PHYS_OFFSET, STACK_TOP};
use standin_core::linux::auxv::*;
use standin_core::ranges::{Range, PAGE};
use x86_64::registers::model_specific::FsBase;
use x86_64::VirtAddr;

use crate::boot::BootInfo;
use crate::lowmem::LowFree;
use crate::paging::{self, phys_to_virt, PRESENT, WRITABLE};
use crate::{fail, finish, frames, gdt, pit, syscall, user};

/// Bytes the environment strings may take.
const ENV_TEXT: usize = 4096;
/// At most this many environment variables.
const MAX_ENV: usize = 24;
/// The top of the stack the initial stack is built in (argv + envp + auxv must fit).
const STACK_IMAGE: usize = 16 * 1024;
/// RFLAGS at entry: IF, and bit 1 which is always set.
const ENTRY_RFLAGS: u64 = 0x202;

/// What was loaded, for reports and system calls.
struct Loaded {
    name: &'static str,
    image: Range,
    stack_size: u64,
}

static LOADED: spin::Once<Loaded> = spin::Once::new();

/// The program's path as given (argv[0]).
pub fn name() -> &'static str {
    LOADED.get().map_or("the program", |l| l.name)
}

/// The program's stack size.
pub fn stack_size() -> u64 {
    LOADED
        .get()
        .map_or(layout::DEFAULT_STACK_SIZE, |l| l.stack_size)
}

/// Where an instruction address lies, for fault reports.
pub struct Place(u64);

/// Describes `rip`: in the program (with its offset, for addr2line), in the host, elsewhere.
pub fn describe(rip: u64) -> Place {
    Place(rip)
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rip = self.0;
        match LOADED.get() {
            Some(l) if l.image.contains(rip) => write!(
                f,
                "in the program at {rip:#x} ({}+{:#x})",
                l.name,
                rip - l.image.start
            ),
            _ if crate::boot::image().contains(rip) => write!(f, "in the host at {rip:#x}"),
            _ => write!(f, "at {rip:#x}"),
        }
    }
}

/// What the host tells the program through its environment and auxiliary vector.
pub struct HostFacts<'a> {
    /// The ACPI RSDP, if found.
    pub rsdp: Option<u64>,
    /// Low RAM the host does not use.
    pub low_free: &'a LowFree,
    /// CPUID leaf 1 EDX (AT_HWCAP).
    pub hwcap: u64,
    /// AT_HWCAP2 (FSGSBASE usable).
    pub hwcap2: u64,
}

/// `KEY=VALUE` strings packed into one buffer.
struct Environment {
    text: [u8; ENV_TEXT],
    len: usize,
    ends: [usize; MAX_ENV],
    count: usize,
    overflow: bool,
}

impl Write for Environment {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > ENV_TEXT {
            self.overflow = true;
            return Err(fmt::Error);
        }
        self.text[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Environment {
    fn add(&mut self, args: fmt::Arguments<'_>) {
        if self.count == MAX_ENV {
            self.overflow = true;
            return;
        }
        if self.write_fmt(args).is_ok() {
            self.ends[self.count] = self.len;
            self.count += 1;
        }
    }

    fn entries<'a>(&'a self, out: &'a mut [&'a [u8]; MAX_ENV]) -> &'a [&'a [u8]] {
        let mut start = 0;
        for (i, &end) in self.ends[..self.count].iter().enumerate() {
            out[i] = &self.text[start..end];
            start = end;
        }
        &out[..self.count]
    }
}

fn page_flags(access: Access) -> u64 {
    let mut flags = PRESENT;
    if access.write {
        flags |= WRITABLE;
    }
    if !access.execute {
        flags |= paging::nx();
    }
    flags
}

/// Finds the program in the initrd, loads it, builds its stack and starts it. Never returns.
pub fn run(line: &CommandLine<'static>, boot: &BootInfo, facts: &HostFacts<'_>) -> ! {
    let path = line.program();
    let Some(initrd) = boot.initrd else {
        fail!("no initrd: give the program in a cpio archive with -initrd (looking for {path})");
    };
    // SAFETY: the initrd is RAM the loader filled and the frame allocator keeps out of use; it
    // is only read, through the direct map.
    let archive =
        unsafe { core::slice::from_raw_parts(phys_to_virt(initrd.start), initrd.len() as usize) };
    let file = match cpio::find(archive, path) {
        Ok(Some(file)) if file.is_regular_file() => file,
        Ok(Some(_)) => fail!("{path} in the initrd is not a regular file"),
        Ok(None) => fail!("{path} is not in the initrd ({})", Members(archive)),
        Err(e) => fail!("initrd: {e}"),
    };
    let program = match elf::parse(file.data) {
        Ok(p) => p,
        Err(e) => fail!("{path}: {e}"),
    };
    let base = line.load_base;
    if let Err(e) = layout::check_load_base(base, program.span.end) {
        fail!("load={base:#x} cannot hold {path}: {e}");
    }
    let image = Range::new(base + program.span.start, base + program.span.end);

    // Segments: every page mapped with the union of the rights of the segments on it, zeroed,
    // then the file bytes copied in through the direct map.
    let mut page = program.span.start;
    while page < program.span.end {
        if let Some(access) = program.page_access(page) {
            let frame = match frames::alloc_zeroed_high() {
                Ok(f) => f,
                Err(_) => fail!(
                    "out of memory loading {path} ({} KiB)",
                    program.span.len() / 1024
                ),
            };
            if paging::map(base + page, frame, page_flags(access)).is_err() {
                fail!("out of memory for page tables loading {path}");
            }
        }
        page += PAGE;
    }
    for segment in program.segments() {
        if user::fill_program_memory(base + segment.vaddr, segment.file_bytes(file.data)).is_err() {
            fail!("{path}: a segment's page is not mapped (host bug)");
        }
    }
    syscall::init_memory(image.end);

    let stack = Range::new(STACK_TOP - line.stack_size, STACK_TOP);
    if syscall::map_stack(stack).is_err() {
        fail!(
            "out of memory for the program's stack ({} KiB, stack=)",
            line.stack_size / 1024
        );
    }
    LOADED.call_once(|| Loaded {
        name: path,
        image,
        stack_size: line.stack_size,
    });

    let mut env = Environment {
        text: [0; ENV_TEXT],
        len: 0,
        ends: [0; MAX_ENV],
        count: 0,
        overflow: false,
    };
    env.add(format_args!("STANDIN_PHYS_OFFSET={PHYS_OFFSET:#x}"));
    if let Some(rsdp) = facts.rsdp {
        env.add(format_args!("STANDIN_RSDP={rsdp:#x}"));
    }
    env.add(format_args!("STANDIN_LOWMEM_FREE={}", facts.low_free));
    env.add(format_args!("STANDIN_TIMER_HZ={}", pit::TICK_HZ));
    for (key, value) in line.extra_env() {
        env.add(format_args!("{key}={value}"));
    }
    if env.overflow {
        fail!("the environment is too large (at most {MAX_ENV} variables, {ENV_TEXT} bytes)");
    }
    let mut env_slots: [&[u8]; MAX_ENV] = [&[]; MAX_ENV];
    let envp = env.entries(&mut env_slots);
    let mut argv_slots: [&[u8]; standin_core::cmdline::MAX_ARGS] =
        [&[]; standin_core::cmdline::MAX_ARGS];
    for (slot, arg) in argv_slots.iter_mut().zip(line.argv()) {
        *slot = arg.as_bytes();
    }
    let argv = &argv_slots[..line.argv().len()];
    let entry = base + program.entry;
    let auxv = [
        (AT_PHDR, base + program.phdr_vaddr),
        (AT_PHENT, program.phentsize as u64),
        (AT_PHNUM, program.phnum as u64),
        (AT_PAGESZ, PAGE),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_SECURE, 0),
        (AT_HWCAP, facts.hwcap),
        (AT_HWCAP2, facts.hwcap2),
        (AT_CLKTCK, pit::TICK_HZ),
    ];
    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    let info = StartInfo {
        argv,
        envp,
        auxv: &auxv,
        random,
    };
    let mut area = [0u8; STACK_IMAGE];
    let placed = match initial_stack::build(&mut area, STACK_TOP, &info) {
        Ok(p) => p,
        Err(e) => fail!("{e}"),
    };
    let used = &area[STACK_IMAGE - placed.used..];
    if user::fill_program_memory(placed.sp, used).is_err() {
        fail!("the program's stack is not mapped (host bug)");
    }

    crate::println!(
        "standin: loaded {path}: {} segments at {:#x}-{:#x}, entry {entry:#x}, stack {:#x}-{:#x}",
        program.segments().len(),
        image.start,
        image.end,
        stack.start,
        stack.end
    );
    for entry in envp {
        if let Ok(text) = core::str::from_utf8(entry) {
            crate::println!("standin: env {text}");
        }
    }
    crate::println!("standin: running {path} in ring 0, interrupts on");
    finish::program_starts();
    enter(entry, placed.sp)
}

/// Jumps to `entry` with RSP = `sp`, in ring 0 (CS = the host's code selector), interrupts on,
/// every other register zero, the x87 unit initialised (control word 0x37F, as Linux gives a
/// new process), FS base 0 until the program sets its TLS.
fn enter(entry: u64, sp: u64) -> ! {
    FsBase::write(VirtAddr::new(0));
    // SAFETY: `entry` is the program's entry point in a mapped executable page and `sp` points
    // at the initial stack in its mapped stack; GDT, IDT (IST stacks), TSS, the system-call
    // MSRs and the PIC/PIT are set up, so the interrupts enabled by IRETQ are handled. The
    // host's boot stack is left for good.
    unsafe {
        core::arch::asm!(
            "push {ss}",
            "push {stack}",
            "push {rflags}",
            "push {cs}",
            "push {entry}",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor esi, esi",
            "xor edi, edi",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "fninit",
            "iretq",
            ss = in(reg) gdt::DATA as u64,
            stack = in(reg) sp,
            rflags = in(reg) ENTRY_RFLAGS,
            cs = in(reg) gdt::CODE as u64,
            entry = in(reg) entry,
            options(noreturn)
        )
    }
}

/// The initrd's member names, for "not in the initrd" (the first few).
struct Members<'a>(&'a [u8]);

impl fmt::Display for Members<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("it holds:")?;
        let mut any = false;
        for (i, member) in cpio::entries(self.0).enumerate() {
            match member {
                Ok(_) if i >= 10 => return f.write_str(" ..."),
                Ok(m) => {
                    write!(f, " /{}", cpio::normalize(m.name))?;
                    any = true;
                }
                Err(e) => return write!(f, " (then: {e})"),
            }
        }
        if !any {
            f.write_str(" nothing")?;
        }
        Ok(())
    }
}
