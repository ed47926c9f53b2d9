package azure

import (
	"bytes"
	"context"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// putBlob uploads data as a block blob and returns it.
func putBlob(t *testing.T, c *container.Client, name string, size int, seed uint64) []byte {
	t.Helper()
	data := make([]byte, size)
	r := mrand.New(mrand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	_, err := c.NewBlockBlobClient(name).UploadBuffer(context.Background(), data, nil)
	require.NoError(t, err)
	return data
}

// cutTransport cuts the body of the first cuts GET responses after limit
// bytes, the way a dropped connection does, and records every Range
// header it sees.
type cutTransport struct {
	mu     sync.Mutex
	cuts   int
	limit  int64
	ranges []string
}

func (ct *cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !loopback(req.URL.Host) {
		return nil, errors.New("cut transport refuses non-loopback host " + req.URL.Host)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet {
		return resp, err
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	// The SDK sets x-ms-range in lower case, bypassing canonicalisation,
	// so the header map is searched without regard to case.
	var r string
	for k, v := range req.Header {
		if (strings.EqualFold(k, "x-ms-range") || strings.EqualFold(k, "range")) && len(v) > 0 {
			r = v[0]
		}
	}
	ct.ranges = append(ct.ranges, r)
	if ct.cuts > 0 {
		ct.cuts--
		resp.Body = &cutBody{rc: resp.Body, left: ct.limit}
	}
	return resp, nil
}

type cutBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("injected connection reset")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cutBody) Close() error { return b.rc.Close() }

// via returns a client for the same container as c that goes through rt,
// with the SDK's retries off so that Download's own loop is what is tested.
func via(t *testing.T, c *container.Client, rt http.RoundTripper) *container.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(devAccount, devKey)
	require.NoError(t, err)
	cc, err := container.NewClientWithSharedKeyCredential(c.URL(), cred, &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &http.Client{Transport: rt},
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}})
	require.NoError(t, err)
	return cc
}

func shortBackoff(t *testing.T) {
	old := downloadBackoff
	downloadBackoff = time.Millisecond
	t.Cleanup(func() { downloadBackoff = old })
}

func TestDownloadFromOffset(t *testing.T) {
	c := newContainer(t, &testTransport{})
	ctx := context.Background()
	const size = 3<<20 + 77
	data := putBlob(t, c, "iso/win.iso", size, 1)

	got, err := BlobSize(ctx, c, "iso/win.iso")
	require.NoError(t, err)
	assert.EqualValues(t, size, got)

	for _, off := range []int64{0, 1, 1234567, size - 1, size} {
		var buf bytes.Buffer
		n, err := Download(ctx, c, "iso/win.iso", off, &buf)
		require.NoError(t, err, "offset %d", off)
		assert.EqualValues(t, size-off, n, "offset %d", off)
		assert.True(t, bytes.Equal(data[off:], buf.Bytes()), "offset %d: content differs", off)
	}
}

func TestDownloadResumesAfterDroppedConnection(t *testing.T) {
	shortBackoff(t)
	c := newContainer(t, &testTransport{})
	const size = 4 << 20
	data := putBlob(t, c, "iso/win.iso", size, 2)
	ct := &cutTransport{cuts: 2, limit: 1 << 20}

	var buf bytes.Buffer
	n, err := Download(context.Background(), via(t, c, ct), "iso/win.iso", 100, &buf)
	require.NoError(t, err)
	assert.EqualValues(t, size-100, n)
	assert.True(t, bytes.Equal(data[100:], buf.Bytes()), "content differs")
	// Each attempt asks for the rest from where the previous one stopped.
	assert.Equal(t, []string{
		"bytes=100-",
		"bytes=" + strconv.Itoa(100+1<<20) + "-",
		"bytes=" + strconv.Itoa(100+2<<20) + "-",
	}, ct.ranges)
}

func TestDownloadGivesUpNamingTheBlob(t *testing.T) {
	shortBackoff(t)
	c := newContainer(t, &testTransport{})
	putBlob(t, c, "iso/win.iso", 1<<20, 3)
	ct := &cutTransport{cuts: 100, limit: 0}

	_, err := Download(context.Background(), via(t, c, ct), "iso/win.iso", 0, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "iso/win.iso")
	assert.Contains(t, err.Error(), "injected connection reset")
	assert.Contains(t, err.Error(), "after 6 attempts")
	assert.Len(t, ct.ranges, DefaultRetries+1)
}

func TestDownloadMissingBlobIsNotRetried(t *testing.T) {
	shortBackoff(t)
	c := newContainer(t, &testTransport{})
	ct := &cutTransport{}

	_, err := Download(context.Background(), via(t, c, ct), "iso/missing.iso", 0, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "iso/missing.iso")
	assert.Len(t, ct.ranges, 1)

	_, err = BlobSize(context.Background(), c, "iso/missing.iso")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "iso/missing.iso")
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestDownloadWriteFailureIsNotRetried(t *testing.T) {
	shortBackoff(t)
	c := newContainer(t, &testTransport{})
	putBlob(t, c, "iso/win.iso", 1<<20, 4)
	ct := &cutTransport{}

	_, err := Download(context.Background(), via(t, c, ct), "iso/win.iso", 0, failingWriter{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk full")
	assert.Contains(t, err.Error(), "iso/win.iso")
	assert.Len(t, ct.ranges, 1)
}
