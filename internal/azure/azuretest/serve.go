package azuretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// Server serves the in-memory Azure over HTTPS to another process (a
// composite action's cib, run as a runner would), with what such a process
// needs to log in as a GitHub Actions job does: the runner's OIDC ID token
// endpoint and a Microsoft Entra ID authority that exchanges that ID token
// (as a client assertion) for an access token. Resource Manager requests
// without that access token are refused, as Azure refuses them, so a
// request that reaches the model has logged in by federation.
//
// Faults named by API (Fault.API) do not apply to requests served here:
// the API name travels in the SDK's context, not on the wire.
type Server struct {
	*httptest.Server
	// Tenant and ClientID are the identity the authority knows.
	Tenant, ClientID string

	a            *Azure
	certDir      string
	requestToken string // ACTIONS_ID_TOKEN_REQUEST_TOKEN
	idToken      string // what the runner endpoint issues
	accessToken  string // what the authority issues for idToken

	mu        sync.Mutex
	audiences []string          // the audiences ID tokens were asked for
	ops       map[string]string // operation (opParam) → the call that began it
	polls     map[string]string // lower-case path → the operation polled there last
	refused   int               // Resource Manager requests without the access token
}

// Serve starts a Server for a; dir receives the server's certificate
// (trust it with the environment Env returns). Close the Server when done.
func (a *Azure) Serve(dir string) (*Server, error) {
	s := &Server{
		Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", ClientID: "cib-test-app",
		a: a, certDir: filepath.Join(dir, "certs"),
		ops: map[string]string{}, polls: map[string]string{},
		requestToken: random("request-"), idToken: random("github-oidc-"), accessToken: random("arm-"),
	}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	if err := os.MkdirAll(s.certDir, 0o755); err != nil {
		s.Close()
		return nil, err
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(s.certDir, "azuretest.pem"), cert, 0o644); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func random(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Env is the environment of a job that logs in to this Azure by OIDC
// federation: the identity, the cloud's endpoints, the runner's ID token
// request, and the server's certificate added to the trusted ones
// (SSL_CERT_DIR keeps the system's own).
func (s *Server) Env() []string {
	return []string{
		"AZURE_CLIENT_ID=" + s.ClientID,
		"AZURE_TENANT_ID=" + s.Tenant,
		"AZURE_SUBSCRIPTION_ID=" + Subscription,
		"AZURE_AUTHORITY_HOST=" + s.URL + "/",
		"AZURE_RESOURCE_MANAGER_ENDPOINT=" + s.URL,
		"AZURE_RESOURCE_MANAGER_AUDIENCE=" + s.URL,
		"ACTIONS_ID_TOKEN_REQUEST_URL=" + s.URL + "/_actions/idtoken?api-version=2.0",
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN=" + s.requestToken,
		"SSL_CERT_DIR=/etc/ssl/certs:" + s.certDir,
	}
}

// Audiences are the audiences the ID tokens were issued for.
func (s *Server) Audiences() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.audiences...)
}

// Refused counts the Resource Manager requests refused for want of the
// access token.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	tenant := "/" + s.Tenant
	switch {
	case r.URL.Path == "/_actions/idtoken":
		if r.Header.Get("Authorization") != "Bearer "+s.requestToken {
			http.Error(w, `{"message":"bad ACTIONS_ID_TOKEN_REQUEST_TOKEN"}`, http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		s.audiences = append(s.audiences, r.URL.Query().Get("audience"))
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"value": s.idToken})
	case r.URL.Path == tenant+"/v2.0/.well-known/openid-configuration":
		base := s.URL + tenant
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/v2.0",
		})
	case r.URL.Path == tenant+"/oauth2/v2.0/token":
		_ = r.ParseForm()
		switch {
		case r.Form.Get("client_id") != s.ClientID:
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unauthorized_client", "error_description": "AADSTS700016: application not found in the directory"})
		case r.Form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || r.Form.Get("client_assertion") != s.idToken:
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_client", "error_description": "AADSTS70021: no matching federated identity record found for presented assertion"})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": s.accessToken})
		}
	default:
		if r.Header.Get("Authorization") != "Bearer "+s.accessToken {
			s.mu.Lock()
			s.refused++
			s.mu.Unlock()
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{
				"code": "AuthenticationFailed", "message": "Authentication failed. The 'Authorization' header is missing or carries no valid token.",
			}})
			return
		}
		s.resourceManager(w, r)
	}
}

