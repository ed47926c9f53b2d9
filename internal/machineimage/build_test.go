package machineimage_test

// The pipeline's tests: Build drives azure.Machines (the real adapter,
// with the Azure SDK's clients) against azuretest's in-memory Azure, on a
// fast clock.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/config"
	mi "github.com/cib-project/cib/internal/machineimage"
)

const (
	group      = "rg-central-us-gecko-t"
	region     = "centralus"
	gallery    = "cib_gecko_t"
	definition = "win10-64"
	imageName  = "central-us-gecko-t-win10-64-0123456-39b8154"
)

var loaded struct {
	once sync.Once
	cfg  *config.Config
	err  error
}

// loadKey loads the repository's configuration once and returns a copy
// of key name that a test may edit.
func loadKey(t testing.TB, name string) (*config.Config, *config.Key) {
	t.Helper()
	loaded.once.Do(func() { loaded.cfg, loaded.err = config.Load("../../config") })
	if loaded.err != nil {
		t.Fatal(loaded.err)
	}
	k := *loaded.cfg.Key(name)
	k.Targets = slices.Clone(k.Targets)
	return loaded.cfg, &k
}

// rig is one in-memory Azure with what a build finds there before it
// runs (the resource group and the gallery image definition: cib
// prepare's), a Machines that talks to it, and the inputs of a build of
// win10-64 in its first target.
type rig struct {
	t      testing.TB
	a      *azuretest.Azure
	m      *azure.Machines
	in     mi.BuildInputs
	clock  *mi.FakeClock
	before []string // the IDs before the build
	n0     int      // the calls before the build
	logs   []string
	mu     sync.Mutex
}

// guestBoots is the guest of a normal build: the first boot reseals to
// audit mode and shuts down; the second (after the start) runs the
// bootstrap and sysprep, and shuts down. The guest runs in real time,
// the pipeline on a fake clock (each of its sleeps takes a moment of
// real time): the second boot is long enough for the pipeline to see it
// running even when a poll fails, and short enough for the waits (polls
// at most PollMax apart) to see the end well before their timeouts.
var guestBoots = azuretest.Guest{Boots: []time.Duration{5 * time.Millisecond, 20 * time.Millisecond}}

func newRig(t testing.TB, wrap func(policy.Transporter) policy.Transporter) *rig {
	t.Helper()
	a := azuretest.New()
	t.Cleanup(a.Close)
	a.OfferSizes(region, azuretest.StandardSizes...)
	a.DefaultGuest = guestBoots
	opts := a.ClientOptions()
	groups, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(context.Background(), group, armresources.ResourceGroup{Location: to.Ptr(region)}, nil); err != nil {
		t.Fatal(err)
	}
	a.AddGalleryImage(group, gallery, definition, region, "V1")
	if wrap != nil {
		opts.Transport = wrap(opts.Transport)
	}
	m, err := azure.NewMachines(azuretest.Subscription, &fake.TokenCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	m.PollFrequency = time.Millisecond
	r := &rig{t: t, a: a, m: m, clock: mi.NewFakeClock()}
	cfg, k := loadKey(t, "win10-64")
	k.Targets[0].Locations = nil // one region, unless a test says otherwise
	r.in = mi.BuildInputs{
		Cloud: m, Key: k, Target: &k.Targets[0], Environment: "production",
		Timeouts:     cfg.Settings.Timeouts,
		DiskRevision: "0123456789abcdef0123456789abcdef01234567", DiskCommitTime: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		DiskTask:         "https://github.com/o/r/actions/runs/1",
		DiskBlobURL:      "https://sacentralusgeckot.blob.core.windows.net/images/vhd/2026-11-01/0123456-azure-windows10-professional-en-us-x86-64-fixed.vhd",
		StorageAccountID: "/subscriptions/" + azuretest.Subscription + "/resourceGroups/" + group + "/providers/Microsoft.Storage/storageAccounts/sacentralusgeckot",
		Revision:         "fedcba9876543210fedcba9876543210fedcba98", CommitTime: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		RunURL: "https://github.com/o/r/actions/runs/2", Fingerprint: "sha256:abc",
		Gallery: gallery, Definition: definition,
		PollMin: time.Second, PollMax: 2 * time.Second,
		ArtifactsDir: t.TempDir(), Clock: r.clock,
		Log: func(f string, a ...any) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.logs = append(r.logs, fmt.Sprintf(f, a...))
		},
	}
	r.before, r.n0 = a.IDs(), len(a.Calls())
	return r
}

// log is what the build logged.
func (r *rig) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

// calls are the calls since the rig was made.
func (r *rig) calls() []azuretest.Call { return r.a.Calls()[r.n0:] }

// build runs the build of r.in.
func (r *rig) build(ctx context.Context) (mi.BuildResult, error) {
	return mi.Build(ctx, r.in)
}

// isShared reports whether id is shared infrastructure that a run may
// create and never deletes: the network (NSG, its rules, the virtual
// network, its subnets).
func isShared(id string) bool {
	l := strings.ToLower(id)
	return strings.Contains(l, "/providers/microsoft.network/networksecuritygroups/") ||
		strings.Contains(l, "/providers/microsoft.network/virtualnetworks/")
}

