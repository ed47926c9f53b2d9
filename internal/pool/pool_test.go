package pool_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/pool"
	"github.com/cib-project/cib/internal/pool/pooltest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const fakeSubscription = "00000000-0000-0000-0000-000000000000"

func loadConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("../../config")
	require.NoError(t, err)
	return cfg
}

// fakeImages is an image per target group of pool p, as the records would
// give them.
func fakeImages(k *config.Key, p config.Pool) map[string]string {
	images := map[string]string{}
	for _, t := range k.PoolTargets(p) {
		images[t.Group] = "/subscriptions/" + fakeSubscription + "/resourceGroups/" + t.Group +
			"/providers/Microsoft.Compute/images/" + k.Name + "-fake"
	}
	return images
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/pool -update to create it")
	assert.Equal(t, string(want), string(got), "%s differs; run go test ./internal/pool -update after checking the change", path)
}

// TestGolden pins the definition of every ported azure pool.
func TestGolden(t *testing.T) {
	cfg := loadConfig(t)
	n := 0
	for _, k := range cfg.Keys {
		for _, p := range k.Pools() {
			if p.Platform != "azure" {
				continue
			}
			n++
			t.Run(p.ID(), func(t *testing.T) {
				wp, err := pool.Config(cfg, k, p, fakeImages(k, p), "staging")
				require.NoError(t, err)
				assert.Equal(t, p.ID(), wp.ID)
				assert.NotEmpty(t, wp.Config["launchConfigs"], "a ported pool launches somewhere")
				js, err := wp.JSON()
				require.NoError(t, err)
				ym, err := wp.YAML()
				require.NoError(t, err)
				golden(t, filepath.Join("testdata", p.Domain, p.Variant+".json"), js)
				golden(t, filepath.Join("testdata", p.Domain, p.Variant+".yaml"), ym)

				// the YAML says the same as the JSON
				var fromJSON, fromYAML map[string]any
				require.NoError(t, json.Unmarshal(js, &fromJSON))
				require.NoError(t, yaml.Unmarshal(ym, &fromYAML))
				again, err := json.Marshal(fromYAML)
				require.NoError(t, err)
				var roundTrip map[string]any
				require.NoError(t, json.Unmarshal(again, &roundTrip))
				assert.Equal(t, fromJSON, roundTrip)
			})
		}
	}
	assert.GreaterOrEqual(t, n, 7)
}

func TestConfigShape(t *testing.T) {
	cfg := loadConfig(t)
	k := cfg.Key("win10-64")
	require.NotNil(t, k)
	p := k.Pools()[0]
	wp, err := pool.Config(cfg, k, p, fakeImages(k, p), "production")
	require.NoError(t, err)
	assert.Equal(t, "azure2", wp.ProviderID)
	assert.True(t, wp.EmailOnError)
	assert.Contains(t, wp.Description, "production")
	c := wp.Config
	assert.EqualValues(t, 0, c["minCapacity"])
	assert.EqualValues(t, 3, c["maxCapacity"])
	assert.Equal(t, map[string]any{"registrationTimeout": 3600.0, "reregistrationTimeout": 86400.0}, c["lifecycle"])
	lcs := c["launchConfigs"].([]any)
	// rg-west-us-gecko-t is not in the pool's locations
	var locations []string
	for _, l := range lcs {
		lc := l.(map[string]any)
		locations = append(locations, lc["location"].(string))
		assert.Equal(t, "Spot", lc["priority"])
		assert.Equal(t, "Delete", lc["evictionPolicy"])
		assert.Equal(t, map[string]any{"maxPrice": -1.0}, lc["billingProfile"])
		assert.EqualValues(t, 1, lc["capacityPerInstance"])
		assert.Equal(t, "Standard_DS3_v2", lc["hardwareProfile"].(map[string]any)["vmSize"])
		assert.True(t, strings.HasPrefix(lc["subnetId"].(string), "/subscriptions/"+fakeSubscription+"/resourceGroups/rg-"))
	}
	assert.Equal(t, []string{"centralus", "eastus", "eastus2", "northcentralus", "southcentralus"}, locations)
}

func TestConfigMissingImageNamesPoolAndGroup(t *testing.T) {
	cfg := loadConfig(t)
	k := cfg.Key("win10-64")
	p := k.Pools()[0]
	images := fakeImages(k, p)
	delete(images, "rg-east-us-2-gecko-t")
	_, err := pool.Config(cfg, k, p, images, "staging")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gecko-t/win10-64-azure")
	assert.Contains(t, err.Error(), "rg-east-us-2-gecko-t")

	w := cfg.Key("win2012")
	for _, p := range w.Pools() {
		if p.Platform == "amazon" {
			_, err := pool.Config(cfg, w, p, nil, "staging")
			assert.ErrorContains(t, err, "only azure pools")
		}
	}
}

