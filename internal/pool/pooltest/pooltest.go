// Package pooltest serves a Taskcluster worker manager's worker-pool end
// points for tests, checking every request's Hawk signature with the
// reference implementation: the `hawk` npm package, run with node. The
// signing in package pool is so proven by code not written here.
//
// The package is imported only by tests. It installs hawk@HawkVersion with
// npm into a per-user cache folder when it is not there yet; without node
// or npm the test fails under CI=true and is skipped otherwise.
package pooltest

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// HawkVersion is the hawk npm package the signatures are checked with.
const HawkVersion = "9.0.2"

// verifyScript authenticates one request, given as JSON on stdin, with
// hawk.server.authenticate (payload validated when the request has a
// body), and prints {"ok":true} or {"ok":false,"error":...}.
const verifyScript = `
const hawk = require('hawk');
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const r = JSON.parse(input);
  const req = { method: r.method, url: r.url, headers: r.headers, connection: {} };
  const creds = async (id) => (id === r.id ? { id, key: r.key, algorithm: 'sha256' } : null);
  const options = {};
  if (r.hasBody) { options.payload = r.body; }
  try {
    const { credentials } = await hawk.server.authenticate(req, creds, options);
    process.stdout.write(JSON.stringify({ ok: true, id: credentials.id }));
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, error: String(err.message) }));
  }
});
`

// Call is one request the worker manager answered.
type Call struct {
	Method, Pool string
	// Authenticated is whether the reference hawk accepted the request.
	Authenticated bool
	// AuthError is the reference's reason for rejecting it.
	AuthError string
}

// WorkerManager is an in-memory worker manager.
type WorkerManager struct {
	// URL is the root URL to give pool.Client.
	URL string
	// ClientID and AccessToken are the only credentials it accepts.
	ClientID, AccessToken string
	// CertDir holds the certificate of a StartTLS worker manager.
	CertDir string

	node, script, modules string
	mu                    sync.Mutex
	pools                 map[string]json.RawMessage
	calls                 []Call
}

// Start starts a worker manager accepting clientID/accessToken; it stops
// when the test ends.
func Start(t testing.TB, clientID, accessToken string) *WorkerManager {
	t.Helper()
	return start(t, clientID, accessToken, false)
}

// StartTLS is Start over HTTPS, as a configuration's rootUrl must be:
// another process trusts it with SSL_CERT_DIR=/etc/ssl/certs:wm.CertDir.
func StartTLS(t testing.TB, clientID, accessToken string) *WorkerManager {
	t.Helper()
	return start(t, clientID, accessToken, true)
}

func start(t testing.TB, clientID, accessToken string, tls bool) *WorkerManager {
	t.Helper()
	node, modules := Hawk(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "verify.js")
	if err := os.WriteFile(script, []byte(verifyScript), 0o644); err != nil {
		t.Fatal(err)
	}
	wm := &WorkerManager{ClientID: clientID, AccessToken: accessToken, node: node, script: script, modules: modules,
		pools: map[string]json.RawMessage{}}
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(http.HandlerFunc(wm.serve))
		wm.CertDir = t.TempDir()
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		if err := os.WriteFile(filepath.Join(wm.CertDir, "worker-manager.pem"), cert, 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		srv = httptest.NewServer(http.HandlerFunc(wm.serve))
	}
	t.Cleanup(srv.Close)
	wm.URL = srv.URL
	return wm
}

// Put stores a deployed pool's definition as the worker manager holds it.
func (wm *WorkerManager) Put(id string, definition []byte) {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	wm.pools[id] = append(json.RawMessage(nil), definition...)
}

// Pool is the stored definition of pool id (without the fields the worker
// manager adds), or nil.
func (wm *WorkerManager) Pool(id string) []byte {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	return wm.pools[id]
}

// Calls are the requests answered so far.
func (wm *WorkerManager) Calls() []Call {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	return append([]Call(nil), wm.calls...)
}

// Writes are the calls that changed a pool (PUT, POST).
func (wm *WorkerManager) Writes() []Call {
	var out []Call
	for _, c := range wm.Calls() {
		if c.Method != http.MethodGet {
			out = append(out, c)
		}
	}
	return out
}

