# Boot sector for test_seabios.sh. SeaBIOS loads it from the vhost-user-scsi
# disk; it reads LBA 1 and LBA 60001 of the boot drive through the INT 13h
# extensions (AH=42h, which SeaBIOS turns into READ(10)s), prints the
# NUL-terminated text each sector starts with on COM1, and ends QEMU
# through isa-debug-exit: 0x10 (QEMU exits 33), or 0x01 (exits 3) when a
# read fails.
    .code16
    .text
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    sti
    mov %dl, drive
    mov $hello, %si
    call puts
    movl $1, lba
    call read_print
    movl $60001, lba
    call read_print
    mov $0x10, %al
    out %al, $0xf4
    hlt

read_print:
    mov $0x42, %ah
    mov drive, %dl
    mov $dap, %si
    int $0x13
    jc failed
    mov $0x8000, %si
    call puts
    ret

failed:
    mov $fail, %si
    call puts
    mov $0x01, %al
    out %al, $0xf4
    hlt

puts:
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  ret

dap:
    .byte 0x10, 0
    .word 1                 # sectors
    .word 0x8000, 0         # buffer offset, segment
lba:
    .long 0, 0
drive:
    .byte 0
hello:
    .asciz "SCUSE-BOOT start\n"
fail:
    .asciz "SCUSE-BOOT read failed\n"

    .org 510
    .word 0xaa55