// left returns what the run left besides shared infrastructure and keep
// (the run's product).
func (r *rig) left(keep ...string) []string {
	var out []string
	for _, id := range r.a.Since(r.before) {
		if !isShared(id) && !slices.ContainsFunc(keep, func(k string) bool { return strings.EqualFold(k, id) }) {
			out = append(out, id)
		}
	}
	return out
}

// apis are the APIs of the calls that begin an operation: without the
// polls of a long-running operation and the next pages of a list.
func apis(calls []azuretest.Call) []string {
	var out []string
	for _, c := range calls {
		if !strings.HasSuffix(c.Path, "/get/fake/status") && !strings.Contains(c.Path, "/fake_page_") {
			out = append(out, c.API)
		}
	}
	return out
}

// collapse drops the repeats of an API in a row (the polls of a wait).
func collapse(list []string) []string {
	return slices.Compact(slices.Clone(list))
}

// tagsOf reads the tags of a resource the pipeline creates.
func (r *rig) tagsOf(id string) map[string]string {
	r.t.Helper()
	ctx := context.Background()
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		r.t.Fatal(err)
	}
	cred, opts := &fake.TokenCredential{}, r.a.ClientOptions()
	cf, _ := armcompute.NewClientFactory(azuretest.Subscription, cred, opts)
	nf, _ := armnetwork.NewClientFactory(azuretest.Subscription, cred, opts)
	g, n := rid.ResourceGroupName, rid.Name
	var tags map[string]*string
	switch strings.ToLower(rid.ResourceType.String()) {
	case "microsoft.compute/virtualmachines":
		v, e := cf.NewVirtualMachinesClient().Get(ctx, g, n, nil)
		tags, err = v.Tags, e
	case "microsoft.compute/disks":
		v, e := cf.NewDisksClient().Get(ctx, g, n, nil)
		tags, err = v.Tags, e
	case "microsoft.compute/images":
		v, e := cf.NewImagesClient().Get(ctx, g, n, nil)
		tags, err = v.Tags, e
	case "microsoft.compute/galleries/images/versions":
		v, e := cf.NewGalleryImageVersionsClient().Get(ctx, g, rid.Parent.Parent.Name, rid.Parent.Name, n, nil)
		tags, err = v.Tags, e
	case "microsoft.network/networkinterfaces":
		v, e := nf.NewInterfacesClient().Get(ctx, g, n, nil)
		tags, err = v.Tags, e
	case "microsoft.network/publicipaddresses":
		v, e := nf.NewPublicIPAddressesClient().Get(ctx, g, n, nil)
		tags, err = v.Tags, e
	default:
		r.t.Fatalf("tags of %s: not a type the pipeline creates", id)
	}
	if err != nil {
		r.t.Fatalf("tags of %s: %v", id, err)
	}
	out := map[string]string{}
	for k, v := range tags {
		out[k] = *v
	}
	return out
}

func phases(res mi.BuildResult) []string {
	var names []string
	for _, p := range res.Phases {
		names = append(names, p.Name)
	}
	return names
}

// wantAPIs are the calls of a normal build of win10-64 in one region,
// with the polls of each long-running operation and the power-state
// polls of each wait collapsed.
var wantAPIs = []string{
	// preflight: the image name, the size, the quota
	"ImagesClient.Get", "ResourceSKUsClient.NewListPager", "UsageClient.NewListPager",
	// the OS disk, imported
	"DisksClient.BeginCreateOrUpdate",
	// the shared network: group, NSG and rules, virtual network, subnet
	"ResourceGroupsClient.Get", "SecurityGroupsClient.Get", "SecurityGroupsClient.BeginCreateOrUpdate", "SecurityRulesClient.BeginCreateOrUpdate",
	"VirtualNetworksClient.Get", "VirtualNetworksClient.BeginCreateOrUpdate",
	// the VM: NIC, two data disks, the VM
	"InterfacesClient.BeginCreateOrUpdate", "DisksClient.BeginCreateOrUpdate", "VirtualMachinesClient.BeginCreateOrUpdate",
	// reseal: polls until stopped (diagnostics at each change), start, running
	"VirtualMachinesClient.InstanceView", "VirtualMachinesClient.RetrieveBootDiagnosticsData", "VirtualMachinesClient.InstanceView",
	"VirtualMachinesClient.RetrieveBootDiagnosticsData", "VirtualMachinesClient.BeginStart",
	"VirtualMachinesClient.InstanceView", "VirtualMachinesClient.RetrieveBootDiagnosticsData",
	// generalize: polls until stopped for a stable minute
	"VirtualMachinesClient.InstanceView", "VirtualMachinesClient.RetrieveBootDiagnosticsData", "VirtualMachinesClient.InstanceView",
	// capture: deallocate, generalize, image, verify; then tag: read
	// (the two reads collapsed), update
	"VirtualMachinesClient.BeginDeallocate", "VirtualMachinesClient.Generalize", "ImagesClient.BeginCreateOrUpdate", "ImagesClient.Get",
	"ImagesClient.BeginUpdate",
	// cleanup, in reverse order: VM, data disks, NIC, OS disk
	"VirtualMachinesClient.BeginDelete", "DisksClient.BeginDelete", "InterfacesClient.BeginDelete", "DisksClient.BeginDelete",
}

