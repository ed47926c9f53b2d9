package azure_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
)

// authority stands in for Microsoft Entra ID: it publishes its OpenID
// configuration and exchanges a client assertion for an access token,
// recording the assertions it was given.
type authority struct {
	*httptest.Server
	mu         sync.Mutex
	assertions []string
}

func newAuthority(t *testing.T, tenant string) *authority {
	a := &authority{}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := a.URL + "/" + tenant
		switch {
		case r.URL.Path == "/"+tenant+"/v2.0/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]any{
				"token_endpoint":         base + "/oauth2/v2.0/token",
				"authorization_endpoint": base + "/oauth2/v2.0/authorize",
				"issuer":                 base + "/v2.0",
			})
		case r.URL.Path == "/"+tenant+"/oauth2/v2.0/token":
			_ = r.ParseForm()
			if r.Form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || r.Form.Get("client_id") != "app-id" {
				http.Error(w, `{"error":"invalid_client"}`, http.StatusBadRequest)
				return
			}
			a.mu.Lock()
			a.assertions = append(a.assertions, r.Form.Get("client_assertion"))
			a.mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": "arm-access-token"})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(a.Close)
	return a
}

// With AZURE_CLIENT_ID, AZURE_TENANT_ID and an ID token source, the job
// logs in by federation: the authority receives the GitHub ID token as
// the client assertion, and no secret is involved.
func TestCredentialOIDC(t *testing.T) {
	const tenant = "11111111-2222-3333-4444-555555555555"
	auth := newAuthority(t, tenant)
	env := map[string]string{"AZURE_CLIENT_ID": "app-id", "AZURE_TENANT_ID": tenant}
	var audiences []string
	cred, how, err := azure.Credential(azure.CredentialOptions{
		Getenv: func(k string) string { return env[k] },
		IDToken: func(_ context.Context, audience string) (string, error) {
			audiences = append(audiences, audience)
			return "github.id.token", nil
		},
		Client: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: auth.URL + "/"},
			Transport: auth.Client(),
		},
		DisableInstanceDiscovery: true,
	})
	require.NoError(t, err)
	assert.Equal(t, "oidc", how)
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	require.NoError(t, err)
	assert.Equal(t, "arm-access-token", tok.Token)
	assert.Equal(t, []string{azure.FederationAudience}, audiences)
	assert.Equal(t, []string{"github.id.token"}, auth.assertions)
}

// Federation needs the identity: with an ID token source but no
// AZURE_CLIENT_ID / AZURE_TENANT_ID, the default chain (azure/login's CLI
// session, a service principal's variables) is used, and the ID token is
// never asked for.
func TestCredentialFallsBackToTheDefaultChain(t *testing.T) {
	asked := false
	_, how, err := azure.Credential(azure.CredentialOptions{
		Getenv:  func(string) string { return "" },
		IDToken: func(context.Context, string) (string, error) { asked = true; return "t", nil },
	})
	require.NoError(t, err)
	assert.Equal(t, "default", how)
	assert.False(t, asked)
}
