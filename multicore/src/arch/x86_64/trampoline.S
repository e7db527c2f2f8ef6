// AP trampoline: real mode -> protected mode -> long mode -> Rust.
//
// Contract
// - The BSP copies ap_trampoline_start..ap_trampoline_end to a free 4 KiB page P below 1 MiB
//   and adds P to every 32-bit field listed in the relocation table
//   (ap_trampoline_relocs_start..end: offsets into the blob). Nothing else in the blob depends on
//   where it sits: real-mode code addresses through CS = P >> 4, protected-mode code through
//   %esi = P, long-mode code RIP-relative.
// - The BSP fills tr_params (struct TrampolineParams in trampoline.rs; the field offsets below
//   come from offset_of! through const operands): CR0/CR3/CR4/EFER/XCR0 to load, the Rust entry,
//   and the table of CPUs: APIC IDs [u32; count] and CpuData pointers [*const CpuData; count].
// - The AP arrives from a SIPI with vector P >> 12: real mode, CS:IP = (P >> 4):0000.
//   It switches to protected mode, loads the page-table root (below 4 GiB: it is loaded from
//   32-bit mode), enables PAE, long mode and paging, then in 64-bit mode loads the BSP's CR4
//   and XCR0, reads its APIC ID with CPUID, finds its slot, marks it IN_LONG_MODE, switches to
//   the slot's stack and calls entry(cpu_data). No stack is used before that.
// - An AP whose APIC ID is not in the table counts itself in tr_params.stray and halts with
//   interrupts off: it never runs Rust code or touches another CPU's stack.

.set CR0_PE,     1 << 0                 // SDM Vol. 3A §2.5
.set CR4_PAE,    1 << 5
.set CR4_OSXSAVE_BIT, 18
.set MSR_EFER,   0xC0000080             // SDM Vol. 4 Table 2-2
.set SEL_CODE32, 0x08                   // tr_gdt below
.set SEL_DATA,   0x10
.set SEL_CODE64, 0x18

// Records the 32-bit field that follows as needing the page's physical base added.
.macro TR_RELOC32 target
tr_reloc_\@:
    .long \target - ap_trampoline_start
    .pushsection .rodata.ap_trampoline_relocs, "a"
    .long tr_reloc_\@ - ap_trampoline_start
    .popsection
.endm

.pushsection .rodata.ap_trampoline_relocs, "a"
.balign 4
.global ap_trampoline_relocs_start
ap_trampoline_relocs_start:
.popsection

.section .text.ap_trampoline, "ax"
.balign 16
.global ap_trampoline_start
ap_trampoline_start:
.code16
    cli
    jmp tr_start16                      // the SIPI enters at offset 0; data comes first so that
                                        // its offsets are known constants for the code below
.balign 16
tr_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF            // 0x08: 32-bit code (SDM Vol. 3A §3.4.5)
    .quad 0x00CF92000000FFFF            // 0x10: data
    .quad 0x00AF9A000000FFFF            // 0x18: 64-bit code
tr_gdt_desc:
    .word tr_gdt_desc - tr_gdt - 1
    TR_RELOC32 tr_gdt

.balign 8
.global ap_trampoline_params
ap_trampoline_params:
tr_params:
    .space {P_SIZE}

// Offsets inside the blob (the Intel-syntax memory operands below take one symbol).
.set TR_GDT_DESC, tr_gdt_desc - ap_trampoline_start
.set TR_PARAMS, tr_params - ap_trampoline_start

tr_start16:
    cld
    mov ax, cs
    mov ds, ax
    xor esi, esi
    mov si, ax
    shl esi, 4                          // %esi = P, kept through protected mode
    lgdt [TR_GDT_DESC]
    mov eax, cr0
    or eax, CR0_PE
    mov cr0, eax
    // ljmpl SEL_CODE32:P+tr_start32 (66 EA imm32 sel16)
    .byte 0x66, 0xEA
    TR_RELOC32 tr_start32
    .word SEL_CODE32

.code32
tr_start32:
    mov ax, SEL_DATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, CR4_PAE                    // only PAE now: other CR4 bits (PCIDE) need long mode
    mov cr4, eax
    mov eax, [esi + TR_PARAMS + {P_CR3}]
    mov cr3, eax
    mov ecx, MSR_EFER
    mov eax, [esi + TR_PARAMS + {P_EFER}]
    mov edx, [esi + TR_PARAMS + {P_EFER} + 4]
    wrmsr                               // LME (+ NXE, SCE as on the BSP)
    mov eax, [esi + TR_PARAMS + {P_CR0}]
    mov cr0, eax                        // PG: long mode active (compatibility mode)
    // ljmp SEL_CODE64:P+tr_start64 (EA imm32 sel16)
    .byte 0xEA
    TR_RELOC32 tr_start64
    .word SEL_CODE64

.code64
tr_start64:
    mov ax, SEL_DATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rax, [rip + tr_params + {P_CR4}]
    mov cr4, rax
    bt eax, CR4_OSXSAVE_BIT
    jnc 1f
    xor ecx, ecx
    mov eax, [rip + tr_params + {P_XCR0}]
    mov edx, [rip + tr_params + {P_XCR0} + 4]
    xsetbv
1:  fninit

    // APIC ID: CPUID 0x1F or 0x0B EDX (32-bit x2APIC ID) where the leaf exists and is valid
    // (EBX[15:0] != 0), else CPUID 0x01 EBX[31:24] (SDM Vol. 2A CPUID).
    xor eax, eax
    cpuid
    mov r9d, eax                        // highest basic leaf
    mov r10d, 0x1F
2:  cmp r9d, r10d
    jb 3f
    mov eax, r10d
    xor ecx, ecx
    cpuid
    test bx, bx
    jnz 5f
3:  cmp r10d, 0x0B
    je 4f
    mov r10d, 0x0B
    jmp 2b
4:  mov eax, 1
    cpuid
    shr ebx, 24
    mov edx, ebx
5:  mov r8d, edx                        // r8d = this AP's APIC ID

    mov rsi, [rip + tr_params + {P_APIC_IDS}]
    mov ecx, [rip + tr_params + {P_COUNT}]
    xor edx, edx
6:  cmp edx, ecx
    jae tr_stray
    cmp [rsi + rdx * 4], r8d
    je 7f
    inc edx
    jmp 6b
7:  mov rsi, [rip + tr_params + {P_CPUS}]
    mov rdi, [rsi + rdx * 8]            // first argument: &CpuData
    mov rsp, [rdi + {C_STACK_TOP}]
    mov dword ptr [rdi + {C_STATE}], {STATE_IN_LONG_MODE}
    xor ebp, ebp
    mov rax, [rip + tr_params + {P_ENTRY}]
    call rax                            // never returns
    ud2

tr_stray:
    lock inc dword ptr [rip + tr_params + {P_STRAY}]
8:  cli
    hlt
    jmp 8b

.global ap_trampoline_end
ap_trampoline_end:

.pushsection .rodata.ap_trampoline_relocs, "a"
.global ap_trampoline_relocs_end
ap_trampoline_relocs_end:
.popsection
.text
