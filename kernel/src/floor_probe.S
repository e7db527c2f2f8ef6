// The wake-up floor probe: the least an AP can do after a SIPI. It counts itself in with one
// locked increment and halts; nothing else (no mode switch, no stack, no slot lookup). The BSP
// copies it to the trampoline page and starts the APs with the same INIT/SIPI sequence as the
// real bring-up, so the time until every AP has counted itself is what the machine itself
// costs: the floor every bring-up figure is compared with.
//
// Real mode, CS = page >> 4, IP = 0: the counter is addressed relative to CS (DS = CS).

.section .text.floor_probe, "ax"
.balign 16
.global floor_probe_start
floor_probe_start:
.code16
    cli
    jmp 2f
.balign 4
.global floor_probe_counter
floor_probe_counter:
    .long 0
.set FLOOR_COUNTER, floor_probe_counter - floor_probe_start
2:  mov ax, cs
    mov ds, ax
    lock inc dword ptr [FLOOR_COUNTER]
1:  hlt
    jmp 1b
.global floor_probe_end
floor_probe_end:
.code64
.text