// resourceManager hands a request to the model as an SDK client's
// request to this host, named as the client's call (the fake servers
// dispatch on that name), and writes the model's answer.
func (s *Server) resourceManager(w http.ResponseWriter, r *http.Request) {
	// A poll or a next page is the call of the request that began its
	// operation, as in the SDK's context. A next page names the operation
	// (opParam in its link); a poll, which the SDK's fake poller makes from
	// the first request's URL, is known by its path.
	var api string
	var err error
	if base, ok := strings.CutSuffix(r.URL.Path, pollSuffix); ok {
		s.mu.Lock()
		op := s.polls[strings.ToLower(base)]
		s.mu.Unlock()
		q := r.URL.Query()
		q.Set(opParam, op)
		r.URL.RawQuery = q.Encode()
	}
	if op := r.URL.Query().Get(opParam); op != "" {
		s.mu.Lock()
		api = s.ops[op]
		s.mu.Unlock()
		if api == "" {
			err = fmt.Errorf("no operation %s under way", op)
		}
	} else {
		api, err = s.a.apiOf(r.Method, r.URL.Path)
	}
	if err != nil {
		writeJSON(w, http.StatusNotImplemented, map[string]any{"error": map[string]string{
			"code": "NotImplementedInModel", "message": fmt.Sprintf("azuretest: %s %s: %v", r.Method, r.URL.Path, err),
		}})
		return
	}
	ctx := context.WithValue(r.Context(), runtime.CtxAPINameKey{}, api)
	req := r.Clone(ctx)
	req.RequestURI = ""
	req.URL.Scheme, req.URL.Host = "https", r.Host
	resp, err := s.a.Do(req)
	var re *azcore.ResponseError
	switch {
	case errors.As(err, &re):
		// In-process, the fake servers' errors reach the client as they
		// are; on the wire they are the ARM error response they stand for.
		// A long-running operation that ends failed answers its poll with
		// a success status and the failure (the SDK's fake poller reads
		// its state from the Fake-Poller-Status header).
		if re.StatusCode < http.StatusBadRequest {
			w.Header().Set("Fake-Poller-Status", "Failed")
		}
		writeJSON(w, re.StatusCode, errorBody(re))
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	// The operation this request began (or continued) is this call's.
	if resp.Request != nil {
		if op := resp.Request.URL.Query().Get(opParam); op != "" {
			s.mu.Lock()
			s.ops[op] = api
			if resp.Header.Get("Fake-Poller-Status") != "" && !strings.HasSuffix(r.URL.Path, pollSuffix) {
				s.polls[strings.ToLower(r.URL.Path)] = op
			}
			s.mu.Unlock()
		}
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return
	}
	if _, err := w.Write(body); err != nil {
		fmt.Fprintln(os.Stderr, "azuretest: writing a response:", err)
	}
}

// errorBody is the ARM error body of a fake server's error: the JSON
// body its text shows, or one made of its code and text.
func errorBody(re *azcore.ResponseError) any {
	text := re.Error()
	if i, j := strings.Index(text, "{"), strings.LastIndex(text, "}"); i >= 0 && j > i {
		var body map[string]any
		if json.Unmarshal([]byte(text[i:j+1]), &body) == nil && body["error"] != nil {
			return body
		}
	}
	code := re.ErrorCode
	if code == "" {
		code = http.StatusText(re.StatusCode)
	}
	return map[string]any{"error": map[string]string{"code": code, "message": strings.TrimSpace(text)}}
}

// pollSuffix ends the path of the SDK's fake poller's status requests.
const pollSuffix = "/get/fake/status"

// clients names the SDK client of each resource type chain (namespace and
// types, lower case): its fake server is the field <name>Server of one of
// the model's server factories.
var clients = map[string]string{
	"resourcegroups":                                            "ResourceGroups",
	"microsoft.compute/virtualmachines":                         "VirtualMachines",
	"microsoft.compute/disks":                                   "Disks",
	"microsoft.compute/images":                                  "Images",
	"microsoft.compute/galleries":                               "Galleries",
	"microsoft.compute/galleries/images":                        "GalleryImages",
	"microsoft.compute/galleries/images/versions":               "GalleryImageVersions",
	"microsoft.compute/skus":                                    "ResourceSKUs",
	"microsoft.compute/locations/usages":                        "Usage",
	"microsoft.network/networksecuritygroups":                   "SecurityGroups",
	"microsoft.network/networksecuritygroups/securityrules":     "SecurityRules",
	"microsoft.network/virtualnetworks":                         "VirtualNetworks",
	"microsoft.network/virtualnetworks/subnets":                 "Subnets",
	"microsoft.network/networkinterfaces":                       "Interfaces",
	"microsoft.network/publicipaddresses":                       "PublicIPAddresses",
	"microsoft.storage/storageaccounts":                         "Accounts",
	"microsoft.storage/storageaccounts/blobservices/containers": "BlobContainers",
}

// subscriptionActions are the calls on a provider rather than a resource.
var subscriptionActions = map[string]string{
	"microsoft.storage/checknameavailability": "AccountsClient.CheckNameAvailability",
}

// apiOf names the SDK call a request is (VirtualMachinesClient.BeginStart),
// as the SDK puts it in the request's context: from the path's resource
// types, whether it names a collection, an item or an action on an item,
// the HTTP method, and which operations the model implements (a fake
// server's non-nil fields), so a request the model does not know is an
// error, never a guess.
func (a *Azure) apiOf(method, path string) (string, error) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) < 3 || !strings.EqualFold(seg[0], "subscriptions") {
		return "", errors.New("not a subscription's resource")
	}
	var ns string
	var rest []string
	rgScoped := false
	switch {
	case strings.EqualFold(seg[2], "resourcegroups") && len(seg) <= 4:
		rest = seg[2:]
	case strings.EqualFold(seg[2], "resourcegroups") && len(seg) > 5 && strings.EqualFold(seg[4], "providers"):
		ns, rest, rgScoped = seg[5], seg[6:], true
	case strings.EqualFold(seg[2], "providers") && len(seg) > 4:
		ns, rest = seg[3], seg[4:]
	default:
		return "", errors.New("an unknown kind of path")
	}
	if len(rest) == 1 && ns != "" {
		if call, ok := subscriptionActions[strings.ToLower(ns+"/"+rest[0])]; ok {
			return call, nil
		}
	}
	// Walk type/name pairs; a last segment that makes no known type is an
	// action on the item before it.
	var types []string
	item, action := false, ""
	for i := 0; i < len(rest); i += 2 {
		next := append(slices.Clone(types), strings.ToLower(rest[i]))
		key := strings.Join(next, "/")
		if ns != "" {
			key = strings.ToLower(ns) + "/" + key
		}
		if _, ok := clients[key]; !ok && i+1 == len(rest) && len(types) > 0 {
			action = rest[i]
			break
		}
		// blobServices/default is a singleton on the way to containers.
		types, item = next, i+1 < len(rest)
	}
	key := strings.Join(types, "/")
	if ns != "" {
		key = strings.ToLower(ns) + "/" + key
	}
	client, ok := clients[key]
	if !ok {
		return "", fmt.Errorf("no client for resource type %s", key)
	}
	srv, ok := a.fakeServer(client)
	if !ok {
		return "", fmt.Errorf("no fake server for %sClient", client)
	}
	var candidates []string
	switch {
	case action != "":
		t := strings.ToUpper(action[:1]) + action[1:]
		candidates = []string{"Begin" + t, t}
	case !item && method == http.MethodGet:
		switch {
		case len(types) > 1:
			for i := 0; i < srv.NumField(); i++ {
				f := srv.Type().Field(i).Name
				if strings.HasPrefix(f, "NewList") && !strings.HasPrefix(f, "NewListAll") && !strings.HasPrefix(f, "NewListByResourceGroup") {
					candidates = append(candidates, f)
				}
			}
		case rgScoped:
			candidates = []string{"NewListByResourceGroupPager", "NewListPager"}
		default:
			candidates = []string{"NewListAllPager", "NewListPager"}
		}
	case method == http.MethodGet:
		candidates = []string{"Get", "GetProperties"}
	case method == http.MethodHead:
		candidates = []string{"CheckExistence"}
	case method == http.MethodPut:
		candidates = []string{"BeginCreateOrUpdate", "CreateOrUpdate", "BeginCreate", "Create"}
	case method == http.MethodDelete:
		candidates = []string{"BeginDelete", "Delete"}
	case method == http.MethodPatch:
		candidates = []string{"BeginUpdate", "Update", "UpdateTags", "BeginUpdateTags"}
	}
	var set []string
	for _, c := range candidates {
		if f := srv.FieldByName(c); f.IsValid() && !f.IsNil() {
			set = append(set, c)
		}
	}
	if len(set) != 1 {
		return "", fmt.Errorf("%sClient: the model implements %d of the operations %v such a request may be", client, len(set), candidates)
	}
	return client + "Client." + set[0], nil
}

// fakeServer is the fake server of a client, from whichever of the
// model's server factories (its fields of type fake.ServerFactory) has it.
func (a *Azure) fakeServer(client string) (reflect.Value, bool) {
	v := reflect.ValueOf(a).Elem()
	for i := 0; i < v.NumField(); i++ {
		factory := v.Field(i)
		if factory.Kind() != reflect.Struct || factory.Type().Name() != "ServerFactory" {
			continue
		}
		if f := factory.FieldByName(client + "Server"); f.IsValid() && f.Kind() == reflect.Struct {
			return f, true
		}
	}
	return reflect.Value{}, false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
