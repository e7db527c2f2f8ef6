// The SYSCALL entry, executed in ring 0 (AT&T syntax).
//
// SYSCALL from ring 0 behaves as from ring 3 (SDM Vol. 2B SYSCALL): RCX = return RIP, R11 =
// RFLAGS, RFLAGS &= ~IA32_FMASK (IF among the bits: no interrupt can come before the stack
// switch), CS/SS from IA32_STAR; RSP is left alone. The program's stack must not be touched:
// the 128 bytes below its RSP are its red zone. So the program's RSP goes to a GS-relative
// slot of the host's per-CPU block (GS base points there, see percpu.rs) and RSP is loaded from
// another, the system-call stack's top. The frame built there is a SyscallFrame (syscall/mod.rs;
// push order = field order, checked there), whose last five words are an IRETQ frame: the return
// to ring 0 uses IRETQ (SYSRET would drop to ring 3), restoring RSP and RFLAGS (IF included) at
// once and jumping to RCX. RCX and R11 come back as SYSCALL left them, as on Linux; RAX holds
// the result; every other register is preserved.
//
// First, GS base must still point at the host's block (its first word is its own address): a
// program that moved GS base (or a second CPU calling in with its own GS) would otherwise make
// the host write into someone else's data and run on a stack it read from there. Then the
// report goes out on the exception stack, and the run ends.

.section .text
.balign 16
.global syscall_entry
syscall_entry:
    cmpq ${PER_CPU}, %gs:0
    jne syscall_with_foreign_gs
    movq %rsp, %gs:{PROGRAM_RSP}
    movq %gs:{STACK_TOP}, %rsp
    pushq ${DATA}                   // ss
    pushq %gs:{PROGRAM_RSP}         // rsp
    pushq %r11                      // rflags
    pushq ${CODE}                   // cs
    pushq %rcx                      // rip
    pushq %r9
    pushq %r8
    pushq %r10
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rax
    // 12 words below a 16-byte aligned top: RSP is aligned for the call.
    movq %rsp, %rdi
    cld
    call syscall_dispatch
    popq %rax
    popq %rdi
    popq %rsi
    popq %rdx
    popq %r10
    popq %r8
    popq %r9
    movq (%rsp), %rcx
    movq 16(%rsp), %r11
    iretq

syscall_with_foreign_gs:
    leaq {REPORT_STACK}+{REPORT_STACK_TOP}(%rip), %rsp
    movq %rax, %rdi                 // the call's number, for the report
    call syscall_gs_moved
    ud2
