package diskimagetest

import (
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"testing"
)

// This file writes minimal Windows registry hive ("regf") files for tests:
// hivex can edit a hive but not create one from nothing, and the tests
// must not depend on a real Windows hive. The layout follows the public
// format description (libyal's "Windows NT Registry File (REGF) format"
// and Maxim Suhanov's "Windows registry file format specification"): a
// 4096-byte base block, then hive bins ("hbin") holding cells. Only what
// the tests need is written: keys with ASCII names, REG_DWORD values
// stored inline, "lh" subkey lists, and one shared security cell (hivex
// refcounts it when it adds a key, so a hive without one cannot be
// edited).

// RegKey is a key of a test hive: its name, its REG_DWORD values and its
// subkeys.
type RegKey struct {
	Name    string
	Values  []RegDword
	Subkeys []*RegKey
}

// RegDword is a REG_DWORD value of a test hive.
type RegDword struct {
	Name string
	Data uint32
}

const (
	regfBaseBlockSize = 4096
	regfBinSize       = 4096
	hbinHeaderSize    = 32
	// nk flags: KEY_HIVE_ENTRY marks the root; KEY_NO_DELETE keeps it;
	// KEY_COMP_NAME says the name is stored as ASCII (Latin-1), not UTF-16.
	keyHiveEntry = 0x0004
	keyNoDelete  = 0x0008
	keyCompName  = 0x0020
	regDwordType = 4
)

// regfWriter lays cells out in the hive bins data; offsets are relative to
// its start (the first hbin), as the format's cell offsets are.
type regfWriter struct {
	data []byte
	keys int
}

func (w *regfWriter) put16(off int, v uint16) { binary.LittleEndian.PutUint16(w.data[off:], v) }
func (w *regfWriter) put32(off int, v uint32) { binary.LittleEndian.PutUint32(w.data[off:], v) }

// alloc appends an allocated cell with room for n bytes of payload and
// returns the cell's offset. A cell's size includes its 4-byte size field,
// is a multiple of 8, and is stored negated while the cell is in use.
func (w *regfWriter) alloc(n int) int {
	size := (n + 4 + 7) &^ 7
	off := len(w.data)
	w.data = append(w.data, make([]byte, size)...)
	w.put32(off, uint32(-int32(size)))
	return off
}

// lhHash is the hash an "lh" list stores for a name: h = h*37 + upper(c).
func lhHash(name string) uint32 {
	var h uint32
	for _, c := range strings.ToUpper(name) {
		h = h*37 + uint32(c)
	}
	return h
}

// key writes k and everything under it and returns k's nk cell offset.
func (w *regfWriter) key(k *RegKey, parent, sk int, root bool) int {
	w.keys++
	nk := w.alloc(76 + len(k.Name))
	p := nk + 4
	copy(w.data[p:], "nk")
	flags := uint16(keyCompName)
	if root {
		flags |= keyHiveEntry | keyNoDelete
	}
	w.put16(p+2, flags)
	w.put32(p+16, uint32(parent))
	w.put32(p+28, 0xFFFFFFFF) // subkey list
	w.put32(p+32, 0xFFFFFFFF) // volatile subkey list
	w.put32(p+40, 0xFFFFFFFF) // value list
	w.put32(p+44, uint32(sk))
	w.put32(p+48, 0xFFFFFFFF) // class name: none
	w.put16(p+72, uint16(len(k.Name)))
	copy(w.data[p+76:], k.Name)

	// Subkey lists are sorted by upper-cased name: hivex and Windows
	// binary-search them.
	subs := slices.Clone(k.Subkeys)
	slices.SortFunc(subs, func(a, b *RegKey) int {
		return strings.Compare(strings.ToUpper(a.Name), strings.ToUpper(b.Name))
	})
	var subOffs []int
	maxSub := 0
	for _, s := range subs {
		subOffs = append(subOffs, w.key(s, nk, sk, false))
		maxSub = max(maxSub, 2*len(s.Name))
	}
	if len(subs) > 0 {
		lh := w.alloc(4 + 8*len(subs))
		copy(w.data[lh+4:], "lh")
		w.put16(lh+6, uint16(len(subs)))
		for i, s := range subs {
			w.put32(lh+8+8*i, uint32(subOffs[i]))
			w.put32(lh+12+8*i, lhHash(s.Name))
		}
		w.put32(p+20, uint32(len(subs)))
		w.put32(p+28, uint32(lh))
		w.put32(p+52, uint32(maxSub))
	}

	if len(k.Values) > 0 {
		var vkOffs []int
		maxName := 0
		for _, v := range k.Values {
			vk := w.alloc(20 + len(v.Name))
			q := vk + 4
			copy(w.data[q:], "vk")
			w.put16(q+2, uint16(len(v.Name)))
			// High bit: the 4 data bytes are stored in the offset field.
			w.put32(q+4, 0x80000000|4)
			w.put32(q+8, v.Data)
			w.put32(q+12, regDwordType)
			w.put16(q+16, 1) // VALUE_COMP_NAME: ASCII name
			copy(w.data[q+20:], v.Name)
			vkOffs = append(vkOffs, vk)
			maxName = max(maxName, 2*len(v.Name))
		}
		list := w.alloc(4 * len(vkOffs))
		for i, o := range vkOffs {
			w.put32(list+4+4*i, uint32(o))
		}
		w.put32(p+36, uint32(len(vkOffs)))
		w.put32(p+40, uint32(list))
		w.put32(p+60, uint32(maxName))
		w.put32(p+64, 4)
	}
	return nk
}

