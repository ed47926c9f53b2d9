// Package azuretest is an in-memory Azure for the stages' tests: resource
// groups, disks, VMs, NICs, public IPs, NSGs, virtual networks, images and
// gallery image versions, served through the Azure SDK's own fake server
// packages (armcompute/v8/fake, armnetwork/v7/fake, armresources/v3/fake),
// so that the real SDK clients of internal/azure talk to it unchanged.
//
// No ARM emulator exists, so this is a model, and it must be a faithful
// one: long-running operations poll, lists page, power states follow a
// scripted guest (Guest), and a call the model does not implement fails
// loudly (the fake packages' "fake for method X not implemented", or an
// unknown provider here) instead of answering something plausible. Every
// call is recorded (Calls); faults can be injected at the nth call or at
// every call of an operation; Latency is added to each call.
package azuretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake/server"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	computefake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8/fake"
	networkfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7/fake"
	resourcesfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3/fake"
	storagefake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/v2/fake"
)

// Subscription is the subscription ID of every Azure made here.
const Subscription = "00000000-0000-0000-0000-00000000c1b0"

// Azure is one in-memory Azure subscription.
type Azure struct {
	// Latency is added to every call, as an ARM round trip would be.
	Latency time.Duration
	// DefaultGuest is the guest of a VM that SetGuest did not name.
	DefaultGuest Guest
	// Hook, when set (before the first call), is called with each call
	// once it is answered, before the answer is returned: tests use it to
	// cancel a run just after a given call took effect.
	Hook func(Call)

	mu        sync.Mutex
	resources map[string]resource // by lower-case resource ID
	calls     []Call
	faults    []Fault

	// The fake servers of each SDK package. The model fills in the
	// operations it implements; the others stay nil and fail loudly.
	compute computefake.ServerFactory
	network networkfake.ServerFactory
	groups  resourcesfake.ServerFactory
	storage storagefake.ServerFactory
	// ops are the fake server transports of the operations, by name
	// (opParam): each operation's first request gets a transport of its
	// own, and its polls and next pages go to it (see transport).
	ops    map[string]policy.Transporter
	nextOp int

	machines *computeState // compute.go: sizes, quota, guests, VM states
}

// resource is one stored resource: the SDK model value as last written.
type resource struct {
	id    string // as created, case kept
	value any
}

// Call is one request the SDK made.
type Call struct {
	N      int    // 1-based, in order of arrival
	API    string // the SDK method, e.g. VirtualMachinesClient.BeginCreateOrUpdate
	Method string // HTTP method
	Path   string
	Fault  bool // answered by an injected fault
}

// Fault makes calls fail: the Nth call (N > 0), or every call of API
// (when API is set), answers Status with an Azure error body of Code and
// Message (by default one that names the call as an injected fault).
// Times bounds how often it fires (0: always).
type Fault struct {
	N       int
	API     string
	Status  int
	Code    string
	Message string
	Times   int
	fired   int
}

// New makes an empty subscription.
func New() *Azure {
	a := &Azure{resources: map[string]resource{}, ops: map[string]policy.Transporter{}}
	a.install()
	return a
}

// opParam is the query parameter that names an operation: added to its
// first request, it is in the URLs of its polls and next pages, which the
// fake servers make from that request's.
const opParam = "azuretest-op"

// transport returns the fake server transport that serves req, and the
// request to give it: for the first request of an operation, a new
// transport and the request with the operation's name added; for a poll
// or a next page, the operation's transport.
//
// The SDK's fake servers keep each long-running operation's (and each
// pager's) remaining responses by URL path, and forget them only when
// the last is answered successfully. An operation that failed while
// polling (a polling error, a terminal error, a fault injected on a
// poll, a client that gave up) would leave its state behind, and the
// next Begin of the same operation on the same URL would get the stale
// answers without reaching the model; and two operations on one path at
// once (two lists of resource SKUs) would share their answers. A fresh
// transport per operation has no such state.
func (a *Azure) transport(req *http.Request) (policy.Transporter, *http.Request, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if op := req.URL.Query().Get(opParam); op != "" {
		tr, ok := a.ops[op]
		if !ok {
			return nil, nil, fmt.Errorf("no operation %s", op)
		}
		return tr, req, nil
	}
	if server.SanitizePagerPollerPath(req.URL.Path) != req.URL.Path {
		return nil, nil, errors.New("no such operation under way")
	}
	var tr policy.Transporter
	lower := strings.ToLower(req.URL.Path)
	switch {
	case strings.Contains(lower, "/providers/microsoft.compute/"):
		tr = computefake.NewServerFactoryTransport(&a.compute)
	case strings.Contains(lower, "/providers/microsoft.network/"):
		tr = networkfake.NewServerFactoryTransport(&a.network)
	case strings.Contains(lower, "/providers/microsoft.storage/"):
		tr = storagefake.NewServerFactoryTransport(&a.storage)
	case !strings.Contains(lower, "/providers/"):
		tr = resourcesfake.NewServerFactoryTransport(&a.groups)
	default:
		return nil, nil, nil
	}
	a.nextOp++
	op := strconv.Itoa(a.nextOp)
	a.ops[op] = tr
	u := *req.URL
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += opParam + "=" + op
	named := req.Clone(req.Context())
	named.URL = &u
	return tr, named, nil
}

