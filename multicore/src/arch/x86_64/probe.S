// Fault-safe copy for probing a mapping the library was told about but cannot trust yet
// (probe.rs). While a probe session is open, the BSP's IDT is a copy of the host's with two
// gates replaced: #GP (13) and #PF (14) go to the handlers below.
//
// multicore_probe_copy(dst: rdi, src: rsi, len: rdx) -> eax: 0 copied, 1 faulted.
// A fault on the `rep movsb` (the only instruction that touches `src`) returns 1 from the
// call: the handler rewrites the interrupted RIP to multicore_probe_copy_faulted and drops
// the error code. A fault anywhere else is not ours: the handler leaves the frame as the CPU
// pushed it and jumps to the host's own handler for that vector (its address was saved from
// the host's IDT when the session opened), so the host sees exactly what it would have seen.
//
// Frame on entry to the handlers (SDM Vol. 3A §7.14.2, same privilege level, no IST):
// [rsp] error code, [rsp+8] RIP, [rsp+16] CS, [rsp+24] RFLAGS, [rsp+32] RSP, [rsp+40] SS.

.section .text.multicore_probe, "ax"
.balign 16
.global multicore_probe_copy
multicore_probe_copy:
    mov rcx, rdx
.global multicore_probe_copy_insn
multicore_probe_copy_insn:
    rep movsb
    xor eax, eax
    ret
multicore_probe_copy_faulted:
    mov eax, 1
    ret

// One handler per vector: each saves rax, compares the interrupted RIP with the probe's copy
// instruction, and either resumes at the fault exit or chains to the host.
.macro PROBE_HANDLER name, host
.balign 16
.global \name
\name:
    push rax
    lea rax, [rip + multicore_probe_copy_insn]
    cmp rax, [rsp + 16]
    jne 1f
    lea rax, [rip + multicore_probe_copy_faulted]
    mov [rsp + 16], rax
    pop rax
    add rsp, 8                          // the error code: iretq wants RIP on top
    iretq
1:  pop rax
    jmp qword ptr [rip + \host]
.endm

PROBE_HANDLER multicore_probe_gp, {HOST_GP}
PROBE_HANDLER multicore_probe_pf, {HOST_PF}
