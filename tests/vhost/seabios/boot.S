# Boot sector for test_seabios.sh. SeaBIOS loads it from the vhost-user-scsi
# disk; it reads LBA 1 and LBA 60001 of the boot drive through the INT 13h
# extensions (AH=42h, which SeaBIOS turns into READ(10)s) and prints the
# NUL-terminated text each sector starts with on COM1. On the first boot
# it marks CMOS byte 0x34 and resets the machine (keyboard controller), so
# QEMU stops and restarts the device's rings and SeaBIOS boots it again;
# on the second boot it clears the mark and ends QEMU through
# isa-debug-exit: 0x10 (QEMU exits 33), or 0x01 (exits 3) when a read fails.
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
    mov $0x34, %al
    out %al, $0x70
    in $0x71, %al
    mov %al, boots
    mov $first, %si
    cmpb $0x5a, boots
    jne 1f
    mov $second, %si
1:  call puts
    movl $1, lba
    call read_print
    movl $60001, lba
    call read_print
    mov $0x34, %al
    out %al, $0x70
    cmpb $0x5a, boots
    je done
    mov $0x5a, %al
    out %al, $0x71
    mov $0xfe, %al          # pulse the reset line
    out %al, $0x64
    hlt
done:
    xor %al, %al
    out %al, $0x71
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
boots:
    .byte 0
first:
    .asciz "SCUSE-BOOT first boot\n"
second:
    .asciz "SCUSE-BOOT second boot\n"
fail:
    .asciz "SCUSE-BOOT read failed\n"

    .org 510
    .word 0xaa55