// RegfBytes returns a complete hive file whose root key is root.
func RegfBytes(root *RegKey) []byte {
	w := &regfWriter{data: make([]byte, hbinHeaderSize)}
	// One security cell shared by every key. Its descriptor is the minimal
	// self-relative one (revision 1, control SE_SELF_RELATIVE, no owner,
	// group or DACL), which hivex never parses.
	sd := []byte{1, 0, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	sk := w.alloc(20 + len(sd))
	copy(w.data[sk+4:], "sk")
	w.put32(sk+8, uint32(sk))  // flink: a list of one
	w.put32(sk+12, uint32(sk)) // blink
	w.put32(sk+20, uint32(len(sd)))
	copy(w.data[sk+24:], sd)
	rootOff := w.key(root, 0, sk, true)
	w.put32(sk+16, uint32(w.keys)) // reference count: every key uses it

	// One bin, as large as needed (bins are multiples of 4096 bytes); the
	// space after the last cell is a single free cell (positive size).
	used := len(w.data)
	binSize := (used + regfBinSize - 1) / regfBinSize * regfBinSize
	w.data = append(w.data, make([]byte, binSize-used)...)
	if free := binSize - used; free > 0 {
		w.put32(used, uint32(free))
	}
	copy(w.data, "hbin")
	w.put32(4, 0) // this bin's offset in the hive bins data
	w.put32(8, uint32(binSize))

	base := make([]byte, regfBaseBlockSize)
	le := binary.LittleEndian
	copy(base, "regf")
	le.PutUint32(base[4:], 1) // primary sequence number
	le.PutUint32(base[8:], 1) // secondary: equal means the hive is clean
	le.PutUint32(base[20:], 1)
	le.PutUint32(base[24:], 5)
	le.PutUint32(base[28:], 0) // primary file
	le.PutUint32(base[32:], 1) // direct memory load format
	le.PutUint32(base[36:], uint32(rootOff))
	le.PutUint32(base[40:], uint32(binSize))
	le.PutUint32(base[44:], 1) // clustering factor
	var sum uint32
	for i := 0; i < 508; i += 4 {
		sum ^= le.Uint32(base[i:])
	}
	// The format reserves 0 and 0xFFFFFFFF as checksums.
	switch sum {
	case 0:
		sum = 1
	case 0xFFFFFFFF:
		sum = 0xFFFFFFFE
	}
	le.PutUint32(base[508:], sum)
	return append(base, w.data...)
}

// WriteHive writes the hive rooted at root to path.
func WriteHive(t testing.TB, path string, root *RegKey) {
	t.Helper()
	if err := os.WriteFile(path, RegfBytes(root), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSystemHive is a minimal SYSTEM hive: control set 1 current, RDP
// denied, WinDefend automatic and Sense manual.
func TestSystemHive() *RegKey {
	return &RegKey{Name: "ROOT", Subkeys: []*RegKey{
		{Name: "Select", Values: []RegDword{{"Current", 1}, {"Default", 1}, {"Failed", 0}, {"LastKnownGood", 1}}},
		{Name: "ControlSet001", Subkeys: []*RegKey{
			{Name: "Control", Subkeys: []*RegKey{
				{Name: "Terminal Server", Values: []RegDword{{"fDenyTSConnections", 1}}},
			}},
			{Name: "Services", Subkeys: []*RegKey{
				{Name: "WinDefend", Values: []RegDword{{"Start", 2}, {"Type", 16}}},
				{Name: "Sense", Values: []RegDword{{"Start", 3}}},
			}},
		}},
	}}
}
