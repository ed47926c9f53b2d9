// Package azuritetest starts Azurite, Azure Storage's emulator, for tests:
// the blob service on a free loopback port, with its data in a temporary
// folder. It finds azurite-blob on PATH, in npm's global folder or in a
// per-user cache, installing a pinned version there with npm when needed.
//
// It is imported only by tests, and does not import the Azure SDK (only
// internal/azure does); tests reach Azurite through ConnectionString or
// the SDK with Account and Key.
package azuritetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The well-known Azurite development account; it is public, not a secret.
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	// Version is the azurite npm package installed when none is found;
	// later versions need Node 22.
	Version = "3.35.0"
)

// ConnectionString is the storage connection string (as
// AZURE_STORAGE_CONNECTION_STRING takes it) of the development account
// whose blob endpoint is url, as Start returns it.
func ConnectionString(url string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + Account + ";AccountKey=" + Key + ";BlobEndpoint=" + url + ";"
}

// Start starts azurite-blob on a free loopback port with its data in a
// temporary folder, waits until it listens, and returns the blob endpoint
// of the development account (http://127.0.0.1:<port>/devstoreaccount1)
// and a function that kills Azurite's process group and removes the
// folder. The error says why Azurite could not be started (not found and
// no npm to install it, npm failed, it exited or did not listen within
// 60 seconds).
func Start() (url string, stop func(), err error) {
	bin, err := find()
	if err != nil {
		return "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", nil, fmt.Errorf("free port: %w", err)
	}
	dir, err := os.MkdirTemp("", "cib-azurite-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
		"--location", dir, "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start %s: %w", bin, err)
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
			return "", nil, fmt.Errorf("azurite exited before listening on %s: %v", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			killProcessGroup(cmd)
			<-exited
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("azurite did not listen on %s within 60s", addr)
		}
	}
	return "http://" + addr + "/" + Account, func() {
		killProcessGroup(cmd)
		<-exited
		os.RemoveAll(dir)
	}, nil
}

// find looks for azurite-blob on PATH, then in npm's global bin, then in a
// per-user cache folder, installing azurite@Version there if npm is
// present.
func find() (string, error) {
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
	dir := filepath.Join(cache, "cib", "azurite-"+Version)
	p := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if npmErr != nil {
		return "", fmt.Errorf("azurite-blob not on PATH and npm not found to install azurite@%s", Version)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create azurite cache %s: %w", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "azurite@"+Version).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm install azurite@%s into %s: %w: %s", Version, dir, err, strings.TrimSpace(string(out)))
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
