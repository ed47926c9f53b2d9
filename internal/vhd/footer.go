// Package vhd writes and reads fixed VHD images, the only disk format Azure
// accepts for uploaded page-blob disks, and finds the parts of a disk that
// hold data so that uploads can skip the (usually vast) all-zero regions.
//
// The footer layout follows Microsoft's "Virtual Hard Disk Image Format
// Specification" (version 1.0, October 2006), section "Hard Disk Footer
// Format"; every multi-byte field is big-endian.
package vhd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// FooterSize is the size of the VHD footer that ends every VHD file.
const FooterSize = 512

// MiB is one mebibyte; Azure requires the virtual size of an uploaded VHD to
// be a whole number of them.
const MiB = 1 << 20

// Footer field values written by NewFixedFooter.
const (
	// Cookie identifies a VHD footer ("conectix", from Connectix, the
	// original author of Virtual PC).
	Cookie = "conectix"
	// FeaturesReserved is the features bit the specification says must
	// always be set.
	FeaturesReserved uint32 = 0x00000002
	// FileFormatVersion is the only version the specification defines (1.0).
	FileFormatVersion uint32 = 0x00010000
	// FixedDataOffset is the data offset of a fixed disk, which has no
	// dynamic header.
	FixedDataOffset uint64 = 0xFFFFFFFFFFFFFFFF
	// CreatorApplication is "win ", what Hyper-V writes. Readers such as
	// qemu take the size of a VHD from an unknown creator from its CHS
	// geometry, which rounds down: a converted image would silently lose its
	// last sectors (a GPT disk its backup header). With "win " they use the
	// footer's current size, as Azure does.
	CreatorApplication = "win "
	// CreatorVersion is cib's footer-writer version in the specification's
	// major.minor (16.16 bit) encoding: 1.0. Bump it if the footer contents
	// ever change, so images from different writers can be told apart.
	CreatorVersion uint32 = 0x00010000
	// CreatorHostOSWindows is "Wi2k", the host OS code Hyper-V and the Azure
	// tools write. cib may run on Linux, but the specification only defines
	// Windows ("Wi2k") and Macintosh ("Mac "), and the image is a Windows
	// disk destined for Azure, so we match what Azure's own tools produce.
	CreatorHostOSWindows = "Wi2k"
	// DiskTypeFixed is the disk type of a fixed-size VHD.
	DiskTypeFixed uint32 = 2
)

// vhdEpoch is the origin of the footer timestamp (the specification counts
// seconds from 2000-01-01 00:00:00 UTC).
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Footer is the 512-byte trailer of a VHD file, one field per field of the
// specification, in on-disk order. The 427 reserved bytes after SavedState
// are always zero and are not represented.
type Footer struct {
	// Cookie must be "conectix".
	Cookie [8]byte
	// Features is a bit field; bit 1 (0x2) is reserved and always set.
	Features uint32
	// FileFormatVersion is 0x00010000 (1.0).
	FileFormatVersion uint32
	// DataOffset is the offset of the dynamic header; all ones for fixed disks.
	DataOffset uint64
	// Timestamp is the creation time in seconds since 2000-01-01 UTC.
	Timestamp uint32
	// CreatorApplication is the four-character code of the writing tool.
	CreatorApplication [4]byte
	// CreatorVersion is the writing tool's version (major<<16 | minor).
	CreatorVersion uint32
	// CreatorHostOS is the four-character code of the writing host's OS.
	CreatorHostOS [4]byte
	// OriginalSize is the virtual size in bytes at creation.
	OriginalSize uint64
	// CurrentSize is the current virtual size in bytes.
	CurrentSize uint64
	// Cylinders is the C of the CHS geometry.
	Cylinders uint16
	// Heads is the H of the CHS geometry.
	Heads uint8
	// SectorsPerTrack is the S of the CHS geometry.
	SectorsPerTrack uint8
	// DiskType is 2 for fixed, 3 for dynamic, 4 for differencing.
	DiskType uint32
	// Checksum is the one's complement of the byte sum of the footer with
	// this field taken as zero.
	Checksum uint32
	// UniqueID identifies the disk (a UUID).
	UniqueID [16]byte
	// SavedState is 1 when the disk is in a saved state; always 0 here.
	SavedState uint8
}