func TestDiff(t *testing.T) {
	cfg := loadConfig(t)
	k := cfg.Key("win7-32")
	p := k.Pools()[0]
	wanted, err := pool.Config(cfg, k, p, fakeImages(k, p), "staging")
	require.NoError(t, err)
	d, err := pool.Diff(&wanted, wanted)
	require.NoError(t, err)
	assert.Empty(t, d)

	deployed := wanted
	deployed.Owner = "someone@example.com"
	d, err = pool.Diff(&deployed, wanted)
	require.NoError(t, err)
	assert.Contains(t, d, "--- gecko-t/win7-32-azure deployed\n+++ wanted gecko-t/win7-32-azure\n@@ ")
	assert.Contains(t, d, "\n-  \"owner\": \"someone@example.com\",\n+  \"owner\": \""+p.Owner+"\",\n")
	assert.Less(t, strings.Count(d, "\n"), 20, "only the change and its context:\n%s", d)

	d, err = pool.Diff(nil, wanted)
	require.NoError(t, err)
	assert.Contains(t, d, "+  \"providerId\": \"azure2\",")
	assert.NotContains(t, d, "\n-")
}

const (
	clientID    = "project/releng/cib"
	accessToken = "not-a-real-token-0123456789abcdef"
)

func client(wm *pooltest.WorkerManager) *pool.Client {
	return &pool.Client{RootURL: wm.URL, ClientID: wm.ClientID, AccessToken: wm.AccessToken}
}

func wanted(t *testing.T) pool.WorkerPool {
	cfg := loadConfig(t)
	k := cfg.Key("win10-64")
	p := k.Pools()[0]
	wp, err := pool.Config(cfg, k, p, fakeImages(k, p), "staging")
	require.NoError(t, err)
	return wp
}

// TestHawkAcceptedByTheReference: every request the client signs (GET
// without a body, PUT and POST with one) passes hawk.server.authenticate
// with payload validation.
func TestHawkAcceptedByTheReference(t *testing.T) {
	wm := pooltest.Start(t, clientID, accessToken)
	c := client(wm)
	ctx := context.Background()
	wp := wanted(t)

	_, found, err := c.Get(ctx, wp.ID)
	require.NoError(t, err)
	assert.False(t, found)
	require.NoError(t, c.Create(ctx, wp))
	got, found, err := c.Get(ctx, wp.ID)
	require.NoError(t, err)
	require.True(t, found)
	assert.True(t, pool.Equal(got, wp))
	wp.Owner = "other@example.com"
	require.NoError(t, c.Update(ctx, wp))

	calls := wm.Calls()
	require.Len(t, calls, 4)
	for _, call := range calls {
		assert.True(t, call.Authenticated, "%s %s: %s", call.Method, call.Pool, call.AuthError)
		assert.Equal(t, wp.ID, call.Pool)
	}
	assert.Equal(t, []string{"GET", "PUT", "GET", "POST"}, []string{calls[0].Method, calls[1].Method, calls[2].Method, calls[3].Method})
}

// TestHawkRejectedByTheReference: a wrong key, a changed body and a wrong
// client ID are refused by the reference, so the check above proves
// something.
func TestHawkRejectedByTheReference(t *testing.T) {
	wm := pooltest.Start(t, clientID, accessToken)
	ctx := context.Background()
	wp := wanted(t)

	bad := client(wm)
	bad.AccessToken = "the-wrong-token"
	_, _, err := bad.Get(ctx, wp.ID)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 401")
	assert.Contains(t, err.Error(), "Bad mac")
	assert.Contains(t, err.Error(), wp.ID)
	assert.NotContains(t, err.Error(), "the-wrong-token")

	other := client(wm)
	other.ClientID = "someone-else"
	assert.ErrorContains(t, other.Create(ctx, wp), "Unknown credentials")

	// a body changed after signing
	tamper := client(wm)
	tamper.HTTP = &http.Client{Transport: rewriteBody{http.DefaultTransport}}
	err = tamper.Create(ctx, wp)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Bad payload hash")
	assert.Nil(t, wm.Pool(wp.ID))
	for _, call := range wm.Calls() {
		assert.False(t, call.Authenticated)
	}
}

// rewriteBody changes a request's body after it was signed.
type rewriteBody struct{ next http.RoundTripper }

func (r rewriteBody) RoundTrip(req *http.Request) (*http.Response, error) {
	body := `{"providerId":"null-provider","description":"","owner":"x","emailOnError":false,"config":{}}`
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	return r.next.RoundTrip(req)
}

func TestDeploy(t *testing.T) {
	wm := pooltest.Start(t, clientID, accessToken)
	c := client(wm)
	ctx := context.Background()
	wp := wanted(t)

	change, err := pool.Deploy(ctx, c, wp)
	require.NoError(t, err)
	assert.Equal(t, pool.Created, change)
	assert.JSONEq(t, mustJSON(t, wp), string(wm.Pool(wp.ID)))

	change, err = pool.Deploy(ctx, c, wp)
	require.NoError(t, err)
	assert.Equal(t, pool.Unchanged, change)
	assert.Len(t, wm.Writes(), 1, "no write when equal")

	wp.Config["maxCapacity"] = 10
	change, err = pool.Deploy(ctx, c, wp)
	require.NoError(t, err)
	assert.Equal(t, pool.Updated, change)
	writes := wm.Writes()
	require.Len(t, writes, 2)
	assert.Equal(t, "POST", writes[1].Method)
	assert.Contains(t, string(wm.Pool(wp.ID)), `"maxCapacity":10`)
	for _, call := range wm.Calls() {
		assert.True(t, call.Authenticated, call.AuthError)
	}
}

func mustJSON(t *testing.T, wp pool.WorkerPool) string {
	data, err := wp.JSON()
	require.NoError(t, err)
	return string(data)
}
