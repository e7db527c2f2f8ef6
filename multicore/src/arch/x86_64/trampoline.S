// AP trampoline: real mode -> long mode -> Rust.
//
// Contract
// - The BSP copies ap_trampoline_start..ap_trampoline_end to a free 4 KiB page P below 1 MiB
//   and adds P to every 32-bit field listed in the relocation table
//   (ap_trampoline_relocs_start..end: offsets into the blob). Nothing else in the blob depends on
//   where it sits: real-mode code addresses through CS = DS = P >> 4, long-mode code
//   RIP-relative.
// - The BSP fills tr_params (struct TrampolineParams in trampoline.rs; the field offsets below
//   come from offset_of! through const operands): CR0/CR4/EFER/XCR0 to load, the CR4 and the
//   page-table root to load before paging (the root below 4 GiB: real mode loads 32 bits; the
//   host's own when it maps this page to itself, else the transition tables of
//   transition_tables.rs), the host's root (any address) and the virtual address of
//   ap_long_mode_entry.
// - The AP arrives from a SIPI with vector P >> 12: real mode, CS:IP = (P >> 4):0000.
//   Still in real mode it loads the GDT, CR4 (PAE among the BSP's bits), the root and EFER
//   (LME), then sets PE and PG in one CR0 write: that enters long mode directly, with
//   no 32-bit protected-mode stage (SDM Vol. 3A §9.9.1: one MOV CR0 may set PE and PG
//   together; §9.8.5: PAE and LME set before PG activate IA-32e mode), and the far jump that
//   follows loads the 64-bit code segment. Each stage left out is a mode switch fewer: under
//   TCG each one throws away the vCPU's TLB, under KVM control-register writes exit. In 64-bit
//   mode (still in this page, identity-mapped by either set of tables) it loads the rest of
//   the BSP's CR4 and XCR0 where the BSP left those loads in (it writes NOPs over the ones
//   it does not need: patch_long_mode_work in trampoline.rs) and jumps to
//   the long-mode entry the BSP chose (boot/long_mode_entry.S) at its real virtual address,
//   with the host's root in %rdx and the phase stamps in R12 and R14 (boot/phases.rs). No
//   stack is used in this page.
// - Two segment registers are loaded, CS by the far jump and SS just before the page is left,
//   both from a GDT whose descriptors are those of the library's own (boot/ap_entry.rs,
//   unit-tested), so the library's GDT replaces this one without reloading anything. DS, ES,
//   FS and GS keep the null selectors INIT left (SDM Vol. 3A Table 9-1), which 64-bit mode does
//   not use (§3.4.4), and real-mode data is read through CS. SS is loaded although 64-bit mode
//   ignores it too: TCG keys its translations by SS's size bit, and an AP whose SS still held
//   INIT's 16-bit segment could not reuse the code the BSP (SS a 32-bit data segment) has
//   translated. Every segment load is an instruction that TCG ends its translation block at
//   and that an emulated ring 0 pays for.

.set MSR_EFER,   0xC0000080             // SDM Vol. 4 Table 2-2
.set SEL_CODE64, 0x08                   // tr_gdt below
.set SEL_DATA,   0x10

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

// Offsets inside the blob of the data after the code (the Intel-syntax memory operands below
// take one symbol).
.set TR_GDT_DESC, tr_gdt_desc - ap_trampoline_start
.set TR_PARAMS, tr_params - ap_trampoline_start

.balign 16
.global ap_trampoline_start
ap_trampoline_start:
.code16
    cli                                 // the SIPI enters at offset 0; the data follows
                                        // the code
    // Phase stamps (boot/phases.rs): no memory of this AP's own is known here, so the stamps
    // travel in registers nothing below uses: real mode in EBP:EDI, gathered into R14 in
    // 64-bit mode, which adds its own in R12.
    rdtsc
    mov edi, eax
    mov ebp, edx
    cld
    lgdt cs:[TR_GDT_DESC]
    mov eax, cs:[TR_PARAMS + {P_CR4_BEFORE_PAGING}]
    mov cr4, eax
    mov eax, cs:[TR_PARAMS + {P_CR3_BEFORE_PAGING}]
    mov cr3, eax
    mov ecx, MSR_EFER
    mov eax, cs:[TR_PARAMS + {P_EFER}]
    mov edx, cs:[TR_PARAMS + {P_EFER} + 4]
    wrmsr                               // LME (+ NXE, SCE as on the BSP)
    mov eax, cs:[TR_PARAMS + {P_CR0}]
    mov cr0, eax                        // PE and PG: long mode active (compatibility mode)
    // ljmpl SEL_CODE64:P+tr_start64 (66 EA imm32 sel16)
    .byte 0x66, 0xEA
    TR_RELOC32 tr_start64
    .word SEL_CODE64

.code64
tr_start64:
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r12, rax                        // the 64-bit-mode stamp
    mov eax, ebp                        // (upper halves are undefined after the mode switch:
    shl rax, 32                         // only the 32-bit views are read)
    mov r14d, edi
    or r14, rax                         // the real-mode stamp
    // 64-bit mode's own work before the page is left: the rest of the BSP's CR4 (bits that
    // need long mode: PCIDE, CET) and XCR0 (when CR4.OSXSAVE is set). Each is one instruction
    // that the BSP overwrites with a NOP of the same length where it has nothing to do
    // (trampoline.rs, patch_long_mode_work): a test and branch per choice would end a TCG
    // block each, on the path every AP runs.
    mov rax, [rip + tr_params + {P_CR4}]
.global ap_trampoline_cr4_write
ap_trampoline_cr4_write:
    mov cr4, rax
    xor ecx, ecx
    mov eax, [rip + tr_params + {P_XCR0}]
    mov edx, [rip + tr_params + {P_XCR0} + 4]
.global ap_trampoline_xsetbv
ap_trampoline_xsetbv:
    xsetbv
    fninit
    // Leave the page: the host's page tables need not map it executable, nor at all.
    mov rdx, [rip + tr_params + {P_HOST_CR3}]
    mov rax, [rip + tr_params + {P_LONG_MODE_ENTRY}]
    mov cx, SEL_DATA
    mov ss, cx                          // (TCG ends a block here and after the next one:
    jmp rax                             // the jump, which ends one anyway)

.balign 16
.global ap_trampoline_gdt
ap_trampoline_gdt:
tr_gdt:
    .quad 0
    // Accessed bits preset (type 0xB, 0x3): a segment load would otherwise write them into
    // this page, and under TCG a write to a page of code throws its translations away while
    // other APs are running them (SDM Vol. 3A §3.4.5.1).
    .quad 0x00AF9B000000FFFF            // 0x08: 64-bit code (SDM Vol. 3A §3.4.5)
    .quad 0x00CF93000000FFFF            // 0x10: data
tr_gdt_desc:
    .word tr_gdt_desc - tr_gdt - 1
    TR_RELOC32 tr_gdt

.balign 8
.global ap_trampoline_params
ap_trampoline_params:
tr_params:
    .space {P_SIZE}

.global ap_trampoline_end
ap_trampoline_end:

.pushsection .rodata.ap_trampoline_relocs, "a"
.global ap_trampoline_relocs_end
ap_trampoline_relocs_end:
.popsection
.text