// Field offsets within the footer, from the specification's table.
const (
	offCookie     = 0
	offFeatures   = 8
	offVersion    = 12
	offDataOffset = 16
	offTimestamp  = 24
	offCreatorApp = 28
	offCreatorVer = 32
	offCreatorOS  = 36
	offOrigSize   = 40
	offCurSize    = 48
	offCylinders  = 56
	offHeads      = 58
	offSectors    = 59
	offDiskType   = 60
	offChecksum   = 64
	offUniqueID   = 68
	offSavedState = 84
)

// maxGeometrySectors is the largest disk the CHS fields can describe
// (65535 cylinders × 16 heads × 255 sectors per track).
const maxGeometrySectors = 65535 * 16 * 255

// Geometry computes CHS per the VHD specification's algorithm (appendix
// "CHS Calculation") for a size in bytes. Disks larger than the CHS fields
// can express get the maximum geometry; the real size lives in CurrentSize.
func Geometry(size int64) (cylinders uint16, heads, sectorsPerTrack uint8) {
	totalSectors := size / 512
	if totalSectors < 0 {
		totalSectors = 0
	}
	if totalSectors > maxGeometrySectors {
		totalSectors = maxGeometrySectors
	}
	var spt, hds, cth int64
	if totalSectors >= 65535*16*63 {
		spt = 255
		hds = 16
		cth = totalSectors / spt
	} else {
		spt = 17
		cth = totalSectors / spt
		hds = (cth + 1023) / 1024
		if hds < 4 {
			hds = 4
		}
		if cth >= hds*1024 || hds > 16 {
			spt = 31
			hds = 16
			cth = totalSectors / spt
		}
		if cth >= hds*1024 {
			spt = 63
			hds = 16
			cth = totalSectors / spt
		}
	}
	return uint16(cth / hds), uint8(hds), uint8(spt)
}

// NewFixedFooter makes the footer of a fixed disk of size bytes. The size
// must be a positive multiple of 1 MiB because Azure rejects VHDs whose
// virtual size is not a whole number of MiB; refusing here catches the
// mistake before a long upload does.
func NewFixedFooter(size int64, uniqueID [16]byte, created time.Time) (*Footer, error) {
	if size <= 0 || size%MiB != 0 {
		return nil, fmt.Errorf("vhd: virtual size %d bytes is not a positive whole number of MiB, which Azure requires for VHDs", size)
	}
	secs := created.Sub(vhdEpoch) / time.Second
	if created.Before(vhdEpoch) || secs > 0xFFFFFFFF {
		return nil, fmt.Errorf("vhd: creation time %s cannot be stored in a VHD timestamp (seconds since 2000-01-01 UTC, 32 bits)", created.UTC().Format(time.RFC3339))
	}
	f := &Footer{
		Features:          FeaturesReserved,
		FileFormatVersion: FileFormatVersion,
		DataOffset:        FixedDataOffset,
		Timestamp:         uint32(secs),
		CreatorVersion:    CreatorVersion,
		OriginalSize:      uint64(size),
		CurrentSize:       uint64(size),
		DiskType:          DiskTypeFixed,
		UniqueID:          uniqueID,
	}
	copy(f.Cookie[:], Cookie)
	copy(f.CreatorApplication[:], CreatorApplication)
	copy(f.CreatorHostOS[:], CreatorHostOSWindows)
	f.Cylinders, f.Heads, f.SectorsPerTrack = Geometry(size)
	f.Checksum = checksum(f.encode())
	return f, nil
}

