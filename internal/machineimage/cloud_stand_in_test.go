package machineimage

// This file is a TEMPORARY stand-in: a small recording implementation of
// Cloud and the pipeline tests that run against it. It is to be replaced
// by azuretest-backed tests once internal/azure implements Cloud (delete
// this file then; the pure tests in the other files stay).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cib-project/cib/internal/config"
)

type siResource struct {
	kind, group, name string
	tags              map[string]string
	attachedTo        string       // NIC/disk: VM; IP: NIC
	states            []PowerState // VM: what the next polls see; the last repeats
	generalized       bool
	regions           []string
}

// standIn models what the pipeline relies on and fails on anything else.
type standIn struct {
	t  testing.TB
	mu sync.Mutex

	calls    []string
	n        int
	failAt   int // inject a failure at this call (1-based)
	cancelAt int // cancel the build's context at this call
	cancel   func()
	hangDel  bool // deletes of VMs block until their context ends

	offered                 bool
	need, free              int
	subnet                  string
	afterCreate, afterStart []PowerState
	run                     func(script string) RunResult
	res                     map[string]*siResource
}

func newStandIn(t testing.TB) *standIn {
	return &standIn{
		t: t, offered: true, need: 3, free: 100, res: map[string]*siResource{},
		// First boot reseals to audit mode and stops; the second runs the
		// bootstrap and sysprep, and stops for good.
		afterCreate: []PowerState{Starting, Running, Running, Stopped},
		afterStart:  []PowerState{Running, Running, Running, Stopping, Stopped},
	}
}

