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
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// The well-known Azurite development account; it is public, not a secret.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	azuriteVer = "3.35.0" // later versions need Node 22
)

var (
	cleanups    []func() // run after all tests and benchmarks
	azuriteURL  string   // http://127.0.0.1:<port>/devstoreaccount1, empty if not running
	azuriteSkip string   // why Azurite is unavailable
)

func TestMain(m *testing.M) {
	stop, err := startAzurite()
	if err != nil {
		azuriteSkip = err.Error()
	}
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

// findAzurite looks for azurite-blob on PATH, then in npm's global bin,
// then in a per-user cache folder, installing it there if npm is present.
func findAzurite() (string, error) {
	if p, err := exec.LookPath("azurite-blob"); err == nil {
		return p, nil
	}
	npm, npmErr := exec.LookPath("npm")
	if npmErr == nil {
		if out, err := exec.Command(npm, "root", "-g").Output(); err == nil {
			p := filepath.Join(strings.TrimSpace(string(out)), ".bin", "azurite-blob")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "cib", "azurite-"+azuriteVer)
	p := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if npmErr != nil {
		return "", fmt.Errorf("azurite-blob not on PATH and npm not found to install azurite@%s", azuriteVer)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create azurite cache %s: %w", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "azurite@"+azuriteVer).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm install azurite@%s into %s: %w: %s", azuriteVer, dir, err, strings.TrimSpace(string(out)))
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("azurite-blob missing after npm install: %w", err)
	}
	return p, nil
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before Azurite binds it; the readiness wait then fails loudly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startAzurite starts azurite-blob on a free loopback port with its data
// in a temporary folder and returns a function that kills its process
// group and removes the folder.
func startAzurite() (stop func(), err error) {
	bin, err := findAzurite()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	dir, err := os.MkdirTemp("", "cib-azurite-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
		"--location", dir, "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("azurite exited before listening on %s: %v", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			killProcessGroup(cmd)
			<-exited
			os.RemoveAll(dir)
			return nil, fmt.Errorf("azurite did not listen on %s within 60s", addr)
		}
	}
	azuriteURL = "http://" + addr + "/" + devAccount
	return func() {
		killProcessGroup(cmd)
		<-exited
		os.RemoveAll(dir)
	}, nil
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
