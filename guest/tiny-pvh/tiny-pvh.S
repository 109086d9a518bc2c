/*
 * tiny-pvh: the smallest guest qarax boots. An ELF64 with a Xen PVH entry note, entered by the
 * VMM in 32-bit protected mode (paging and interrupts off, %ebx = physical address of the
 * hvm_start_info block). It
 *   1. writes "QARAX-GUEST-READY\n" to COM1 (port 0x3f8),
 *   2. writes 0x01 to the debug port 0x80 (cloud-hypervisor logs it with a timestamp: a
 *      boot-phase marker for the benchmark harness),
 *   3. if the kernel command line contains "qarax.poweroff=1", ends the VM: 0x34 to port 0x600
 *      (cloud-hypervisor's ACPI sleep control, S5), then 0x00 to port 0xf4 (QEMU's
 *      isa-debug-exit, when configured at iobase 0xf4); otherwise
 *   4. halts forever, so pause, resume, reboot and stop can be exercised.
 * It uses no stack and no instruction the kvm_pvm emulator lacks.
 */
    .code32
    .section .text, "ax"
    .globl pvh_start
pvh_start:
    cli
    cld
    movl    %ebx, %ebp                  /* keep the start-info pointer */

    /* 1. the ready marker on COM1 */
    movl    $ready_msg, %esi
    movw    $0x3f8, %dx
1:  lodsb
    testb   %al, %al
    jz      2f
    outb    %al, %dx
    jmp     1b

    /* 2. debug-port marker */
2:  movb    $0x01, %al
    outb    %al, $0x80

    /* 3. look for "qarax.poweroff=1" in the command line (hvm_start_info.cmdline_paddr at +24) */
    testl   %ebp, %ebp
    jz      halt
    movl    24(%ebp), %esi              /* low 32 bits of cmdline_paddr: guests live below 4 GiB */
    testl   %esi, %esi
    jz      halt
scan:
    movb    (%esi), %al
    testb   %al, %al
    jz      halt
    movl    %esi, %ecx                  /* candidate start */
    movl    $poweroff_key, %edi
cmp_next:
    movb    (%edi), %ah
    testb   %ah, %ah
    jz      poweroff                    /* whole key matched */
    movb    (%ecx), %al
    cmpb    %ah, %al
    jne     no_match
    incl    %ecx
    incl    %edi
    jmp     cmp_next
no_match:
    incl    %esi
    jmp     scan

poweroff:
    movb    $0x34, %al                  /* SLP_TYP=5 | SLP_EN: ACPI S5 on cloud-hypervisor */
    movw    $0x600, %dx
    outb    %al, %dx
    movb    $0x00, %al                  /* QEMU isa-debug-exit: exit code (0 << 1) | 1 */
    outb    %al, $0xf4
halt:
    hlt
    jmp     halt

    .section .rodata, "a"
ready_msg:
    .asciz  "QARAX-GUEST-READY\n"
poweroff_key:
    .asciz  "qarax.poweroff=1"

    /* XEN_ELFNOTE_PHYS32_ENTRY (18): the 32-bit physical entry point, read by the VMM. */
    .section .note.Xen, "a", @note
    .balign 4
    .long   4                           /* namesz: "Xen\0" */
    .long   8                           /* descsz */
    .long   18                          /* type: XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz  "Xen"
    .balign 4
    .quad   pvh_start
    .balign 4
