/* The El Torito boot image of the optical firmware test
 * (tests/vm/test_optical.sh): real mode, loaded by the BIOS from a CD
 * ("no emulation", one 2048-byte sector at 07C0:0000). Asks the BIOS the
 * boot drive's sector size (INT 13h AH=48h), reads LBA 16 (the ISO 9660
 * primary volume descriptor, INT 13h AH=42h) and prints on COM1
 *     SCUSE-CD start drive=XX
 *     SCUSE-CD bps=XXXX
 *     SCUSE-CD volid=...            the volume identifier (32 bytes at 40)
 * then leaves QEMU through isa-debug-exit: 0x10 to port 0xf4 makes QEMU
 * exit with status 33; a BIOS error exits with status 3.
 * Built with: as --32, ld -m elf_i386 -Ttext 0x7c00 --oformat binary. */
    .code16
    .text
    .globl _start
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x7c00, %sp
    sti
    movb %dl, drive                 /* the BIOS passes the boot drive in DL */
    movw $msg_start, %si
    call puts
    movb drive, %al
    call hex8

    movw $params, %si               /* extended drive parameters */
    movw $0x1e, (%si)
    movb drive, %dl
    movb $0x48, %ah
    int $0x13
    jc bios_error
    movw $msg_bps, %si
    call puts
    movw params + 24, %ax
    pushw %ax
    movb %ah, %al
    call hex8
    popw %ax
    call hex8

    movw $dap, %si                  /* LBA 16 to 1000:0000 */
    movb drive, %dl
    movb $0x42, %ah
    int $0x13
    jc bios_error
    movw $msg_volid, %si
    call puts
    pushw %ds
    movw $0x1000, %ax
    movw %ax, %ds
    movw $40, %si
    movw $32, %cx
1:  lodsb
    cmpb $' ', %al
    je 2f
    call putc
    loop 1b
2:  popw %ds
    movw $msg_end, %si
    call puts
    movb $0x10, %al                 /* pass: QEMU exits (0x10 << 1) | 1 = 33 */
    outb %al, $0xf4
    hlt

bios_error:
    movw $msg_error, %si
    call puts
    movb $0x01, %al                 /* fail: exit status 3 */
    outb %al, $0xf4
    hlt

hex8:                               /* AL as two hex digits */
    pushw %ax
    shrb $4, %al
    call nibble
    popw %ax
nibble:
    andb $0x0f, %al
    addb $'0', %al
    cmpb $'9', %al
    jbe putc
    addb $7, %al
    /* fall through */
putc:                               /* AL to COM1, after the transmitter is empty */
    pushw %dx
    pushw %ax
    movw $0x3fd, %dx
3:  inb %dx, %al
    testb $0x20, %al
    jz 3b
    popw %ax
    movw $0x3f8, %dx
    outb %al, %dx
    popw %dx
    ret

puts:                               /* DS:SI, NUL-terminated */
    lodsb
    testb %al, %al
    jz 4f
    call putc
    jmp puts
4:  ret

msg_start:  .asciz "\r\nSCUSE-CD start drive="
msg_bps:    .asciz "\r\nSCUSE-CD bps="
msg_volid:  .asciz "\r\nSCUSE-CD volid="
msg_end:    .asciz "\r\n"
msg_error:  .asciz "\r\nSCUSE-CD BIOS error\r\n"
drive:      .byte 0
    .balign 4
dap:        .byte 0x10, 0
            .word 1                 /* one 2048-byte sector */
            .word 0, 0x1000         /* buffer 1000:0000 */
            .long 16, 0             /* LBA 16 */
params:     .fill 0x1e, 1, 0

    .org 2046
    .word 0xaa55
