// Interrupt and exception entry: one 16-byte stub per vector, then a common path that saves
// the general registers and calls trap_dispatch(&mut TrapFrame) (rt/trap.rs).
//
// Every stub leaves the same frame: [vector][error code or 0] above the 15 saved registers,
// below the CPU's own interrupt frame (RIP, CS, RFLAGS, RSP, SS). The CPU aligns RSP to 16
// before pushing its 40-byte frame (SDM Vol. 3A §7.14.2), so after 2 + 15 pushes RSP is
// 16-byte aligned again at the call, as the System V ABI wants.
//
// Vectors that push an error code themselves (SDM Vol. 3A Table 7-1): 8, 10-14, 17, 21, 29, 30.

.section .text.trap_stubs, "ax"
.balign 16
.global trap_stubs
trap_stubs:
.set trap_vector, 0
.rept 256
    .balign 16
    .if (trap_vector == 8) || ((trap_vector >= 10) && (trap_vector <= 14)) || (trap_vector == 17) || (trap_vector == 21) || (trap_vector == 29) || (trap_vector == 30)
    .else
    .byte 0x6A, 0x00                    // push 0 (no error code)
    .endif
    .byte 0x68                          // push imm32: the vector
    .long trap_vector
    jmp trap_common
    .set trap_vector, trap_vector + 1
.endr

trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {DISPATCH}
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16                         // vector and error code
    iretq
.text