// install fills in the fake servers with the model's operations. Each
// part of the model adds its own (groups.go, compute.go, network.go).
func (a *Azure) install() {
	for _, f := range installers {
		f(a)
	}
}

// installers are the parts of the model; each file registers its own.
var installers []func(*Azure)

// ClientOptions are the options of an SDK client that talks to this
// Azure. Retries are off: a test sees each fault once, and the code under
// test does its own retrying.
func (a *Azure) ClientOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: a,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

// Inject adds a fault.
func (a *Azure) Inject(f Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = append(a.faults, f)
}

// ClearFaults removes every fault.
func (a *Azure) ClearFaults() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = nil
}

// Calls returns the calls made so far.
func (a *Azure) Calls() []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// Do serves one request of an SDK client: it records the call, waits the
// latency, answers an injected fault, or hands the request to the fake
// server of its resource provider. Then Hook sees the call.
//
// A request whose context ends first is answered with the context's
// error; the model serves it all the same if it had got it (as Azure
// would a request it had received). The fake servers never see the
// request's cancellation: when it ends while they serve, they may send
// on a channel they have closed, and panic.
func (a *Azure) Do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	api, _ := ctx.Value(runtime.CtxAPINameKey{}).(string)
	a.mu.Lock()
	c := Call{N: len(a.calls) + 1, API: api, Method: req.Method, Path: req.URL.Path}
	var fault *Fault
	for i := range a.faults {
		f := &a.faults[i]
		if (f.N > 0 && f.N == c.N) || (f.API != "" && f.API == api) {
			if f.Times == 0 || f.fired < f.Times {
				f.fired++
				fault = f
				break
			}
		}
	}
	c.Fault = fault != nil
	a.calls = append(a.calls, c)
	hook := a.Hook
	a.mu.Unlock()
	if hook != nil {
		defer hook(c)
	}

	if err := ctx.Err(); err != nil {
		return nil, err // never sent
	}
	if a.Latency > 0 {
		select {
		case <-time.After(a.Latency):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fault != nil {
		msg := fault.Message
		if msg == "" {
			msg = fmt.Sprintf("injected fault at call %d (%s)", c.N, api)
		}
		return errorResponse(req, fault.Status, fault.Code, msg), nil
	}
	tr, named, err := a.transport(req)
	if err != nil {
		return errorResponse(req, http.StatusNotFound, "NotFoundInModel",
			fmt.Sprintf("azuretest: %s %s (%s): %v", req.Method, req.URL.Path, api, err)), nil
	}
	if tr == nil {
		return errorResponse(req, http.StatusNotImplemented, "NotImplementedInModel",
			fmt.Sprintf("azuretest: %s %s (%s) is not part of the in-memory Azure", req.Method, req.URL.Path, api)), nil
	}
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := tr.Do(named.WithContext(context.WithoutCancel(ctx)))
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// errorResponse is an ARM error response.
func errorResponse(req *http.Request, status int, code, msg string) *http.Response {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("x-ms-error-code", code)
	return &http.Response{
		StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}

// put stores value under id.
func (a *Azure) put(id string, value any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resources[strings.ToLower(id)] = resource{id: id, value: value}
}

// get returns the value stored under id.
func (a *Azure) get(id string) (any, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.resources[strings.ToLower(id)]
	return r.value, ok
}

// del removes id and reports whether it was there.
func (a *Azure) del(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.resources[strings.ToLower(id)]
	delete(a.resources, strings.ToLower(id))
	return ok
}

// delPrefix removes every resource whose ID starts with prefix.
func (a *Azure) delPrefix(prefix string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := strings.ToLower(prefix)
	for k := range a.resources {
		if strings.HasPrefix(k, p) {
			delete(a.resources, k)
		}
	}
}

// children returns the values stored under IDs that start with prefix
// (a resource group's, a provider type's), in ID order.
func (a *Azure) children(prefix string) []any {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := strings.ToLower(prefix)
	var keys []string
	for k := range a.resources {
		if strings.HasPrefix(k, p) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = a.resources[k].value
	}
	return out
}

// IDs returns the IDs of every resource, sorted.
func (a *Azure) IDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for _, r := range a.resources {
		ids = append(ids, r.id)
	}
	sort.Strings(ids)
	return ids
}

// Since returns the IDs of the resources that were not among before (an
// IDs result): what a run left behind.
func (a *Azure) Since(before []string) []string {
	var left []string
	for _, id := range a.IDs() {
		if !slices.ContainsFunc(before, func(b string) bool { return strings.EqualFold(b, id) }) {
			left = append(left, id)
		}
	}
	return left
}

// GroupID is the ID of resource group name.
func GroupID(name string) string {
	return "/subscriptions/" + Subscription + "/resourceGroups/" + name
}

// ResourceID is the ID of resource name of type provider/kind in group.
func ResourceID(group, provider, kind, name string) string {
	return GroupID(group) + "/providers/" + provider + "/" + kind + "/" + name
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