const prefix = "/api/worker-manager/v1/worker-pool/"

func (wm *WorkerManager) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id, ok := strings.CutPrefix(r.URL.Path, prefix)
	call := Call{Method: r.Method, Pool: id}
	ok2, reason := wm.verify(r, body)
	call.Authenticated, call.AuthError = ok2, reason
	wm.mu.Lock()
	wm.calls = append(wm.calls, call)
	wm.mu.Unlock()
	if !ok2 {
		reply(w, http.StatusUnauthorized, map[string]any{"code": "AuthenticationFailed", "message": "hawk: " + reason})
		return
	}
	if !ok {
		reply(w, http.StatusNotFound, map[string]any{"code": "ResourceNotFound", "message": "no such end point"})
		return
	}
	wm.mu.Lock()
	defer wm.mu.Unlock()
	stored, exists := wm.pools[id]
	switch r.Method {
	case http.MethodGet:
		if !exists {
			reply(w, http.StatusNotFound, map[string]any{"code": "ResourceNotFound", "message": "Worker pool does not exist"})
			return
		}
		var m map[string]any
		_ = json.Unmarshal(stored, &m)
		m["workerPoolId"], m["created"], m["lastModified"] = id, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"
		reply(w, http.StatusOK, m)
	case http.MethodPut, http.MethodPost:
		if exists == (r.Method == http.MethodPut) {
			msg := "worker pool already exists"
			if !exists {
				msg = "worker pool does not exist"
			}
			reply(w, map[bool]int{true: http.StatusConflict, false: http.StatusNotFound}[exists], map[string]any{"code": "RequestConflict", "message": msg})
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			reply(w, http.StatusBadRequest, map[string]any{"code": "InputValidationError", "message": err.Error()})
			return
		}
		wm.pools[id] = body
		m["workerPoolId"] = id
		reply(w, http.StatusOK, m)
	default:
		reply(w, http.StatusMethodNotAllowed, map[string]any{"code": "MethodNotAllowed", "message": r.Method})
	}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// verify runs the reference hawk on the request.
func (wm *WorkerManager) verify(r *http.Request, body []byte) (bool, string) {
	headers := map[string]string{"host": r.Host}
	if v := r.Header.Get("Authorization"); v != "" {
		headers["authorization"] = v
	}
	if v := r.Header.Get("Content-Type"); v != "" {
		headers["content-type"] = v
	}
	in, _ := json.Marshal(map[string]any{
		"method": r.Method, "url": r.URL.RequestURI(), "headers": headers,
		"id": wm.ClientID, "key": wm.AccessToken, "hasBody": len(body) > 0, "body": string(body),
	})
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wm.node, wm.script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+wm.modules)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		return false, fmt.Sprintf("running the reference hawk: %v", err)
	}
	var res struct {
		OK    bool
		Error string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return false, fmt.Sprintf("reference hawk output %q: %v", out, err)
	}
	return res.OK, res.Error
}

// Hawk returns node and the node_modules folder holding hawk@HawkVersion,
// installing it into a per-user cache folder with npm when needed.
func Hawk(t testing.TB) (node, modules string) {
	t.Helper()
	missing := func(format string, a ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, a...)
		}
		t.Skipf(format, a...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is required to check Hawk signatures with the reference hawk package: %v", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "cib", "hawk-"+HawkVersion)
	modules = filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "hawk", "package.json")); err == nil {
		return node, modules
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		missing("npm is required to install hawk@%s: %v", HawkVersion, err)
	}
	// Installed next to the cache folder and renamed into place, so that
	// test binaries installing at the same time never see half a package.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatalf("create hawk cache: %v", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "hawk-install-")
	if err != nil {
		t.Fatalf("create hawk cache: %v", err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefix", tmp, "hawk@"+HawkVersion).CombinedOutput()
	if err != nil {
		t.Fatalf("npm install hawk@%s: %v: %s", HawkVersion, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(modules, "hawk", "package.json")); statErr != nil {
			t.Fatalf("install hawk into %s: %v", dir, err)
		}
	}
	return node, modules
}