func (s *standIn) call(ctx context.Context, name string) error {
	s.mu.Lock()
	s.n++
	n := s.n
	s.calls = append(s.calls, name)
	s.mu.Unlock()
	if n == s.cancelAt && s.cancel != nil {
		s.cancel()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n == s.failAt {
		return fmt.Errorf("injected failure at call %d (%s)", n, name)
	}
	return nil
}

func (s *standIn) add(kind string, r Resource) (string, error) {
	id := fmt.Sprintf("/rg/%s/%s/%s", r.Group, kind, r.Name)
	if _, ok := s.res[id]; ok {
		return "", fmt.Errorf("%s exists", id)
	}
	for _, k := range []string{TagManaged, TagRun, TagKey, TagExpires} {
		if r.Tags[k] == "" {
			s.t.Errorf("%s created without tag %s", id, k)
		}
	}
	s.res[id] = &siResource{kind: kind, group: r.Group, name: r.Name, tags: merge(r.Tags)}
	return id, nil
}

func (s *standIn) get(id, kind string) (*siResource, error) {
	r, ok := s.res[id]
	if !ok || r.kind != kind {
		return nil, fmt.Errorf("%s: no such %s", id, kind)
	}
	return r, nil
}

func (s *standIn) SizeOffered(ctx context.Context, region, size string) (bool, error) {
	return s.offered, s.call(ctx, "SizeOffered")
}

func (s *standIn) VCPUs(ctx context.Context, region, size string) (int, int, error) {
	return s.need, s.free, s.call(ctx, "VCPUs")
}

func (s *standIn) ImageExists(ctx context.Context, group, name string) (bool, error) {
	if err := s.call(ctx, "ImageExists"); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.res[fmt.Sprintf("/rg/%s/image/%s", group, name)]
	return ok, nil
}

func (s *standIn) EnsureNetwork(ctx context.Context, n Network) (string, error) {
	if err := s.call(ctx, "EnsureNetwork"); err != nil {
		return "", err
	}
	if n.NSG == "" || n.VNet == "" || n.Subnet == "" || len(n.Rules) == 0 || len(n.DNS) == 0 || n.Tags[TagExpires] != "" {
		return "", fmt.Errorf("network not as modelled: %+v", n)
	}
	s.subnet = fmt.Sprintf("/rg/%s/vnet/%s/subnet/%s", n.Group, n.VNet, n.Subnet)
	return s.subnet, nil
}

func (s *standIn) CreateDisk(ctx context.Context, d Disk) (string, error) {
	if err := s.call(ctx, "CreateDisk"); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.SourceBlob != "" && (d.HyperVGeneration == "" || d.StorageAccountID == "") {
		return "", errors.New("import without generation or account")
	}
	return s.add("disk", d.Resource)
}

func (s *standIn) CreatePublicIP(ctx context.Context, r Resource) (string, error) {
	if err := s.call(ctx, "CreatePublicIP"); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add("ip", r)
}

func (s *standIn) CreateNIC(ctx context.Context, r Resource, subnetID, ipID string) (string, error) {
	if err := s.call(ctx, "CreateNIC"); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if subnetID != s.subnet {
		return "", fmt.Errorf("unknown subnet %s", subnetID)
	}
	var ip *siResource
	if ipID != "" {
		var err error
		if ip, err = s.get(ipID, "ip"); err != nil {
			return "", err
		}
	}
	id, err := s.add("nic", r)
	if ip != nil {
		ip.attachedTo = id
	}
	return id, err
}

func (s *standIn) CreateVM(ctx context.Context, vm VM) (string, error) {
	if err := s.call(ctx, "CreateVM"); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := append([]string{vm.NICID}, vm.DataDiskIDs...)
	if vm.Source == nil {
		parts = append(parts, vm.OSDiskID)
	} else if vm.AdminPass == "" || vm.OSDiskID != "" {
		return "", errors.New("marketplace VM without password, or with an OS disk")
	}
	for _, p := range parts {
		r, ok := s.res[p]
		if !ok || r.attachedTo != "" {
			return "", fmt.Errorf("%s missing or in use", p)
		}
	}
	id, err := s.add("vm", vm.Resource)
	if err != nil {
		return "", err
	}
	for _, p := range parts {
		s.res[p].attachedTo = id
	}
	s.res[id].states = slices.Clone(s.afterCreate)
	return id, nil
}

func (s *standIn) vm(id string) (*siResource, error) { return s.get(id, "vm") }

func (r *siResource) state() PowerState { return r.states[0] }

func (s *standIn) PowerState(ctx context.Context, id string) (PowerState, error) {
	if err := s.call(ctx, "PowerState"); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vm(id)
	if err != nil {
		return "", err
	}
	st := v.state()
	if len(v.states) > 1 {
		v.states = v.states[1:]
	}
	return st, nil
}

func (s *standIn) StartVM(ctx context.Context, id string) error {
	if err := s.call(ctx, "StartVM"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vm(id)
	if err != nil {
		return err
	}
	if !isStopped(v.state()) {
		return fmt.Errorf("start: VM is %s", v.state())
	}
	v.states = slices.Clone(s.afterStart)
	return nil
}

func (s *standIn) RunCommand(ctx context.Context, id, script string) (RunResult, error) {
	if err := s.call(ctx, "RunCommand"); err != nil {
		return RunResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.vm(id); err != nil {
		return RunResult{}, err
	}
	if s.run == nil {
		s.t.Errorf("RunCommand %q: not modelled", script)
		return RunResult{}, errors.New("not modelled")
	}
	return s.run(script), nil
}

func (s *standIn) Diagnostics(ctx context.Context, id string) (Diagnostics, error) {
	if err := s.call(ctx, "Diagnostics"); err != nil {
		return Diagnostics{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vm(id)
	if err != nil {
		return Diagnostics{}, err
	}
	return Diagnostics{Screenshot: []byte("\x89PNG...."), Serial: []byte("boot\nstate " + string(v.state()) + "\n")}, nil
}

func (s *standIn) Deallocate(ctx context.Context, id string) error {
	if err := s.call(ctx, "Deallocate"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vm(id)
	if err == nil {
		v.states = []PowerState{Deallocated}
	}
	return err
}

func (s *standIn) Generalize(ctx context.Context, id string) error {
	if err := s.call(ctx, "Generalize"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vm(id)
	if err != nil {
		return err
	}
	if v.state() != Deallocated {
		return errors.New("generalize: not deallocated")
	}
	v.generalized = true
	return nil
}

func (s *standIn) CreateImage(ctx context.Context, img Image) (string, error) {
	if err := s.call(ctx, "CreateImage"); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vm(img.SourceVMID)
	if err != nil {
		return "", err
	}
	if !v.generalized {
		return "", errors.New("image of a VM not generalized")
	}
	delete(s.res, fmt.Sprintf("/rg/%s/image/%s", img.Group, img.Name)) // create or update
	return s.add("image", img.Resource)
}

func (s *standIn) CreateImageVersion(ctx context.Context, iv ImageVersion) (string, error) {
	if err := s.call(ctx, "CreateImageVersion"); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(iv.SourceImageID, "image"); err != nil {
		return "", err
	}
	if len(iv.Regions) == 0 || iv.Regions[0] != iv.Region || iv.Gallery == "" || iv.Definition == "" {
		return "", fmt.Errorf("version not as modelled: %+v", iv)
	}
	iv.Name = iv.Gallery + "/" + iv.Definition + "/" + iv.Name
	id, err := s.add("version", iv.Resource)
	if err == nil {
		s.res[id].regions = iv.Regions
	}
	return id, err
}

func (s *standIn) Tag(ctx context.Context, id string, tags map[string]string) error {
	if err := s.call(ctx, "Tag"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.res[id]
	if !ok {
		return fmt.Errorf("tag: %s: not found", id)
	}
	r.tags = merge(r.tags, tags)
	return nil
}

func (s *standIn) Delete(ctx context.Context, id string) error {
	if err := s.call(ctx, "Delete"); err != nil {
		return err
	}
	s.mu.Lock()
	r, ok := s.res[id]
	if ok && r.kind == "vm" && s.hangDel {
		s.mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	defer s.mu.Unlock()
	if !ok {
		return nil
	}
	for oid, o := range s.res {
		if o.attachedTo == id {
			if r.kind != "vm" && r.kind != "nic" { // a VM holds its NIC and disks, a NIC its IP
				return fmt.Errorf("%s is in use by %s", oid, id)
			}
			o.attachedTo = ""
		}
	}
	if r.attachedTo != "" {
		return fmt.Errorf("%s is in use by %s", id, r.attachedTo)
	}
	delete(s.res, id)
	return nil
}

// left are the resources of a kind that remain.
func (s *standIn) left(kinds ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, r := range s.res {
		if len(kinds) == 0 || slices.Contains(kinds, r.kind) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (s *standIn) callList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// --- the pipeline tests ---

var portedConfig struct {
	once sync.Once
	cfg  *config.Config
	err  error
}

func loadKey(t *testing.T, name string) (*config.Config, *config.Key) {
	t.Helper()
	portedConfig.once.Do(func() { portedConfig.cfg, portedConfig.err = config.Load("../../config") })
	if portedConfig.err != nil {
		t.Fatal(portedConfig.err)
	}
	// Each test edits its own copy of the key.
	k := *portedConfig.cfg.Key(name)
	k.Targets = slices.Clone(k.Targets)
	return portedConfig.cfg, &k
}

func inputs(t *testing.T, s *standIn, clk Clock) BuildInputs {
	cfg, k := loadKey(t, "win10-64")
	return BuildInputs{
		Cloud: s, Key: k, Target: &k.Targets[0], Environment: "production",
		Timeouts:     cfg.Settings.Timeouts,
		DiskRevision: "0123456789abcdef0123456789abcdef01234567", DiskCommitTime: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		DiskTask:         "https://github.com/o/r/actions/runs/1",
		DiskBlobURL:      "https://sacentralusgeckot.blob.core.windows.net/images/vhd/2026-11-01/0123456-azure-windows10-professional-en-us-x86-64-fixed.vhd",
		StorageAccountID: "/rg/rg-central-us-gecko-t/storage/sacentralusgeckot",
		Revision:         "fedcba9876543210fedcba9876543210fedcba98", CommitTime: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		RunURL: "https://github.com/o/r/actions/runs/2", Fingerprint: "sha256:abc",
		Gallery: "cib_gecko_t", Definition: "win10-64",
		PollMin: time.Second, PollMax: 30 * time.Second,
		ArtifactsDir: t.TempDir(), Clock: clk,
		Log: func(f string, a ...any) { t.Logf(f, a...) },
	}
}

var wantCalls = []string{
	"ImageExists", "SizeOffered", "VCPUs",
	"CreateDisk", "EnsureNetwork", "CreateNIC", "CreateDisk", "CreateDisk", "CreateVM",
	// reseal: starting, running, running, stopped, then start and running
	"PowerState", "Diagnostics", "PowerState", "Diagnostics", "PowerState", "PowerState", "Diagnostics",
	"StartVM", "PowerState", "Diagnostics",
	// generalize: running, running, stopping, stopped for a minute
	"PowerState", "PowerState", "PowerState", "Diagnostics", "PowerState", "Diagnostics",
}

func TestBuildNormal(t *testing.T) {
	s := newStandIn(t)
	in := inputs(t, s, newFakeClock())
	in.Key.Distribution = "rebuild"
	res, err := Build(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	calls := s.callList()
	if !slices.Equal(calls[:len(wantCalls)], wantCalls) {
		t.Errorf("calls =\n%v\nwant them to start with\n%v", calls, wantCalls)
	}
	for _, c := range calls {
		if c == "RunCommand" || c == "CreatePublicIP" || c == "CreateImageVersion" {
			t.Errorf("unexpected call %s", c)
		}
	}
	rest := calls[len(wantCalls):]
	for len(rest) > 0 && rest[0] == "PowerState" { // the stable minute
		rest = rest[1:]
	}
	if want := []string{"Deallocate", "Generalize", "CreateImage", "ImageExists", "Tag", "Delete", "Delete", "Delete", "Delete", "Delete"}; !slices.Equal(rest, want) {
		t.Errorf("calls after generalize = %v, want %v", rest, want)
	}
	if res.ImageName != "central-us-gecko-t-win10-64-0123456-39b8154" || res.ImageID == "" || res.Skipped || len(res.Left) > 0 {
		t.Errorf("result = %+v", res)
	}
	if left := s.left("vm", "nic", "ip", "disk", "version"); left != nil {
		t.Errorf("left behind: %v", left)
	}
	img := s.res[res.ImageID]
	for k, v := range map[string]string{
		"cib:managed": "true", "cib:expires": NoExpiry, "cib:key": "win10-64", "imageKey": "win10-64",
		"diskImageCommitSha": in.DiskRevision, "machineImageCommitSha": in.Revision, "machineImageTask": in.RunURL,
		"deploymentId": "39b8154", "workerType": "gecko-t-win10-64-azure", "os": "Windows 10", "isoIndex": "5",
		"isoName":     "en_windows_10_business_editions_version_1903_updated_sept_2019_x64_dvd_a10b235d.iso",
		"fingerprint": "sha256:abc", "diskImageCommitTime": "2026-11-01T00:00:00Z",
	} {
		if img.tags[k] != v {
			t.Errorf("image tag %s = %q, want %q", k, img.tags[k], v)
		}
	}
	var names []string
	for _, p := range res.Phases {
		names = append(names, p.Name)
	}
	if want := []string{"preflight", "disk", "network", "vm", "reseal", "generalize", "capture", "tag", "cleanup"}; !slices.Equal(names, want) {
		t.Errorf("phases = %v, want %v", names, want)
	}
	if len(res.Artifacts) == 0 || !strings.Contains(res.Artifacts[0], "01-vm-starting-screenshot.png") && !strings.Contains(res.Artifacts[0], "01-reseal-starting-screenshot.png") {
		t.Errorf("artifacts = %v", res.Artifacts)
	}
}

func TestBuildGuestNeverStops(t *testing.T) {
	s := newStandIn(t)
	s.afterCreate = []PowerState{Running}
	in := inputs(t, s, newFakeClock())
	res, err := Build(context.Background(), in)
	if err == nil || !IsRetryable(err) || !strings.Contains(err.Error(), "reseal timed out") || res.Failed != PhaseReseal {
		t.Fatalf("err = %v, failed %q", err, res.Failed)
	}
	var failure bool
	for _, a := range res.Artifacts {
		if _, err := os.Stat(a); err != nil {
			t.Error(err)
		}
		failure = failure || strings.Contains(a, "reseal-failure-serial.log")
	}
	if !failure || len(res.SerialTail) == 0 {
		t.Errorf("artifacts = %v, tail %v", res.Artifacts, res.SerialTail)
	}
	if left := s.left(); left != nil || res.Left != nil {
		t.Errorf("left behind: %v / %v", left, res.Left)
	}
}

func TestBuildFailsCleanlyAtEveryCall(t *testing.T) {
	s := newStandIn(t)
	if _, err := Build(context.Background(), inputs(t, s, newFakeClock())); err != nil {
		t.Fatal(err)
	}
	total := len(s.callList())
	for i := 1; i <= total; i++ {
		s := newStandIn(t)
		s.failAt = i
		in := inputs(t, s, newFakeClock())
		res, err := Build(context.Background(), in)
		call := s.callList()[i-1]
		switch {
		case err != nil && res.ImageID != "":
			t.Errorf("call %d (%s): failed but reports image %s", i, call, res.ImageID)
		case err == nil && call != "Diagnostics" && call != "Delete" && call != "PowerState":
			t.Errorf("call %d (%s): no error", i, call)
		case err != nil && strings.Contains(err.Error(), "in use"):
			t.Errorf("call %d (%s): %v", i, call, err)
		}
		kinds := []string{"vm", "nic", "ip", "disk", "version", "image"}
		if err == nil {
			kinds = kinds[:4]
		}
		if left := s.left(kinds...); left != nil || res.Left != nil {
			t.Errorf("call %d (%s): left behind %v / %v (err %v)", i, call, left, res.Left, err)
		}
	}
}

func TestBuildCancelledAtEveryCall(t *testing.T) {
	s := newStandIn(t)
	if _, err := Build(context.Background(), inputs(t, s, newFakeClock())); err != nil {
		t.Fatal(err)
	}
	total := len(s.callList())
	for i := 1; i <= total; i++ {
		s := newStandIn(t)
		ctx, cancel := context.WithCancel(context.Background())
		s.cancelAt, s.cancel = i, cancel
		in := inputs(t, s, newFakeClock())
		start := time.Now()
		res, err := Build(ctx, in)
		took := time.Since(start)
		call := s.callList()[i-1]
		if err == nil && res.ImageID == "" {
			t.Errorf("cancelled at call %d (%s): no error and no image", i, call)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled at call %d (%s): %v", i, call, err)
		}
		if took > 2*time.Second {
			t.Errorf("cancelled at call %d (%s): took %s", i, call, took)
		}
		kinds := []string{"vm", "nic", "ip", "disk", "version", "image"}
		if err == nil {
			kinds = kinds[:4]
		}
		if left := s.left(kinds...); left != nil || res.Left != nil {
			t.Errorf("cancelled at call %d (%s): left behind %v / %v", i, call, left, res.Left)
		}
		cancel()
	}
}

// A cancelled build whose VM delete hangs returns at the grace deadline
// and reports what may remain.
func TestBuildCancelledReturnsWithinGrace(t *testing.T) {
	s := newStandIn(t)
	s.hangDel = true
	s.afterCreate = []PowerState{Running}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := inputs(t, s, RealClock{})
	in.PollMin, in.PollMax, in.CancelGrace = time.Millisecond, 5*time.Millisecond, 300*time.Millisecond
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	res, err := Build(ctx, in)
	took := time.Since(start)
	if !errors.Is(err, context.Canceled) || took > 2*time.Second {
		t.Fatalf("err %v after %s", err, took)
	}
	if len(res.Left) == 0 || !strings.Contains(strings.Join(res.Left, " "), "/vm/") {
		t.Errorf("left = %v, want the VM (and what hangs on it)", res.Left)
	}
	for _, id := range s.left() {
		if s.res[id].tags[TagExpires] == "" {
			t.Errorf("%s remains without %s", id, TagExpires)
		}
	}
}

func TestBuildDisableCleanup(t *testing.T) {
	s := newStandIn(t)
	in := inputs(t, s, newFakeClock())
	in.DisableCleanup = true
	in.Key.Distribution = "rebuild"
	res, err := Build(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kept) != 5 || res.Left != nil {
		t.Errorf("kept %v, left %v", res.Kept, res.Left)
	}
	for _, id := range res.Kept {
		exp, err := time.Parse(time.RFC3339, s.res[id].tags[TagExpires])
		if err != nil || !exp.After(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: %s = %q", id, TagExpires, s.res[id].tags[TagExpires])
		}
	}
}

func TestBuildSkipsExistingImage(t *testing.T) {
	s := newStandIn(t)
	in := inputs(t, s, newFakeClock())
	s.res["/rg/rg-central-us-gecko-t/image/central-us-gecko-t-win10-64-0123456-39b8154"] = &siResource{kind: "image"}
	res, err := Build(context.Background(), in)
	if err != nil || !res.Skipped || !slices.Equal(s.callList(), []string{"ImageExists"}) {
		t.Errorf("res %+v, err %v, calls %v", res, err, s.callList())
	}
	// With overwrite, the image is built again.
	s.calls = nil
	in.Overwrite = true
	in.Key.Distribution = "rebuild"
	if res, err := Build(context.Background(), in); err != nil || res.Skipped || res.ImageID == "" {
		t.Errorf("overwrite: res %+v, err %v", res, err)
	}
}

func TestBuildPreflightRefusals(t *testing.T) {
	s := newStandIn(t)
	s.free = 2
	_, err := Build(context.Background(), inputs(t, s, newFakeClock()))
	if !IsRetryable(err) || !strings.Contains(err.Error(), "quota") {
		t.Errorf("quota: %v", err)
	}
	if c := s.callList(); !slices.Equal(c, []string{"ImageExists", "SizeOffered", "VCPUs"}) {
		t.Errorf("quota: calls %v", c)
	}
	s = newStandIn(t)
	s.offered = false
	_, err = Build(context.Background(), inputs(t, s, newFakeClock()))
	if err == nil || IsRetryable(err) || !strings.Contains(err.Error(), "Standard_DS3_v2 is not offered") {
		t.Errorf("size: %v", err)
	}
	if s.left() != nil {
		t.Errorf("created %v", s.left())
	}
}

func TestBuildReplicatesToThreeRegions(t *testing.T) {
	s := newStandIn(t)
	in := inputs(t, s, newFakeClock())
	in.Target.Locations = []string{"East US", "eastus2", "Central US"}
	res, err := Build(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"centralus", "eastus", "eastus2"}
	if !slices.Equal(res.Regions, want) || res.VersionID == "" {
		t.Fatalf("regions %v, version %q", res.Regions, res.VersionID)
	}
	v := s.res[res.VersionID]
	if !slices.Equal(v.regions, want) || v.tags[TagExpires] != NoExpiry || !strings.Contains(res.VersionID, "cib_gecko_t/win10-64/2026.1127.") {
		t.Errorf("version %s: %+v", res.VersionID, v)
	}
	if n := strings.Count(strings.Join(s.callList(), " "), "CreateVM"); n != 1 {
		t.Errorf("%d VMs built", n)
	}
}

func TestBuildBootstrapExecutions(t *testing.T) {
	s := newStandIn(t)
	in := inputs(t, s, newFakeClock())
	in.Tokens = map[string]string{"NAME": "cib-secret"}
	in.Mask = func(string) { t.Error("nothing to mask") }
	var scripts []string
	outputs := []string{"nope", "nope", "renamed"}
	s.run = func(script string) RunResult {
		scripts = append(scripts, script)
		if script == rebootScript {
			return RunResult{}
		}
		out := outputs[0]
		outputs = outputs[1:]
		return RunResult{Stdout: out}
	}
	in.Target.Bootstrap = &config.Bootstrap{Executions: []config.Execution{{
		Name: "rename", Shell: "azure-powershell",
		Commands: []config.Command{{Text: "$a = 1"}, {Format: "Rename-Computer '{0}'", Tokens: []string{"NAME"}}},
		Test:     &config.Test{Std: &config.StdTest{Out: &config.Match{Match: "RENAMED"}}},
		On:       &config.On{Success: "reboot after 30 s", Failure: "retry after 1 m"},
	}}}
	res, err := Build(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"$a = 1; Rename-Computer 'cib-secret'", "$a = 1; Rename-Computer 'cib-secret'", "$a = 1; Rename-Computer 'cib-secret'", rebootScript}
	if !slices.Equal(scripts, want) {
		t.Errorf("scripts = %q", scripts)
	}
	if !slices.ContainsFunc(res.Phases, func(p Phase) bool { return p.Name == PhaseBootstrap }) {
		t.Errorf("phases %v", res.Phases)
	}

	// Retries are bounded; retry-task is retryable; nothing is left.
	for failure, check := range map[string]func(error) bool{
		"retry": func(err error) bool {
			return err != nil && !IsRetryable(err) && strings.Contains(err.Error(), "failed 3 times")
		},
		"retry-task": IsRetryable,
		"fail":       func(err error) bool { return err != nil && !IsRetryable(err) },
		"retest":     func(err error) bool { return IsRetryable(err) && strings.Contains(err.Error(), "bootstrap timed out") },
	} {
		s := newStandIn(t)
		in := inputs(t, s, newFakeClock())
		in.Tokens = map[string]string{"NAME": "cib-secret"}
		s.run = func(string) RunResult { return RunResult{Stdout: "nope"} }
		k := *in.Key
		k.Targets = slices.Clone(k.Targets)
		in.Key, in.Target = &k, &k.Targets[0]
		in.Target.Bootstrap = &config.Bootstrap{Executions: []config.Execution{{
			Name: "rename", Commands: []config.Command{{Format: "Rename-Computer '{0}'", Tokens: []string{"NAME"}}},
			Test: &config.Test{Std: &config.StdTest{Out: &config.Match{Match: "renamed"}}},
			On:   &config.On{Failure: failure},
		}}}
		res, err := Build(context.Background(), in)
		if !check(err) || res.Failed != PhaseBootstrap {
			t.Errorf("on.failure %s: err %v, failed %q", failure, err, res.Failed)
		}
		if err != nil && strings.Contains(err.Error(), "cib-secret") {
			t.Errorf("on.failure %s: the error quotes a token: %v", failure, err)
		}
		if left := s.left(); left != nil {
			t.Errorf("on.failure %s: left %v", failure, left)
		}
	}
}

func TestBuildMarketplaceWithWinRM(t *testing.T) {
	s := newStandIn(t)
	in := inputs(t, s, newFakeClock())
	k := *in.Key
	k.Targets = slices.Clone(k.Targets)
	k.Image, k.ISO = nil, nil
	k.Source = &config.MarketplaceSource{Platform: "azure", Publisher: "MicrosoftWindowsServer", Offer: "WindowsServer", SKU: "2022-datacenter", Version: "latest"}
	k.Distribution = "rebuild"
	in.Key, in.Target, in.DiskBlobURL = &k, &k.Targets[0], ""
	var masked, logs []string
	in.Mask = func(p string) { masked = append(masked, p) }
	in.Log = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	s.afterCreate = []PowerState{Running}
	in.Target.Bootstrap = &config.Bootstrap{Executions: []config.Execution{{
		Name: "sysprep", Shell: "winrm-powershell", Commands: []config.Command{{Text: "sysprep /generalize /oobe /shutdown"}},
		Test: &config.Test{Status: &config.StatusTest{Code: &config.Match{Match: "PowerState/stopped"}}},
		On:   &config.On{Failure: "retest after 10 s"},
	}}}
	// Refused before anything is created without a WinRM client.
	if _, err := Build(context.Background(), in); err == nil || !strings.Contains(err.Error(), "WinRM") || s.callList() != nil {
		t.Fatalf("without WinRM: %v, calls %v", err, s.callList())
	}
	in.WinRM = func(ctx context.Context, ipID, script string) (RunResult, error) {
		if !strings.Contains(ipID, "/ip/") {
			t.Errorf("WinRM through %q", ipID)
		}
		s.mu.Lock()
		for _, r := range s.res {
			if r.kind == "vm" {
				r.states = []PowerState{Stopping, Stopped}
			}
		}
		s.mu.Unlock()
		return RunResult{}, nil
	}
	res, err := Build(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Join(s.callList(), " ")
	if !strings.Contains(calls, "CreatePublicIP CreateNIC CreateDisk CreateDisk CreateVM") || strings.Count(calls, "CreateDisk") != 2 {
		t.Errorf("calls %s", calls)
	}
	if len(masked) != 1 || len(masked[0]) < 12 {
		t.Fatalf("masked %v", masked)
	}
	for _, l := range logs {
		if strings.Contains(l, masked[0]) {
			t.Errorf("log line has the password: %s", l)
		}
	}
	if res.ImageName != "central-us-gecko-t-win10-64-fedcba9-39b8154" || s.left("vm", "nic", "ip", "disk") != nil {
		t.Errorf("res %+v, left %v", res, s.left())
	}
}
