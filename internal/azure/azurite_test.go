package azure

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/cib-project/cib/internal/azure/azuritetest"
)

// The well-known Azurite development account (azuritetest's), under the
// names the tests of this package use.
const (
	devAccount = azuritetest.Account
	devKey     = azuritetest.Key
)

var (
	cleanups    []func() // run after all tests and benchmarks
	azuriteURL  string   // http://127.0.0.1:<port>/devstoreaccount1, empty if not running
	azuriteSkip string   // why Azurite is unavailable
)

func TestMain(m *testing.M) {
	url, stop, err := azuritetest.Start()
	if err != nil {
		azuriteSkip = err.Error()
	}
	azuriteURL = url
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

// needAzurite skips t when Azurite could not be started, except on CI,
// where a missing emulator must not silently turn the storage tests off.
func needAzurite(t testing.TB) {
	t.Helper()
	if azuriteURL != "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("azurite unavailable under CI: %s", azuriteSkip)
	}
	t.Skipf("azurite unavailable: %s", azuriteSkip)
}

// testTransport counts PUT body bytes that actually left the client and,
// when fail is set, fails chosen requests with a network-style error
// before they are sent: the fault-injection seam for the retry tests.
type testTransport struct {
	putBytes atomic.Int64
	fail     func(*http.Request) bool
}

func (t *testTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !loopback(req.URL.Host) {
		return nil, fmt.Errorf("test transport refuses non-loopback host %s", req.URL.Host)
	}
	if t.fail != nil && t.fail(req) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errors.New("injected fault")
	}
	if req.Method == http.MethodPut && req.Body != nil {
		req.Body = &countingBody{ReadCloser: req.Body, n: &t.putBytes}
	}
	return http.DefaultTransport.RoundTrip(req)
}

func loopback(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// newContainer creates a fresh container for one test, reached through tr.
// The SDK's own retries are off so that injected faults reach Run's retry
// loop, which is what the tests are about.
func newContainer(t testing.TB, tr *testTransport) *container.Client {
	t.Helper()
	needAzurite(t)
	cred, err := azblob.NewSharedKeyCredential(devAccount, devKey)
	if err != nil {
		t.Fatal(err)
	}
	opts := &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &http.Client{Transport: tr},
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
	client, err := azblob.NewClientWithSharedKeyCredential(azuriteURL, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test-" + hex.EncodeToString(b[:])
	if _, err := client.CreateContainer(context.Background(), name, nil); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	c := client.ServiceClient().NewContainerClient(name)
	t.Cleanup(func() { _, _ = c.Delete(context.Background(), nil) })
	return c
}
