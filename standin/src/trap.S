// Interrupt and exception entry (AT&T syntax). Every gate of the IDT points at one 16-byte stub
// here (trap_stubs + 16 * vector, checked by idt.rs); each gate switches to an IST stack first,
// so nothing is pushed onto the program's stack. A stub makes the frame uniform (a zero where
// the CPU pushes no error code; SDM Vol. 3A §6.13 "Error Code" lists the vectors that have one),
// pushes its vector and joins trap_common, which saves the general registers as a TrapFrame
// (idt.rs; the push order is its field order, checked there) and calls trap_dispatch.

.section .text
.balign 16
.global trap_stubs
trap_stubs:
.set vector, 0
.rept 256
    .balign 16
    .if vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 || vector == 29 || vector == 30
    .else
    pushq $0
    .endif
    pushq $vector
    jmp trap_common
    .set vector, vector + 1
.endr
.balign 16
.global trap_stubs_end
trap_stubs_end:

trap_common:
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    pushq %r11
    pushq %r10
    pushq %r9
    pushq %r8
    pushq %rbp
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    pushq %rbx
    pushq %rax
    // The CPU aligned the IST stack to 16 before its 5 pushes; with the error code, the vector
    // and 15 registers (22 words) RSP is 16-byte aligned for the call.
    movq %rsp, %rdi
    cld
    call trap_dispatch
    popq %rax
    popq %rbx
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    popq %rbp
    popq %r8
    popq %r9
    popq %r10
    popq %r11
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    addq $16, %rsp              // vector and error code
    iretq
