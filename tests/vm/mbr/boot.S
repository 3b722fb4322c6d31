/* The boot sector of the firmware test (tests/vm/test_mbr.sh): real mode,
 * 512 bytes. Reads LBA 0..2047 through the BIOS (INT 13h AH=42h, 64
 * sectors at a time), prints on COM1
 *     SCUSE-MBR start
 *     SCUSE-MBR sum=XXXXXXXX         the 32-bit sum of the 1 MiB's dwords
 *     SCUSE-MBR marker=...           the NUL-terminated string in LBA 1
 * and leaves QEMU through isa-debug-exit: writing 0x10 to port 0xf4 makes
 * QEMU exit with status 33; a disk error exits with status 3.
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

    xorl %ebp, %ebp                 /* the checksum */
next_chunk:
    movw $64, dap_count
    call read
    pushw %ds
    movw $0x1000, %ax
    movw %ax, %ds
    xorw %si, %si
    movw $8192, %cx                 /* 64 sectors of 128 dwords */
sum:
    addl (%si), %ebp
    addw $4, %si
    loop sum
    popw %ds
    addl $64, dap_lba
    cmpl $2048, dap_lba
    jb next_chunk

    movw $msg_sum, %si
    call puts
    movw $8, %cx
hex:
    roll $4, %ebp
    movw %bp, %ax
    andb $0x0f, %al
    addb $'0', %al
    cmpb $'9', %al
    jbe 1f
    addb $7, %al
1:  call putc
    loop hex
    movw $msg_marker, %si
    call puts

    movl $1, dap_lba                /* LBA 1 again: the marker string */
    movw $1, dap_count
    call read
    pushw %ds
    movw $0x1000, %ax
    movw %ax, %ds
    xorw %si, %si
    movw $64, %cx
2:  lodsb
    testb %al, %al
    jz 3f
    call putc
    loop 2b
3:  popw %ds
    movw $msg_end, %si
    call puts
    movb $0x10, %al                 /* pass: QEMU exits (0x10 << 1) | 1 = 33 */
    outb %al, $0xf4
    hlt

read:                               /* one INT 13h extended read of the DAP */
    movw $dap, %si
    movb drive, %dl
    movb $0x42, %ah
    int $0x13
    jc disk_error
    ret
disk_error:
    movw $msg_error, %si
    call puts
    movb $0x01, %al                 /* fail: exit status 3 */
    outb %al, $0xf4
    hlt

puts:                               /* DS:SI, NUL-terminated */
    lodsb
    testb %al, %al
    jz 4f
    call putc
    jmp puts
4:  ret

putc:                               /* AL to COM1, after the transmitter is empty */
    pushw %dx
    pushw %ax
    movw $0x3fd, %dx
5:  inb %dx, %al
    testb $0x20, %al
    jz 5b
    popw %ax
    movw $0x3f8, %dx
    outb %al, %dx
    popw %dx
    ret

msg_start:  .asciz "\r\nSCUSE-MBR start\r\n"
msg_sum:    .asciz "SCUSE-MBR sum="
msg_marker: .asciz "\r\nSCUSE-MBR marker="
msg_end:    .asciz "\r\n"
msg_error:  .asciz "SCUSE-MBR disk error\r\n"
drive:      .byte 0
    .balign 4
dap:        .byte 0x10, 0
dap_count:  .word 64
            .word 0, 0x1000         /* buffer 1000:0000 */
dap_lba:    .long 0, 0

    .org 510
    .word 0xaa55
