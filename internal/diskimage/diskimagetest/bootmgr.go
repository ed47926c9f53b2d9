package diskimagetest

// BootMarker is what FakeBootmgr writes to COM1.
const BootMarker = "CIB-BOOTMGR-OK"

// FakeBootmgr is a stand-in for Windows' bootmgr: 16-bit real-mode code
// that GRUB's ntldr loads at 2000:0000 and jumps to (CS=0x2000, IP=0, DS=0).
// It writes BootMarker and CRLF to COM1, waiting for the UART's transmit
// holding register to be empty before each byte, then writes to QEMU's
// isa-debug-exit port 0xF4 (QEMU exits with status (1<<1)|1 = 3), and,
// should that port be absent, halts with interrupts off. It is padded with
// zeros to 16 KiB so that NTFS stores it non-resident (in clusters outside
// the MFT), as it stores the real, 400 KiB bootmgr.
func FakeBootmgr() []byte {
	msg := append([]byte(BootMarker+"\r\n"), 0)
	code := []byte{
		0x0E,             // 00: push cs
		0x1F,             // 01: pop ds          ; DS = CS, to address msg
		0xFC,             // 02: cld
		0xBE, 0x21, 0x00, // 03: mov si, msg (0x21)
		0xBA, 0xFD, 0x03, // 06: next: mov dx, 0x3FD ; COM1 line status
		0xEC,       // 09: wait: in al, dx
		0xA8, 0x20, // 0A: test al, 0x20     ; transmit holding register empty?
		0x74, 0xFB, // 0C: jz wait
		0xAC,       // 0E: lodsb
		0x84, 0xC0, // 0F: test al, al
		0x74, 0x06, // 11: jz done
		0xBA, 0xF8, 0x03, // 13: mov dx, 0x3F8 ; COM1 data
		0xEE,       // 16: out dx, al
		0xEB, 0xED, // 17: jmp next
		0xB0, 0x01, // 19: done: mov al, 1
		0xE6, 0xF4, // 1B: out 0xF4, al    ; isa-debug-exit
		0xFA,       // 1D: stop: cli
		0xF4,       // 1E: hlt
		0xEB, 0xFD, // 1F: jmp stop+1
	}
	if len(code) != 0x21 {
		panic("FakeBootmgr: msg offset is wrong")
	}
	b := make([]byte, 16<<10)
	copy(b, append(code, msg...))
	return b
}
