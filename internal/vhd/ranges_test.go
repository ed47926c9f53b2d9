package vhd

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkCover verifies the DataRanges contract against the file's bytes:
// ranges are sorted, disjoint, 512-aligned, within bounds and maxRange,
// cover every non-zero byte, and total at most chunkSize per data chunk.
func checkCover(t *testing.T, path string, size, chunk, maxRange int64, got []Range) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Len(t, data, int(size))
	var total, end int64
	for _, r := range got {
		assert.Zero(t, r.Offset%512, "offset %d aligned", r.Offset)
		assert.True(t, r.Length%512 == 0 || r.Offset+r.Length == size, "length %d aligned", r.Length)
		assert.Positive(t, r.Length)
		assert.LessOrEqual(t, r.Length, maxRange)
		assert.GreaterOrEqual(t, r.Offset, end, "sorted and disjoint")
		assert.LessOrEqual(t, r.Offset+r.Length, size)
		end = r.Offset + r.Length
		total += r.Length
	}
	dataChunks := int64(0)
	for off := int64(0); off < size; off += chunk {
		if !allZero(data[off:min(off+chunk, size)]) {
			dataChunks++
		}
	}
	assert.LessOrEqual(t, total, dataChunks*chunk)
	for i, c := range data {
		if c == 0 {
			continue
		}
		in := false
		for _, r := range got {
			if int64(i) >= r.Offset && int64(i) < r.Offset+r.Length {
				in = true
				break
			}
		}
		if !assert.True(t, in, "non-zero byte at %d not covered by %v", i, got) {
			return
		}
	}
}

func allZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

func TestDataRanges(t *testing.T) {
	const chunk = 64 * 1024
	const size = 64 * chunk // 4 MiB
	tests := []struct {
		name     string
		data     map[int64][]byte
		maxRange int64
		want     []Range
	}{
		{"all zero", nil, 4 * chunk, nil},
		{"start", map[int64][]byte{0: {1}}, 4 * chunk, []Range{{0, chunk}}},
		{"end", map[int64][]byte{size - 1: {1}}, 4 * chunk, []Range{{size - chunk, chunk}}},
		{"straddle", map[int64][]byte{3*chunk - 2: {1, 2, 3, 4}}, 4 * chunk, []Range{{2 * chunk, 2 * chunk}}},
		{"straddle into max", map[int64][]byte{3*chunk - 2: {1, 2, 3, 4}}, chunk, []Range{{2 * chunk, chunk}, {3 * chunk, chunk}}},
		{"separate", map[int64][]byte{10: {1}, 5*chunk + 7: {9}}, 4 * chunk, []Range{{0, chunk}, {5 * chunk, chunk}}},
		{"every chunk", everyChunk(size, chunk), 16 * chunk,
			[]Range{{0, 16 * chunk}, {16 * chunk, 16 * chunk}, {32 * chunk, 16 * chunk}, {48 * chunk, 16 * chunk}}},
		{"every chunk one range", everyChunk(size, chunk), size, []Range{{0, size}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := sparseRaw(t, size, tt.data)
			f, err := os.Open(path)
			require.NoError(t, err)
			defer f.Close()
			got, err := DataRanges(f, size, chunk, tt.maxRange)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			checkCover(t, path, size, chunk, tt.maxRange, got)

			// Without hole detection (a plain ReaderAt) the answer is the same.
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			got2, err := DataRanges(bytes.NewReader(data), size, chunk, tt.maxRange)
			require.NoError(t, err)
			assert.Equal(t, got, got2)
		})
	}
}

// everyChunk puts a non-zero byte at a different position in every chunk.
func everyChunk(size, chunk int64) map[int64][]byte {
	m := map[int64][]byte{}
	for off := int64(0); off < size; off += chunk {
		m[off+(off/chunk*4099)%chunk] = []byte{0xff}
	}
	return m
}

func TestDataRangesRandom(t *testing.T) {
	const chunk = 8192
	size := int64(3*MiB + 1536) // not a chunk multiple: the last chunk is short
	rng := rand.New(rand.NewPCG(1, 2))
	data := map[int64][]byte{size - 1: {7}}
	for range 40 {
		b := make([]byte, 1+rng.IntN(20000))
		for i := range b {
			b[i] = byte(1 + rng.IntN(255))
		}
		off := rng.Int64N(size - int64(len(b)))
		data[off] = b
	}
	path := sparseRaw(t, size, data)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	got, err := DataRanges(f, size, chunk, 5*chunk)
	require.NoError(t, err)
	require.NotEmpty(t, got)
	checkCover(t, path, size, chunk, 5*chunk, got)
}

func TestDataRangesArguments(t *testing.T) {
	r := bytes.NewReader(make([]byte, 4096))
	for _, c := range []struct {
		chunk, max int64
		msg        string
	}{
		{0, 4096, "multiple of 512"},
		{1000, 4096, "multiple of 512"},
		{1024, 512, "smaller than the chunk size"},
	} {
		_, err := DataRanges(r, 4096, c.chunk, c.max)
		require.Error(t, err)
		assert.Contains(t, err.Error(), c.msg)
	}
	_, err := DataRanges(r, 8192, 1024, 4096)
	require.Error(t, err, "reading past the end of the data is an error")
	assert.Contains(t, err.Error(), "offset 4096")
}

func BenchmarkDataRanges8GiB5Percent(b *testing.B) {
	const size = 8 << 30
	const chunk = 4 * MiB
	path := sparseRaw(b, size, nil)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(b, err)
	defer f.Close()
	src := rand.NewChaCha8([32]byte{42})
	rng := rand.New(src)
	buf := make([]byte, chunk)
	nChunks := size / chunk
	filled := 0
	for _, c := range rng.Perm(nChunks)[:nChunks/20] {
		_, _ = src.Read(buf)
		_, err := f.WriteAt(buf, int64(c)*chunk)
		require.NoError(b, err)
		filled++
	}
	b.SetBytes(size)
	for b.Loop() {
		got, err := DataRanges(f, size, chunk, chunk)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != filled {
			b.Fatalf("got %d ranges, want %d", len(got), filled)
		}
	}
}
