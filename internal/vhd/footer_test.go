package vhd

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGeometry(t *testing.T) {
	// Expected values worked through the specification's CHS algorithm by hand.
	tests := []struct {
		name string
		size int64
		c    uint16
		h, s uint8
	}{
		// 20480 sectors: spt 17, cth 1204, heads 2 raised to 4.
		{"10MiB", 10 * MiB, 301, 4, 17},
		// 2097152 sectors: 17 gives 121 heads, 31 gives cth 67650 >= 16384, so 63.
		{"1GiB", 1 << 30, 2080, 16, 63},
		// 4194304 sectors: 63 sectors, cth 66576.
		{"2GiB", 2 << 30, 4161, 16, 63},
		// 134217728 sectors >= 65535*16*63: 255 sectors, cth 526344.
		{"64GiB", 64 << 30, 32896, 16, 255},
		// Exactly the cap.
		{"cap", maxGeometrySectors * 512, 65535, 16, 255},
		// Beyond the cap the geometry stays at the maximum.
		{"200GiB", 200 << 30, 65535, 16, 255},
		{"zero", 0, 0, 4, 17},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, h, s := Geometry(tt.size)
			assert.Equal(t, []int{int(tt.c), int(tt.h), int(tt.s)}, []int{int(c), int(h), int(s)})
		})
	}
}

func testID() [16]byte {
	return [16]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
}

func TestFooterRoundTrip(t *testing.T) {
	created := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	f, err := NewFixedFooter(64<<30, testID(), created)
	require.NoError(t, err)
	b, err := f.MarshalBinary()
	require.NoError(t, err)
	require.Len(t, b, FooterSize)

	// Spot-check the raw layout against the specification's offsets.
	assert.Equal(t, "conectix", string(b[0:8]))
	assert.Equal(t, uint32(2), binary.BigEndian.Uint32(b[8:]))
	assert.Equal(t, uint32(0x00010000), binary.BigEndian.Uint32(b[12:]))
	assert.Equal(t, uint64(0xFFFFFFFFFFFFFFFF), binary.BigEndian.Uint64(b[16:]))
	assert.Equal(t, uint32(created.Sub(vhdEpoch)/time.Second), binary.BigEndian.Uint32(b[24:]))
	assert.Equal(t, "win ", string(b[28:32]))
	assert.Equal(t, "Wi2k", string(b[36:40]))
	assert.Equal(t, uint64(64<<30), binary.BigEndian.Uint64(b[40:]))
	assert.Equal(t, uint64(64<<30), binary.BigEndian.Uint64(b[48:]))
	assert.Equal(t, uint16(32896), binary.BigEndian.Uint16(b[56:]))
	assert.Equal(t, []byte{16, 255}, b[58:60])
	assert.Equal(t, uint32(2), binary.BigEndian.Uint32(b[60:]))
	assert.Equal(t, testID(), [16]byte(b[68:84]))
	assert.Equal(t, make([]byte, FooterSize-84), b[84:], "saved state and reserved bytes are zero")

	// Checksum: one's complement of the byte sum with the field zeroed.
	var sum uint32
	for i, c := range b {
		if i < 64 || i >= 68 {
			sum += uint32(c)
		}
	}
	assert.Equal(t, ^sum, binary.BigEndian.Uint32(b[64:]))

	g, err := ParseFooter(b)
	require.NoError(t, err)
	assert.Equal(t, f, g)
}

func TestParseFooterErrors(t *testing.T) {
	f, err := NewFixedFooter(10*MiB, testID(), time.Now())
	require.NoError(t, err)
	good, err := f.MarshalBinary()
	require.NoError(t, err)

	t.Run("flipped byte", func(t *testing.T) {
		for _, i := range []int{0 + 9, 48 + 7, 70, 300, 65} {
			b := append([]byte(nil), good...)
			b[i] ^= 0x01
			_, err := ParseFooter(b)
			require.Error(t, err, "byte %d", i)
			assert.Contains(t, err.Error(), "checksum", "byte %d", i)
		}
	})
	t.Run("wrong cookie", func(t *testing.T) {
		b := append([]byte(nil), good...)
		copy(b, "cxsparse")
		_, err := ParseFooter(b)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "cookie")
	})
	t.Run("dynamic disk", func(t *testing.T) {
		g := *f
		g.DiskType = 3
		b, err := g.MarshalBinary()
		require.NoError(t, err)
		_, err = ParseFooter(b)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "dynamic")
	})
	t.Run("short", func(t *testing.T) {
		_, err := ParseFooter(good[:511])
		require.Error(t, err)
		assert.Contains(t, err.Error(), "511")
	})
}

func TestNewFixedFooterRefusesPartialMiB(t *testing.T) {
	for _, size := range []int64{0, -MiB, MiB + 512, 10*MiB - 1} {
		_, err := NewFixedFooter(size, testID(), time.Now())
		require.Error(t, err, "size %d", size)
		assert.Contains(t, err.Error(), "whole number of MiB")
		assert.Contains(t, err.Error(), "Azure")
	}
	_, err := NewFixedFooter(MiB, testID(), time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "2000-01-01")
}
