// AP long-mode entry: the first code an AP runs outside the trampoline page.
//
// The trampoline jumps here in 64-bit mode, with interrupts off, no stack, and the host's
// page-table root in %rdx: to ap_long_mode_entry when it runs on the transition page tables
// (which map this code at its real virtual address, transition_tables.rs), which loads that
// root first — under the host's root the same address maps the same code, wherever the host
// loaded us — or straight to ap_long_mode_entry_on_host_root when the host's tables are
// loaded already (they map the trampoline page: trampoline_page.rs), which the BSP knows: no
// CR3 read and no branch per AP. Then it does what needs the host's address space: it reads
// its APIC ID with CPUID, finds its slot in ap_boot_table (a static of this library,
// long_mode_entry.rs), loads the library's GDT, stores the phase stamps into its CpuData
// (boot/phases.rs), marks the slot IN_LONG_MODE, switches to the slot's stack and calls
// entry(cpu_data). Each branch taken here ends a TCG translation block, so the common path has
// as few as it can.
// An AP whose APIC ID is not in the table counts itself in ap_boot_table.stray and halts here
// with interrupts off: it never runs Rust code or touches another CPU's stack, and it does not
// stay in the trampoline page, which can be given back.
//
// The code must fit in the one 4 KiB page the transition tables map for it: it is aligned to
// 256 bytes and shorter than that (checked by a unit test), so it never crosses a page.

.section .text.ap_long_mode_entry, "ax"
.balign 256
.global ap_long_mode_entry
ap_long_mode_entry:
.code64
    mov cr3, rdx
.global ap_long_mode_entry_on_host_root
ap_long_mode_entry_on_host_root:
    rdtsc                               // the entry's phase stamp (boot/phases.rs), kept in
    shl rdx, 32                         // R13 beside the trampoline's R12 and R14, which
    or rax, rdx                         // nothing below touches
    mov r13, rax

    // APIC ID: one CPUID, of the leaf the BSP found valid on itself (ap_boot_table.id_leaf:
    // 0x1F or 0x0B give the 32-bit x2APIC ID in EDX, 0x01 the 8-bit one in EBX[31:24]; SDM
    // Vol. 2A CPUID). Each CPUID is a VM exit under KVM: finding the leaf on every AP took up
    // to three more.
    lea r11, [rip + {TABLE}]
    mov eax, [r11 + {T_ID_LEAF}]
    xor ecx, ecx
    cpuid
    mov r8d, edx
    shr ebx, 24
    cmp dword ptr [r11 + {T_ID_LEAF}], 1
    cmove r8d, ebx                      // r8d = this AP's APIC ID

    mov rsi, [r11 + {T_APIC_IDS}]
    mov ecx, [r11 + {T_COUNT}]
    xor edx, edx                        // count >= 1 (ApBootTable::publish): no test first
6:  cmp [rsi + rdx * 4], r8d
    je 7f
    inc edx
    cmp edx, ecx
    jb 6b
    jmp 9f
7:  lgdt [r11 + {T_GDT}]                // the library's GDT (ap_entry.rs): same selectors
    mov rsi, [r11 + {T_CPUS}]
    mov rdi, [rsi + rdx * 8]            // first argument: &CpuData
    mov [rdi + {C_STAMP_REAL}], r14
    mov [rdi + {C_STAMP_LONG}], r12
    mov [rdi + {C_STAMP_ENTRY}], r13
    mov rsp, [rdi + {C_STACK_TOP}]
    mov dword ptr [rdi + {C_STATE}], {STATE_IN_LONG_MODE}
    xor ebp, ebp
    mov rax, [r11 + {T_ENTRY}]
    call rax                            // never returns
    ud2

9:  lock inc dword ptr [r11 + {T_STRAY}]
8:  cli
    hlt
    jmp 8b

.global ap_long_mode_entry_end
ap_long_mode_entry_end:
.text