// encode lays the fields out as on disk, with the stored Checksum as is.
func (f *Footer) encode() []byte {
	b := make([]byte, FooterSize)
	be := binary.BigEndian
	copy(b[offCookie:], f.Cookie[:])
	be.PutUint32(b[offFeatures:], f.Features)
	be.PutUint32(b[offVersion:], f.FileFormatVersion)
	be.PutUint64(b[offDataOffset:], f.DataOffset)
	be.PutUint32(b[offTimestamp:], f.Timestamp)
	copy(b[offCreatorApp:], f.CreatorApplication[:])
	be.PutUint32(b[offCreatorVer:], f.CreatorVersion)
	copy(b[offCreatorOS:], f.CreatorHostOS[:])
	be.PutUint64(b[offOrigSize:], f.OriginalSize)
	be.PutUint64(b[offCurSize:], f.CurrentSize)
	be.PutUint16(b[offCylinders:], f.Cylinders)
	b[offHeads] = f.Heads
	b[offSectors] = f.SectorsPerTrack
	be.PutUint32(b[offDiskType:], f.DiskType)
	be.PutUint32(b[offChecksum:], f.Checksum)
	copy(b[offUniqueID:], f.UniqueID[:])
	b[offSavedState] = f.SavedState
	return b
}

// checksum is the one's complement of the sum of all footer bytes except
// the checksum field itself, as the specification defines it.
func checksum(b []byte) uint32 {
	var sum uint32
	for i, c := range b {
		if i >= offChecksum && i < offChecksum+4 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// MarshalBinary returns the 512-byte on-disk footer. The checksum is
// recomputed from the other fields, so a footer edited after NewFixedFooter
// still serialises to a valid one.
func (f *Footer) MarshalBinary() ([]byte, error) {
	b := f.encode()
	binary.BigEndian.PutUint32(b[offChecksum:], checksum(b))
	return b, nil
}

// ParseFooter decodes a 512-byte footer and validates the cookie, the
// checksum and the disk type; only fixed disks are accepted because that is
// all Azure takes and all this package writes.
func ParseFooter(b []byte) (*Footer, error) {
	if len(b) != FooterSize {
		return nil, fmt.Errorf("vhd: footer is %d bytes, want %d", len(b), FooterSize)
	}
	if !bytes.Equal(b[offCookie:offCookie+8], []byte(Cookie)) {
		return nil, fmt.Errorf("vhd: footer cookie is %q, want %q (not a VHD footer)", b[offCookie:offCookie+8], Cookie)
	}
	be := binary.BigEndian
	f := &Footer{
		Features:          be.Uint32(b[offFeatures:]),
		FileFormatVersion: be.Uint32(b[offVersion:]),
		DataOffset:        be.Uint64(b[offDataOffset:]),
		Timestamp:         be.Uint32(b[offTimestamp:]),
		CreatorVersion:    be.Uint32(b[offCreatorVer:]),
		OriginalSize:      be.Uint64(b[offOrigSize:]),
		CurrentSize:       be.Uint64(b[offCurSize:]),
		Cylinders:         be.Uint16(b[offCylinders:]),
		Heads:             b[offHeads],
		SectorsPerTrack:   b[offSectors],
		DiskType:          be.Uint32(b[offDiskType:]),
		Checksum:          be.Uint32(b[offChecksum:]),
		SavedState:        b[offSavedState],
	}
	copy(f.Cookie[:], b[offCookie:])
	copy(f.CreatorApplication[:], b[offCreatorApp:])
	copy(f.CreatorHostOS[:], b[offCreatorOS:])
	copy(f.UniqueID[:], b[offUniqueID:])
	if want := checksum(b); f.Checksum != want {
		return nil, fmt.Errorf("vhd: footer checksum is %#08x, computed %#08x (footer corrupt)", f.Checksum, want)
	}
	if f.DiskType != DiskTypeFixed {
		return nil, fmt.Errorf("vhd: disk type is %d (%s), only fixed (2) is supported", f.DiskType, diskTypeName(f.DiskType))
	}
	return f, nil
}

// diskTypeName makes disk-type errors readable.
func diskTypeName(t uint32) string {
	switch t {
	case 0:
		return "none"
	case 2:
		return "fixed"
	case 3:
		return "dynamic"
	case 4:
		return "differencing"
	default:
		return "unknown"
	}
}