func TestBuildNormal(t *testing.T) {
	r := newRig(t, nil)
	res, err := r.build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := collapse(apis(r.calls()))
	if !slices.Equal(got, wantAPIs) {
		t.Errorf("calls =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantAPIs, "\n"))
	}
	for _, c := range r.calls() {
		if c.Fault || strings.Contains(c.API, "RunCommand") || strings.Contains(c.API, "Restart") || strings.Contains(c.API, "GalleryImageVersions") || strings.Contains(c.API, "PublicIP") {
			t.Errorf("unexpected call %+v", c)
		}
	}
	if res.ImageName != imageName || res.Skipped || len(res.Left) > 0 || res.Failed != "" {
		t.Errorf("result = %+v", res)
	}
	if want := azuretest.ResourceID(group, "Microsoft.Compute", "images", imageName); !strings.EqualFold(res.ImageID, want) {
		t.Errorf("image %s, want %s", res.ImageID, want)
	}
	if !slices.Equal(res.Regions, []string{region}) || res.VersionID != "" {
		t.Errorf("regions %v, version %q", res.Regions, res.VersionID)
	}
	if left := r.left(res.ImageID); left != nil {
		t.Errorf("left behind: %v", left)
	}
	tags := r.tagsOf(res.ImageID)
	for k, v := range map[string]string{
		"cib:managed": "true", "cib:expires": mi.NoExpiry, "cib:key": "win10-64", "cib:run": r.in.RunURL, "imageKey": "win10-64",
		"diskImageCommitSha": r.in.DiskRevision, "machineImageCommitSha": r.in.Revision, "machineImageTask": r.in.RunURL,
		"deploymentId": "39b8154", "workerType": "gecko-t-win10-64-azure", "os": "Windows 10", "isoIndex": "5",
		"isoName":     "en_windows_10_business_editions_version_1903_updated_sept_2019_x64_dvd_a10b235d.iso",
		"fingerprint": "sha256:abc", "diskImageCommitTime": "2026-11-01T00:00:00Z", "diskImageTask": r.in.DiskTask,
	} {
		if tags[k] != v {
			t.Errorf("image tag %s = %q, want %q", k, tags[k], v)
		}
	}
	if want := []string{"preflight", "disk", "network", "vm", "reseal", "generalize", "capture", "tag", "cleanup"}; !slices.Equal(phases(res), want) {
		t.Errorf("phases = %v, want %v", phases(res), want)
	}
	if len(res.Artifacts) < 4 || !strings.HasSuffix(res.Artifacts[0], "01-reseal-running-screenshot.png") {
		t.Errorf("artifacts = %v", res.Artifacts)
	}
	for _, p := range res.Artifacts {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
}

func TestBuildGuestNeverStops(t *testing.T) {
	r := newRig(t, nil)
	r.a.DefaultGuest = azuretest.Guest{} // never shuts down
	res, err := r.build(context.Background())
	if err == nil || !mi.IsRetryable(err) || !strings.Contains(err.Error(), "reseal timed out") || !strings.Contains(err.Error(), "30m") || res.Failed != mi.PhaseReseal {
		t.Fatalf("err = %v, failed %q", err, res.Failed)
	}
	var failure bool
	for _, a := range res.Artifacts {
		if _, err := os.Stat(a); err != nil {
			t.Error(err)
		}
		failure = failure || strings.HasSuffix(a, "reseal-failure-serial.log")
	}
	if !failure || len(res.SerialTail) == 0 || !strings.Contains(strings.Join(res.SerialTail, "\n"), "boot 1: Windows Boot Manager") {
		t.Errorf("artifacts = %v, tail %q", res.Artifacts, res.SerialTail)
	}
	if left := r.left(); left != nil || res.Left != nil || res.ImageID != "" {
		t.Errorf("left behind: %v / %v, image %q", left, res.Left, res.ImageID)
	}
}

// tolerated reports whether the pipeline may succeed although call i of
// calls (an injected fault of status) failed, and why:
//
//   - boot diagnostics (RetrieveBootDiagnosticsData), any status: they
//     are evidence saved beside the build, never the build itself; a
//     failure to fetch them is logged;
//   - a power-state poll (InstanceView), a server error only: one
//     transient failure among the polls of an hour-long wait is polled
//     again; a 4xx is permanent and fails the build;
//   - the final tags (ImagesClient.Get after the image was verified, and
//     ImagesClient.BeginUpdate), a server error only: tagging is
//     idempotent and retried, so that a build that got this far is not
//     thrown away for one transient error;
//   - a delete of the undo (VM, disk, NIC BeginDelete), any status: the
//     undo tries each delete again (a delete may fail because what held
//     the resource is still going), and nothing is left.
func tolerated(calls []azuretest.Call, i, status int) (bool, string) {
	c := calls[i-1]
	switch c.API {
	case "VirtualMachinesClient.RetrieveBootDiagnosticsData":
		return true, "diagnostics are evidence"
	case "VirtualMachinesClient.InstanceView":
		return status >= 500, "a transient poll failure is polled again"
	case "ImagesClient.BeginUpdate":
		return status >= 500, "the final tag is retried"
	case "ImagesClient.Get":
		gets := 0
		for _, p := range calls[:i-1] {
			if p.API == "ImagesClient.Get" {
				gets++
			}
		}
		// The first is preflight's, the second verifies the capture.
		return gets >= 2 && status >= 500, "the final tag is retried"
	case "VirtualMachinesClient.BeginDelete", "DisksClient.BeginDelete", "InterfacesClient.BeginDelete":
		return true, "the undo tries a delete again"
	}
	return false, ""
}

// An error injected at every call in turn, a server error (500) and a
// refusal (400): each run fails cleanly (a 500 retryable, a 400 not),
// reports no image, and leaves nothing behind; or, at a call whose
// failure the pipeline tolerates (see tolerated), succeeds and leaves
// only its image.
func TestBuildFailsCleanlyAtEveryCall(t *testing.T) {
	clean := newRig(t, nil)
	if _, err := clean.build(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := len(clean.calls())
	toleratedAPIs := map[string]bool{}
	for i := 1; i <= total; i++ {
		for _, status := range []int{500, 400} {
			r := newRig(t, nil)
			code := map[int]string{500: "InternalServerError", 400: "BadRequest"}[status]
			r.a.Inject(azuretest.Fault{N: r.n0 + i, Status: status, Code: code})
			res, err := r.build(context.Background())
			calls := r.calls()
			if len(calls) < i {
				// This run made fewer calls than the clean one (its polls
				// differ with the guest's timing): the fault never fired.
				if err != nil {
					t.Errorf("fault %d at call %d, never fired, yet %v", status, i, err)
				}
				continue
			}
			c := calls[i-1]
			what := fmt.Sprintf("fault %d at call %d (%s %s)", status, i, c.API, c.Method)
			if !c.Fault {
				t.Errorf("%s: not faulted", what)
			}
			if err == nil {
				ok, why := tolerated(calls, i, status)
				if !ok {
					t.Errorf("%s: the build succeeded", what)
				}
				toleratedAPIs[fmt.Sprintf("%s %d: %s", c.API, status, why)] = true
				if left := r.left(res.ImageID); left != nil || res.Left != nil {
					t.Errorf("%s: left behind %v / %v", what, left, res.Left)
				}
				continue
			}
			if res.ImageID != "" || res.VersionID != "" || res.Failed == "" {
				t.Errorf("%s: failed (%v) but reports image %q, version %q, failed phase %q", what, err, res.ImageID, res.VersionID, res.Failed)
			}
			if mi.IsRetryable(err) != (status >= 500) {
				t.Errorf("%s: retryable = %v: %v", what, mi.IsRetryable(err), err)
			}
			if !strings.Contains(err.Error(), "injected fault") {
				t.Errorf("%s: the error does not say what failed: %v", what, err)
			}
			if left := r.left(); left != nil || res.Left != nil {
				t.Errorf("%s: left behind %v / %v (err %v)", what, left, res.Left, err)
			}
		}
	}
	var list []string
	for k := range toleratedAPIs {
		list = append(list, k)
	}
	slices.Sort(list)
	t.Logf("%d calls, each faulted with 500 and with 400; tolerated:\n%s", total, strings.Join(list, "\n"))
}

// dropper cancels a build at its nth ARM call, which then never reaches
// Azure (a request the cancellation cut off).
type dropper struct {
	next   policy.Transporter
	mu     sync.Mutex
	n, at  int
	cancel func()
	when   time.Time
}

func (d *dropper) Do(req *http.Request) (*http.Response, error) {
	d.mu.Lock()
	d.n++
	hit := d.n == d.at
	if hit {
		d.cancel()
		d.when = time.Now()
	}
	d.mu.Unlock()
	if hit {
		if err := req.Context().Err(); err != nil {
			return nil, err
		}
		// A request of the undo, whose context the cancellation does
		// not end: it fails as a broken connection would.
		return nil, errors.New("connection reset by the cancellation")
	}
	return d.next.Do(req)
}

// scaledClock is real time, faster: every party (the pipeline's waits
// and the undo's grace, the guest, the SDK's pollers) sees one timeline,
// as a cancelled run's undo needs (the fake clock would let the grace
// pass before an in-flight VM delete completes).
type scaledClock struct {
	start time.Time
	base  time.Time
	scale time.Duration
}

func newScaledClock(scale time.Duration) *scaledClock {
	return &scaledClock{start: time.Now(), base: mi.NewFakeClock().Now(), scale: scale}
}

func (c *scaledClock) Now() time.Time { return c.base.Add(time.Since(c.start) * c.scale) }

func (c *scaledClock) Sleep(ctx context.Context, d time.Duration) error {
	return mi.RealClock{}.Sleep(ctx, d/c.scale)
}

func (c *scaledClock) After(d time.Duration) <-chan time.Time { return time.After(d / c.scale) }

// Cancellation at every call in turn, in two ways: the call is served
// and the run is cancelled as it is (Hook), or the cancellation cuts the
// call off before it reaches Azure. Either way the run returns within
// the cancel grace, with context.Canceled, leaving nothing (or, when
// only the cleanup of a finished build was cancelled, its image).
func TestBuildCancelledAtEveryCall(t *testing.T) {
	clean := newRig(t, nil)
	if _, err := clean.build(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := len(clean.calls())
	for i := 1; i <= total; i++ {
		for _, mode := range []string{"served", "cut off"} {
			ctx, cancel := context.WithCancel(context.Background())
			// A second takes 5 ms: the cancel grace (7 s) is 35 ms, ample
			// for the model's deletes, whose polls are 1 ms apart.
			clock := newScaledClock(200)
			var cancelledAt time.Time
			var fakeAt time.Time
			var d *dropper
			var r *rig
			if mode == "served" {
				r = newRig(t, nil)
				r.a.Hook = func(c azuretest.Call) {
					if c.N == r.n0+i {
						cancelledAt, fakeAt = time.Now(), clock.Now()
						cancel()
					}
				}
			} else {
				r = newRig(t, func(next policy.Transporter) policy.Transporter {
					d = &dropper{next: next, at: i, cancel: cancel}
					return d
				})
			}
			r.in.Clock, r.in.StableStop = clock, 5*time.Second
			res, err := r.build(ctx)
			returned, fakeReturned := time.Now(), clock.Now()
			if d != nil {
				d.mu.Lock()
				cancelledAt = d.when
				fakeAt = clock.base.Add(d.when.Sub(clock.start) * clock.scale)
				d.mu.Unlock()
			}
			cancel()
			what := fmt.Sprintf("cancelled at call %d (%s)", i, mode)
			if cancelledAt.IsZero() {
				// The run made fewer calls than the clean one (its polls
				// differ): nothing to test at this index.
				if err != nil {
					t.Errorf("%s: never cancelled, yet %v", what, err)
				}
				continue
			}
			if calls := r.calls(); len(calls) >= i && mode == "served" {
				what += " " + calls[i-1].API
			}
			if took := returned.Sub(cancelledAt); took > mi.DefaultCancelGrace {
				t.Errorf("%s: returned %s after the cancellation", what, took)
			}
			if took := fakeReturned.Sub(fakeAt); took > mi.DefaultCancelGrace+time.Second {
				t.Errorf("%s: returned %s (clock) after the cancellation", what, took)
			}
			var keep []string
			switch {
			case err == nil:
				// Cancelled during the cleanup of a finished build: the
				// image is the product.
				if res.ImageID == "" {
					t.Errorf("%s: no error and no image", what)
				}
				keep = []string{res.ImageID}
			case !errors.Is(err, context.Canceled):
				t.Errorf("%s: %v", what, err)
			case res.ImageID != "":
				t.Errorf("%s: cancelled, yet reports image %s", what, res.ImageID)
			}
			if left := r.left(keep...); left != nil || res.Left != nil {
				t.Errorf("%s: left behind %v / %v (err %v)\n%s", what, left, res.Left, err, r.log())
			}
		}
	}
}

// hangDeletes makes the VM's delete hang until its request is cut off.
type hangDeletes struct{ next policy.Transporter }

func (h hangDeletes) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodDelete && strings.Contains(req.URL.Path, "/virtualMachines/") {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	return h.next.Do(req)
}

// A cancelled build whose VM delete hangs returns at the grace deadline
// and reports what may remain, all tagged to expire.
func TestBuildCancelledReturnsWithinGrace(t *testing.T) {
	r := newRig(t, func(next policy.Transporter) policy.Transporter { return hangDeletes{next} })
	r.a.DefaultGuest = azuretest.Guest{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.in.Clock = mi.RealClock{}
	r.in.PollMin, r.in.PollMax, r.in.CancelGrace = time.Millisecond, 5*time.Millisecond, 300*time.Millisecond
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start := time.Now()
	res, err := r.build(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.Canceled) || took > 100*time.Millisecond+r.in.CancelGrace+time.Second {
		t.Fatalf("err %v after %s", err, took)
	}
	if len(res.Left) == 0 || !strings.Contains(strings.Join(res.Left, " "), "/virtualMachines/") {
		t.Errorf("left = %v, want the VM (and what hangs on it)", res.Left)
	}
	left := r.left()
	if !slices.ContainsFunc(left, func(id string) bool { return strings.Contains(id, "/virtualMachines/") }) {
		t.Errorf("Azure has %v: the VM's delete hung, it should remain", left)
	}
	for _, id := range left {
		if !slices.ContainsFunc(res.Left, func(l string) bool { return strings.EqualFold(l, id) }) && !strings.Contains(id, "_OsDisk_") {
			t.Errorf("%s remains but is not reported", id)
		}
		if exp := r.tagsOf(id)[mi.TagExpires]; exp == "" || exp == mi.NoExpiry {
			t.Errorf("%s remains with %s = %q", id, mi.TagExpires, exp)
		}
	}
}

func TestBuildDisableCleanup(t *testing.T) {
	r := newRig(t, nil)
	r.in.DisableCleanup = true
	res, err := r.build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kept) != 5 || res.Left != nil {
		t.Errorf("kept %v, left %v", res.Kept, res.Left)
	}
	left := r.left(res.ImageID)
	slices.Sort(left)
	kept := slices.Clone(res.Kept)
	slices.Sort(kept)
	if !slices.EqualFunc(left, kept, strings.EqualFold) {
		t.Errorf("Azure has %v, kept %v", left, kept)
	}
	for _, id := range res.Kept {
		exp, err := time.Parse(time.RFC3339, r.tagsOf(id)[mi.TagExpires])
		if err != nil || !exp.Equal(mi.NewFakeClock().Now().Add(mi.DefaultTTL)) {
			t.Errorf("%s: %s = %v (%v)", id, mi.TagExpires, exp, err)
		}
	}
	for _, c := range r.calls() {
		if c.Method == http.MethodDelete {
			t.Errorf("deleted: %+v", c)
		}
	}
}

func TestBuildSkipsExistingImage(t *testing.T) {
	r := newRig(t, nil)
	first, err := r.build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := len(r.calls())
	res, err := r.build(context.Background())
	calls := r.calls()[n:]
	if err != nil || !res.Skipped || res.ImageID != first.ImageID || len(calls) != 1 || calls[0].API != "ImagesClient.Get" {
		t.Errorf("res %+v, err %v, calls %+v", res, err, calls)
	}

	// With overwrite, a build that fails keeps the old image.
	r.in.Overwrite = true
	r.in.Revision = "1111111111111111111111111111111111111111"
	r.a.DefaultGuest = azuretest.Guest{}
	if _, err := r.build(context.Background()); err == nil {
		t.Fatal("a guest that never stops: no error")
	}
	if id, err := r.m.ImageID(context.Background(), group, imageName); err != nil || id != first.ImageID {
		t.Fatalf("after a failed overwrite: image %q, %v", id, err)
	}
	if tags := r.tagsOf(first.ImageID); tags["machineImageCommitSha"] != "fedcba9876543210fedcba9876543210fedcba98" {
		t.Errorf("the old image changed: %v", tags)
	}

	// One that succeeds replaces it just before capturing the new one.
	r.a.DefaultGuest = guestBoots
	n = len(r.calls())
	res, err = r.build(context.Background())
	if err != nil || res.Skipped || !strings.EqualFold(res.ImageID, first.ImageID) {
		t.Fatalf("overwrite: res %+v, err %v", res, err)
	}
	got := collapse(apis(r.calls()[n:]))
	i := slices.Index(got, "ImagesClient.BeginDelete")
	if i < 1 || got[i-1] != "VirtualMachinesClient.Generalize" || got[i+1] != "ImagesClient.BeginCreateOrUpdate" {
		t.Errorf("overwrite calls: %v", got)
	}
	if tags := r.tagsOf(res.ImageID); tags["machineImageCommitSha"] != r.in.Revision || tags[mi.TagExpires] != mi.NoExpiry {
		t.Errorf("the new image's tags: %v", tags)
	}
	if left := r.left(res.ImageID); left != nil {
		t.Errorf("left behind: %v", left)
	}
}

func TestBuildQuotaExhausted(t *testing.T) {
	r := newRig(t, nil)
	r.a.SetQuota(region, "standardDSv2Family", 98, 100) // Standard_DS3_v2 needs 4
	res, err := r.build(context.Background())
	if !mi.IsRetryable(err) || !strings.Contains(err.Error(), "quota") || res.Failed != mi.PhasePreflight {
		t.Errorf("err %v, failed %q", err, res.Failed)
	}
	for _, c := range r.calls() {
		switch c.API {
		case "ImagesClient.Get", "ResourceSKUsClient.NewListPager", "UsageClient.NewListPager":
		default:
			t.Errorf("call %+v before the quota refusal", c)
		}
	}
	if left := r.a.Since(r.before); left != nil {
		t.Errorf("created %v", left)
	}
}

func TestBuildPreflightRefusals(t *testing.T) {
	r := newRig(t, nil)
	r.a.OfferSizes(region, azuretest.VMSize{Name: "Standard_DS3_v2", Family: "standardDSv2Family", VCPUs: 4, Restricted: true})
	res, err := r.build(context.Background())
	if err == nil || mi.IsRetryable(err) || !strings.Contains(err.Error(), "Standard_DS3_v2 is not offered") || res.Failed != mi.PhasePreflight {
		t.Errorf("size: %v", err)
	}
	if left := r.a.Since(r.before); left != nil {
		t.Errorf("created %v", left)
	}

	// A bad timeout, a replicated key without a gallery: before any call.
	for name, edit := range map[string]func(*mi.BuildInputs){
		"timeout": func(in *mi.BuildInputs) { in.Timeouts.Reseal = "soon" },
		"gallery": func(in *mi.BuildInputs) { in.Target.Locations = []string{"East US"}; in.Gallery = "" },
	} {
		r := newRig(t, nil)
		edit(&r.in)
		if _, err := r.build(context.Background()); err == nil || mi.IsRetryable(err) || len(r.calls()) != 0 {
			t.Errorf("%s: %v, calls %v", name, err, r.calls())
		}
	}
}

func TestBuildReplicatesToThreeRegions(t *testing.T) {
	r := newRig(t, nil)
	r.in.Target.Locations = []string{"East US", "eastus2", "Central US"}
	res, err := r.build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"centralus", "eastus", "eastus2"}
	if !slices.Equal(res.Regions, want) || res.VersionID == "" || !strings.Contains(res.VersionID, "/galleries/cib_gecko_t/images/win10-64/versions/2026.1127.") {
		t.Fatalf("regions %v, version %q", res.Regions, res.VersionID)
	}
	cf, _ := armcompute.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, r.a.ClientOptions())
	v, err := cf.NewGalleryImageVersionsClient().Get(context.Background(), group, gallery, definition, res.VersionID[strings.LastIndex(res.VersionID, "/")+1:],
		&armcompute.GalleryImageVersionsClientGetOptions{Expand: to.Ptr(armcompute.ReplicationStatusTypesReplicationStatus)})
	if err != nil {
		t.Fatal(err)
	}
	var regions []string
	for _, s := range v.Properties.ReplicationStatus.Summary {
		regions = append(regions, *s.Region)
		if *s.State != armcompute.ReplicationStateCompleted {
			t.Errorf("replica %s: %s", *s.Region, *s.State)
		}
	}
	if !slices.Equal(regions, want) {
		t.Errorf("replicated to %v", regions)
	}
	if tags := r.tagsOf(res.VersionID); tags[mi.TagExpires] != mi.NoExpiry || tags["imageKey"] != "win10-64" {
		t.Errorf("version tags %v", tags)
	}
	creates := 0
	for _, c := range r.calls() {
		if c.API == "VirtualMachinesClient.BeginCreateOrUpdate" && c.Method == http.MethodPut {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("%d VMs built", creates)
	}
	if left := r.left(res.ImageID, res.VersionID); left != nil {
		t.Errorf("left behind: %v", left)
	}
}

func TestBuildBootstrapExecutions(t *testing.T) {
	r := newRig(t, nil)
	r.in.Tokens = map[string]string{"NAME": "cib-secret"}
	r.in.Mask = func(string) { t.Error("nothing to mask") }
	var mu sync.Mutex
	var scripts []string
	outputs := []string{"nope", "nope", "renamed"}
	// Boot 1 reseals; boot 2 runs the executions and does not stop by
	// itself; the restart (on.success: reboot) is boot 3, which sysprep
	// ends.
	r.a.DefaultGuest = azuretest.Guest{
		Boots: []time.Duration{2 * time.Millisecond, 0, 2 * time.Millisecond},
		Commands: func(script string) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			scripts = append(scripts, script)
			out := outputs[0]
			outputs = outputs[1:]
			return out, nil
		},
	}
	r.in.Target.Bootstrap = &config.Bootstrap{Executions: []config.Execution{{
		Name: "rename", Shell: "azure-powershell",
		Commands: []config.Command{{Text: "$a = 1"}, {Format: "Rename-Computer '{0}'", Tokens: []string{"NAME"}}},
		Test:     &config.Test{Std: &config.StdTest{Out: &config.Match{Match: "RENAMED"}}},
		On:       &config.On{Success: "reboot after 30 s", Failure: "retry after 1 m"},
	}}}
	res, err := r.build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	script := "$a = 1; Rename-Computer 'cib-secret'"
	if want := []string{script, script, script}; !slices.Equal(scripts, want) {
		t.Errorf("scripts = %q", scripts)
	}
	got := collapse(apis(r.calls()))
	if i := slices.Index(got, "VirtualMachinesClient.BeginRestart"); i < 0 || got[i-1] != "VirtualMachinesClient.BeginRunCommand" || slices.Index(got, "VirtualMachinesClient.BeginDeallocate") < i {
		t.Errorf("calls %v: want the restart after the commands, before the capture", got)
	}
	if !slices.Contains(phases(res), mi.PhaseBootstrap) {
		t.Errorf("phases %v", phases(res))
	}
	if left := r.left(res.ImageID); left != nil {
		t.Errorf("left behind: %v", left)
	}

	// Retries are bounded; retry-task is retryable; nothing is left.
	for failure, check := range map[string]func(error) bool{
		"retry": func(err error) bool {
			return err != nil && !mi.IsRetryable(err) && strings.Contains(err.Error(), "failed 3 times")
		},
		"retry-task": mi.IsRetryable,
		"fail":       func(err error) bool { return err != nil && !mi.IsRetryable(err) },
		"retest": func(err error) bool {
			return mi.IsRetryable(err) && strings.Contains(err.Error(), "bootstrap timed out")
		},
		"reboot": func(err error) bool {
			return err != nil && !mi.IsRetryable(err) && strings.Contains(err.Error(), "failed 3 times")
		},
	} {
		r := newRig(t, nil)
		r.in.Tokens = map[string]string{"NAME": "cib-secret"}
		r.a.DefaultGuest = azuretest.Guest{Boots: []time.Duration{2 * time.Millisecond}, Commands: func(string) (string, error) { return "nope", nil }}
		r.in.PollMax = 30 * time.Second // the retest polls for two hours
		r.in.Target.Bootstrap = &config.Bootstrap{Executions: []config.Execution{{
			Name: "rename", Commands: []config.Command{{Format: "Rename-Computer '{0}'", Tokens: []string{"NAME"}}},
			Test: &config.Test{Std: &config.StdTest{Out: &config.Match{Match: "renamed"}}},
			On:   &config.On{Failure: failure},
		}}}
		res, err := r.build(context.Background())
		if !check(err) || res.Failed != mi.PhaseBootstrap {
			t.Errorf("on.failure %s: err %v, failed %q", failure, err, res.Failed)
		}
		if err != nil && strings.Contains(err.Error(), "cib-secret") {
			t.Errorf("on.failure %s: the error quotes a token: %v", failure, err)
		}
		restarts := 0
		for _, c := range r.calls() {
			if c.API == "VirtualMachinesClient.BeginRestart" && c.Method == http.MethodPost {
				restarts++
			}
		}
		if want := map[string]int{"reboot": 2}[failure]; restarts != want {
			t.Errorf("on.failure %s: %d restarts, want %d", failure, restarts, want)
		}
		if left := r.left(); left != nil {
			t.Errorf("on.failure %s: left %v", failure, left)
		}
	}
}

func TestBuildMarketplaceWithWinRM(t *testing.T) {
	r := newRig(t, nil)
	k := *r.in.Key
	k.Targets = slices.Clone(k.Targets)
	k.Image, k.ISO = nil, nil
	k.Source = &config.MarketplaceSource{Platform: "azure", Publisher: "MicrosoftWindowsServer", Offer: "WindowsServer", SKU: "2022-datacenter", Version: "latest"}
	r.in.Key, r.in.Target, r.in.DiskBlobURL = &k, &k.Targets[0], ""
	var masked []string
	r.in.Mask = func(p string) { masked = append(masked, p) }
	r.a.DefaultGuest = azuretest.Guest{}
	r.in.Target.Bootstrap = &config.Bootstrap{Executions: []config.Execution{{
		Name: "sysprep", Shell: "winrm-powershell", Commands: []config.Command{{Text: "sysprep /generalize /oobe /shutdown"}},
		Test: &config.Test{Status: &config.StatusTest{Code: &config.Match{Match: "PowerState/stopped"}}},
		On:   &config.On{Failure: "retest after 10 s"},
	}}}
	// Refused before anything is created without a WinRM client.
	if _, err := r.build(context.Background()); err == nil || !strings.Contains(err.Error(), "WinRM") || len(r.calls()) != 0 {
		t.Fatalf("without WinRM: %v, calls %v", err, r.calls())
	}
	var winrm []string
	r.in.WinRM = func(ctx context.Context, ipID, script string) (mi.RunResult, error) {
		winrm = append(winrm, ipID)
		// sysprep: the guest shuts down.
		for _, id := range r.a.IDs() {
			if i := strings.Index(id, "/virtualMachines/"); i >= 0 {
				r.a.SetGuest(id[i+len("/virtualMachines/"):], azuretest.Guest{Boots: []time.Duration{time.Nanosecond}})
			}
		}
		return mi.RunResult{}, nil
	}
	res, err := r.build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(winrm) != 1 || !strings.Contains(winrm[0], "/publicIPAddresses/ip-") {
		t.Errorf("WinRM through %v", winrm)
	}
	got := collapse(apis(r.calls()))
	i := slices.Index(got, "PublicIPAddressesClient.BeginCreateOrUpdate")
	if i < 0 || !slices.Equal(got[i:i+4], []string{"PublicIPAddressesClient.BeginCreateOrUpdate", "InterfacesClient.BeginCreateOrUpdate", "DisksClient.BeginCreateOrUpdate", "VirtualMachinesClient.BeginCreateOrUpdate"}) {
		t.Errorf("calls %v", got)
	}
	if len(masked) != 1 || len(masked[0]) < 12 {
		t.Fatalf("masked %v", masked)
	}
	for _, l := range r.logs {
		if strings.Contains(l, masked[0]) {
			t.Errorf("log line has the password: %s", l)
		}
	}
	if res.ImageName != "central-us-gecko-t-win10-64-fedcba9-39b8154" {
		t.Errorf("res %+v", res)
	}
	if left := r.left(res.ImageID); left != nil {
		t.Errorf("left behind (the OS disk goes with the VM): %v", left)
	}
}
