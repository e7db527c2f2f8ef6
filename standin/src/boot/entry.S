// Boot entry of standin_host: from a multiboot 1 loader's 32-bit protected mode to kmain.
//
// Contract with the loader (QEMU -kernel; -initrd arrives as module 0): paging off, interrupts
// off, flat 4 GiB segments, %eax = 0x2BADB002, %ebx = physical address of the multiboot info.
// This code builds a temporary identity map of the first 4 GiB (2 MiB pages), enters long mode
// and calls kmain(magic, info) on the boot stack; kmain reads the multiboot info through that
// map, then replaces it with the final page tables (paging.rs).

.set MB_MAGIC,            0x1BADB002       // Multiboot 1 spec §3.1.2
.set MB_FLAGS,            0x00010002       // bit 1: memory map wanted; bit 16: address fields
.set MB_LOADER_MAGIC,     0x2BADB002       // %eax from a multiboot loader (§3.2)

.set CR0_PE,  1 << 0     // SDM Vol. 3A §2.5 Control Registers
.set CR0_MP,  1 << 1
.set CR0_NE,  1 << 5
.set CR0_WP,  1 << 16
.set CR0_PG,  1 << 31
.set CR4_PAE, 1 << 5
.set MSR_EFER, 0xC0000080 // SDM Vol. 4 Table 2-2 IA32_EFER
.set EFER_LME, 1 << 8
.set EFER_NXE, 1 << 11

.set PTE_PRESENT, 1 << 0  // SDM Vol. 3A §5.5 (4-level paging) Tables 5-15..5-20
.set PTE_WRITE,   1 << 1
.set PTE_PWT,     1 << 3
.set PTE_PCD,     1 << 4
.set PTE_HUGE,    1 << 7

.set COM1, 0x3F8
.set DEBUG_EXIT_PORT, 0xF4
.set DEBUG_EXIT_FAILURE, 0x11

// ---------------------------------------------------------------------------------------------
.section .multiboot_header, "a"
.balign 4
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long multiboot_header          // header_addr
    .long __image_start             // load_addr
    .long __image_load_end          // load_end_addr
    .long __image_end               // bss_end_addr
    .long multiboot_entry           // entry_addr

// ---------------------------------------------------------------------------------------------
.section .text.boot32, "ax"
.code32

.global multiboot_entry
multiboot_entry:
    cli
    cld
    mov esp, offset boot_stack_top
    mov edi, eax                    // kmain's first argument: the loader's magic
    mov esi, ebx                    // second: the info address

    // Long mode needs CPUID leaf 0x80000001 EDX bit 29 (SDM Vol. 2A CPUID).
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb boot32_no_long_mode
    mov eax, 0x80000001
    cpuid
    bt edx, 29
    jnc boot32_no_long_mode
    mov ebp, edx                    // keep EDX: bit 20 = NX available

    // PML4[0] -> PDPT; PDPT[0..4] -> four page directories of 512 2-MiB pages each.
    mov eax, offset boot_pdpt
    or eax, PTE_PRESENT | PTE_WRITE
    mov [boot_pml4], eax
    xor ecx, ecx
1:  mov eax, ecx
    shl eax, 12
    add eax, offset boot_pd
    or eax, PTE_PRESENT | PTE_WRITE
    mov [boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jb 1b
    // Entry i maps physical i * 2 MiB; the fourth GiB (MMIO hole) uncached.
    xor ecx, ecx
2:  mov eax, ecx
    shl eax, 21
    or eax, PTE_PRESENT | PTE_WRITE | PTE_HUGE
    cmp ecx, 1536
    jb 3f
    or eax, PTE_PCD | PTE_PWT
3:  mov [boot_pd + ecx * 8], eax
    mov dword ptr [boot_pd + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 2048
    jb 2b

    mov eax, cr4
    or eax, CR4_PAE
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_LME
    bt ebp, 20
    jnc 4f
    or eax, EFER_NXE
4:  wrmsr
    mov eax, CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG
    mov cr0, eax

    lgdt [boot_gdt_desc]
    // ljmp 0x08:boot64, encoded by hand (EA imm32 sel16) to avoid assembler syntax differences.
    .byte 0xEA
    .long boot64
    .word 0x08

boot32_no_long_mode:
    mov esi, offset boot32_no_long_mode_msg
    mov dx, COM1
5:  lodsb
    test al, al
    jz 6f
    out dx, al
    jmp 5b
6:  mov al, DEBUG_EXIT_FAILURE
    out DEBUG_EXIT_PORT, al
7:  hlt
    jmp 7b

.code64
boot64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + boot_stack_top]
    mov edi, edi                    // zero-extend (magic, info)
    mov esi, esi
    xor ebp, ebp
    call kmain
    ud2

// ---------------------------------------------------------------------------------------------
.section .rodata
boot32_no_long_mode_msg:
    .asciz "standin: not booted by multiboot on a 64-bit CPU; stopping\r\n"

.balign 16
boot_gdt:
    .quad 0                         // null
    .quad 0x00AF9A000000FFFF        // 0x08: 64-bit code, DPL 0 (SDM Vol. 3A §3.4.5)
    .quad 0x00CF92000000FFFF        // 0x10: data, DPL 0
boot_gdt_end:
boot_gdt_desc:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

.section .bss
.balign 4096
boot_pml4:  .space 4096
boot_pdpt:  .space 4096
boot_pd:    .space 4096 * 4
.balign 16
.global boot_stack_bottom
boot_stack_bottom:
    .space 65536
boot_stack_top:
