package machineimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/unattend"
)

// Defaults of BuildInputs' optional fields.
const (
	DefaultTTL               = 12 * time.Hour
	DefaultStableStop        = time.Minute
	DefaultCancelGrace       = 7 * time.Second
	DefaultCleanupTimeout    = 30 * time.Minute
	DefaultPollMin           = 5 * time.Second
	DefaultPollMax           = time.Minute
	DefaultResealTimeout     = time.Hour
	DefaultBootstrapTimeout  = time.Hour
	DefaultGeneralizeTimeout = 3 * time.Hour
)

// The phases of a build, as BuildResult.Phases and errors name them.
const (
	PhasePreflight  = "preflight"
	PhaseDisk       = "disk"
	PhaseNetwork    = "network"
	PhaseVM         = "vm"
	PhaseReseal     = "reseal"
	PhaseBootstrap  = "bootstrap"
	PhaseGeneralize = "generalize"
	PhaseCapture    = "capture"
	PhaseDistribute = "distribute"
	PhaseTag        = "tag"
	PhaseCleanup    = "cleanup"
)

// WinRM runs a script over WinRM on the VM reached through a public IP
// (the winrm-powershell shell). The pipeline creates the IP; the caller
// resolves its address and brings the client.
type WinRM func(ctx context.Context, publicIPID, script string) (RunResult, error)

// BuildInputs are everything one machine-image build needs: one key in one
// target group of one environment.
type BuildInputs struct {
	Cloud       Cloud
	Key         *config.Key
	Target      *config.Target
	Environment string
	// Timeouts bound the waits (settings.yaml timeouts; empty fields take
	// the Default*Timeout).
	Timeouts config.Timeouts

	// The disk image (from its build record); unused for marketplace keys.
	DiskRevision     string    // full commit SHA the disk image was built from
	DiskCommitTime   time.Time // that commit's time
	DiskTask         string    // the disk-image build's run URL
	DiskBlobURL      string    // the VHD page blob
	StorageAccountID string    // the blob's storage account, as import needs it

	// This build.
	Revision    string    // full commit SHA built
	CommitTime  time.Time // its commit time
	RunURL      string    // this workflow run: cib:run, machineImageTask
	Fingerprint string    // MachineInputs' fingerprint

	// Tokens are the values of bootstrap command tokens, by token.
	Tokens map[string]string
	// WinRM runs winrm-powershell executions; without it they are refused
	// before anything is created.
	WinRM WinRM

	// Gallery and Definition are the Compute Gallery image definition that
	// replicated versions go to (made by cib prepare). Needed when the
	// image is replicated.
	Gallery, Definition string

	Overwrite      bool // build even when the image name exists
	DisableCleanup bool // keep the build VM and its resources (still tagged to expire)

	TTL            time.Duration // cib:expires = start + TTL (DefaultTTL)
	StableStop     time.Duration // how long the VM must stay stopped after sysprep (DefaultStableStop)
	CancelGrace    time.Duration // how long a cancelled build spends deleting (DefaultCancelGrace)
	CleanupTimeout time.Duration // bound on an uncancelled cleanup (DefaultCleanupTimeout)
	PollMin        time.Duration // first poll interval (DefaultPollMin)
	PollMax        time.Duration // longest poll interval (DefaultPollMax)

	// ArtifactsDir receives boot diagnostics (screenshots, serial logs);
	// empty saves none.
	ArtifactsDir string
	// Log receives progress lines; never secrets.
	Log func(format string, a ...any)
	// Mask is called with every secret (the marketplace administrator
	// password) before it is used, so that the runner can hide it.
	Mask func(secret string)
	// Clock defaults to RealClock.
	Clock Clock
}

// Phase is one timed phase of a build.
type Phase struct {
	Name     string
	Duration time.Duration
}

// BuildResult is what a build did.
type BuildResult struct {
	// Skipped: the image name exists and Overwrite is off.
	Skipped   bool
	ImageName string
	// ImageID is the image built, or the existing one when Skipped.
	ImageID string
	// VersionID is the Compute Gallery image version, when replicated.
	VersionID string
	// Regions the image is available in: the build region, then the
	// replicas'.
	Regions []string
	Phases  []Phase
	// Artifacts are the files written under ArtifactsDir.
	Artifacts []string
	// Failed names the phase that failed, when one did.
	Failed string
	// SerialTail are the last lines of the last serial log fetched.
	SerialTail []string
	// Kept are the resources DisableCleanup kept.
	Kept []string
	// Left are the resources the undo could not delete (or not in time):
	// they carry cib:expires, for purge.
	Left []string
}

// builder is one build's state.
type builder struct {
	in      BuildInputs
	cloud   Cloud
	clock   Clock
	log     func(format string, a ...any)
	res     *BuildResult
	undo    undoStack
	start   time.Time
	region  string
	group   string
	tags    map[string]string // cib:* tags of every created resource
	rid     string
	vmName  string
	execs   []*execution
	timeout struct{ reseal, bootstrap, generalize time.Duration }

	vmID, ipID string
	// oldImageID is the image of the same name that Overwrite replaces:
	// deleted just before the new one is created, so that a build that
	// fails earlier keeps it.
	oldImageID string
	lastState  PowerState
	seq        int
}

// Build builds one machine image: preflight, disk, network, VM, bootstrap
// sequence, capture, distribution, cleanup (spec/machine-image.md §2).
// Errors are wrapped with the phase; a Retryable one (IsRetryable) may
// pass on a later run. Whatever the outcome, the resources the run created
// are deleted (unless DisableCleanup), and those that could not be are in
// BuildResult.Left.
func Build(ctx context.Context, in BuildInputs) (BuildResult, error) {
	var res BuildResult
	b, err := newBuilder(in, &res)
	if err != nil {
		res.Failed = PhasePreflight
		return res, fmt.Errorf("%s: %w", PhasePreflight, err)
	}
	if err := b.phase(PhasePreflight, func() error { return b.preflight(ctx) }); err != nil || res.Skipped {
		return res, err
	}
	err = b.run(ctx)
	if err != nil && b.vmID != "" && ctx.Err() == nil {
		b.diagnostics(context.WithoutCancel(ctx), res.Failed, "failure")
	}
	b.cleanup(ctx)
	if err != nil && !b.in.DisableCleanup {
		res.ImageID, res.VersionID, res.Regions = "", "", nil // undone
	}
	return res, err
}

func newBuilder(in BuildInputs, res *BuildResult) (*builder, error) {
	if in.Cloud == nil || in.Key == nil || in.Target == nil {
		return nil, errors.New("a build needs a cloud, a key and a target")
	}
	b := &builder{in: in, cloud: in.Cloud, clock: in.Clock, log: in.Log, res: res}
	if b.clock == nil {
		b.clock = RealClock{}
	}
	if b.log == nil {
		b.log = func(string, ...any) {}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&b.in.TTL, DefaultTTL)
	def(&b.in.StableStop, DefaultStableStop)
	def(&b.in.CancelGrace, DefaultCancelGrace)
	def(&b.in.CleanupTimeout, DefaultCleanupTimeout)
	def(&b.in.PollMin, DefaultPollMin)
	def(&b.in.PollMax, DefaultPollMax)
	for _, t := range []struct {
		name, v string
		dst     *time.Duration
		def     time.Duration
	}{
		{"reseal", in.Timeouts.Reseal, &b.timeout.reseal, DefaultResealTimeout},
		{"bootstrap", in.Timeouts.Bootstrap, &b.timeout.bootstrap, DefaultBootstrapTimeout},
		{"generalize", in.Timeouts.Generalize, &b.timeout.generalize, DefaultGeneralizeTimeout},
	} {
		*t.dst = t.def
		if t.v != "" {
			d, err := time.ParseDuration(t.v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("timeouts.%s %q: want a positive Go duration such as 30m", t.name, t.v)
			}
			*t.dst = d
		}
	}
	t := in.Target
	b.group, b.region = t.Group, t.RegionName()
	if len(t.Disk) == 0 {
		return nil, fmt.Errorf("target %s has no disk: the first is the OS disk", t.Group)
	}
	if !in.Key.Marketplace() && in.DiskBlobURL == "" {
		return nil, fmt.Errorf("key %s: no disk image blob to boot (its disk-image record gives it)", in.Key.Name)
	}
	sha := in.DiskRevision
	if in.Key.Marketplace() {
		sha = in.Revision
	}
	name, err := ImageName(t, in.Key.Name, sha)
	if err != nil {
		return nil, err
	}
	res.ImageName = name
	if t.Bootstrap != nil {
		for _, e := range t.Bootstrap.Executions {
			x, err := prepareExecution(e, in.Tokens)
			if err != nil {
				return nil, err
			}
			if x.shell == ShellWinRM && in.WinRM == nil {
				return nil, fmt.Errorf("execution %s: shell winrm-powershell needs a WinRM client, which this build has none of: use azure-powershell", e.Name)
			}
			b.execs = append(b.execs, x)
		}
	}
	if b.replicate() && (in.Gallery == "" || in.Definition == "") {
		return nil, fmt.Errorf("key %s replicates its image to %s: a Compute Gallery and image definition are needed (or distribution: rebuild)", in.Key.Name, strings.Join(t.Regions()[1:], ", "))
	}
	b.rid, b.vmName, err = resourceID(randReader, t.Hostname)
	if err != nil {
		return nil, err
	}
	b.start = b.clock.Now()
	b.tags = resourceTags(in.RunURL, in.Key.Name, b.start, b.in.TTL)
	return b, nil
}

// replicate reports whether the image goes to other regions as a gallery
// version rather than by building it there again.
func (b *builder) replicate() bool {
	return b.in.Key.Distribution != "rebuild" && len(b.in.Target.Regions()) > 1
}

// phase runs f as the named phase, timing it and naming it in its error.
func (b *builder) phase(name string, f func() error) error {
	t0 := b.clock.Now()
	err := f()
	b.res.Phases = append(b.res.Phases, Phase{Name: name, Duration: b.clock.Now().Sub(t0)})
	if err != nil {
		b.res.Failed = name
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (b *builder) preflight(ctx context.Context) error {
	name := b.res.ImageName
	id, err := b.cloud.ImageID(ctx, b.group, name)
	if err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	if id != "" && !b.in.Overwrite {
		b.log("image %s exists in %s: skipped (overwrite to build it again)", name, b.group)
		b.res.Skipped, b.res.ImageID = true, id
		return nil
	}
	if id != "" {
		b.log("image %s exists in %s: it is replaced when the new one is captured", name, b.group)
		b.oldImageID = id
	}
	size := b.in.Target.Machine.VMSize()
	ok, err := b.cloud.SizeOffered(ctx, b.region, size)
	if err != nil {
		return fmt.Errorf("size %s in %s: %w", size, b.region, err)
	}
	if !ok {
		return fmt.Errorf("VM size %s is not offered in %s to this subscription", size, b.region)
	}
	need, free, err := b.cloud.VCPUs(ctx, b.region, size)
	if err != nil {
		return fmt.Errorf("vCPU quota for %s in %s: %w", size, b.region, err)
	}
	if need > free {
		return &Retryable{Err: fmt.Errorf("vCPU quota: %s needs %d vCPUs and %d of its family are free in %s", size, need, free, b.region)}
	}
	return nil
}

// run creates, boots, waits and captures.
func (b *builder) run(ctx context.Context) error {
	var osDiskID string
	if !b.in.Key.Marketplace() {
		if err := b.phase(PhaseDisk, func() (err error) { osDiskID, err = b.osDisk(ctx); return err }); err != nil {
			return err
		}
	}
	var subnetID string
	if err := b.phase(PhaseNetwork, func() (err error) { subnetID, err = b.network(ctx); return err }); err != nil {
		return err
	}
	if err := b.phase(PhaseVM, func() error { return b.vm(ctx, osDiskID, subnetID) }); err != nil {
		return err
	}
	if im := b.in.Key.Image; im != nil && im.Reseal != nil && !im.Reseal.Omit && im.Reseal.Shutdown && strings.EqualFold(im.Reseal.Mode, "audit") {
		if err := b.phase(PhaseReseal, func() error { return b.reseal(ctx) }); err != nil {
			return err
		}
	}
	if len(b.execs) > 0 {
		if err := b.phase(PhaseBootstrap, func() error { return b.bootstrap(ctx) }); err != nil {
			return err
		}
	}
	if im := b.in.Key.Image; im != nil && im.Generalize != nil && !im.Generalize.Omit && im.Generalize.Shutdown {
		err := b.phase(PhaseGeneralize, func() error {
			return b.waitFor(ctx, PhaseGeneralize, "stopped", isStopped, b.timeout.generalize, b.in.StableStop)
		})
		if err != nil {
			return err
		}
	}
	if err := b.phase(PhaseCapture, func() error { return b.capture(ctx) }); err != nil {
		return err
	}
	if b.replicate() {
		if err := b.phase(PhaseDistribute, func() error { return b.distribute(ctx) }); err != nil {
			return err
		}
	}
	return b.phase(PhaseTag, func() error { return b.finish(ctx) })
}

func (b *builder) resource(name string, extra map[string]string) Resource {
	return Resource{Group: b.group, Region: b.region, Name: name, Tags: merge(extra, b.tags)}
}

// created registers the undo of a resource just created, or that a
// failed create may have left (Cloud: a non-empty ID with an error).
func (b *builder) created(kind, id string, err error) {
	if id == "" {
		return
	}
	if err != nil {
		b.log("%s %s may exist after a failed create: it is undone with the rest", kind, id)
	} else {
		b.log("created %s %s", kind, id)
	}
	b.undo.push(id, func(ctx context.Context) error { return b.cloud.Delete(ctx, id) })
}

func diskSKU(variant string) string {
	if strings.EqualFold(variant, "ssd") {
		return "StandardSSD_LRS"
	}
	return "Standard_LRS"
}

func (b *builder) osDisk(ctx context.Context) (string, error) {
	d := b.in.Target.Disk[0]
	id, err := b.cloud.CreateDisk(ctx, Disk{
		Resource: b.resource(fmt.Sprintf("disk-%s-0", b.rid), nil),
		SKU:      diskSKU(d.Variant), SizeGiB: d.Size, HyperVGeneration: b.in.Target.Machine.HyperV,
		SourceBlob: b.in.DiskBlobURL, StorageAccountID: b.in.StorageAccountID,
	})
	b.created("disk", id, err)
	if err != nil {
		return "", fmt.Errorf("OS disk from %s: %w", b.in.DiskBlobURL, err)
	}
	return id, nil
}

func (b *builder) network(ctx context.Context) (string, error) {
	net, err := TargetNetwork(b.in.Target)
	if err != nil {
		return "", err
	}
	net.Group, net.Region = b.group, b.region
	subnet, err := b.cloud.EnsureNetwork(ctx, net)
	if err != nil {
		return "", fmt.Errorf("network %s/%s: %w", net.VNet, net.Subnet, err)
	}
	return subnet, nil
}

// TargetNetwork is the network of target t (its NSG and rules, virtual
// network and subnet) as builds, prepare and verify ensure it: shared
// between runs, marked cib's, never expiring.
func TargetNetwork(t *config.Target) (Network, error) {
	n := t.Network
	if n == nil {
		return Network{}, fmt.Errorf("target %s has no network", t.Group)
	}
	net := Network{
		Group: t.Group, Region: t.RegionName(), NSG: n.Flow.Name, VNet: n.Name, Prefix: n.Prefix,
		DNS: n.DNS, Subnet: n.Subnet.Name, SubnetPrefix: n.Subnet.Prefix,
		Tags: map[string]string{TagManaged: "true"},
	}
	for _, r := range n.Flow.Rules {
		net.Rules = append(net.Rules, Rule{
			Name: r.Name, Description: r.Description, Access: r.Access, Protocol: r.Protocol,
			Direction: r.Direction, Priority: r.Priority,
			SourceAddressPrefix:  r.SourceAddressPrefix,
			SourcePortRange:      strings.Join(r.SourcePortRange, ","),
			DestinationPrefix:    strings.Join(r.DestinationAddressPrefix, ","),
			DestinationPortRange: r.DestinationPortRange,
		})
	}
	return net, nil
}

func (b *builder) needsPublicIP() bool {
	for _, x := range b.execs {
		if x.shell == ShellWinRM {
			return true
		}
	}
	return false
}

func (b *builder) vm(ctx context.Context, osDiskID, subnetID string) error {
	if b.needsPublicIP() {
		id, err := b.cloud.CreatePublicIP(ctx, b.resource("ip-"+b.rid, nil))
		b.created("public IP", id, err)
		if err != nil {
			return fmt.Errorf("public IP: %w", err)
		}
		b.ipID = id
	}
	nic, err := b.cloud.CreateNIC(ctx, b.resource("ni-"+b.rid, nil), subnetID, b.ipID)
	b.created("network interface", nic, err)
	if err != nil {
		return fmt.Errorf("network interface: %w", err)
	}
	var data []string
	for i, d := range b.in.Target.Disk[1:] {
		id, err := b.cloud.CreateDisk(ctx, Disk{
			Resource: b.resource(fmt.Sprintf("disk-%s-%d", b.rid, i+1), nil),
			SKU:      diskSKU(d.Variant), SizeGiB: d.Size,
		})
		b.created("data disk", id, err)
		if err != nil {
			return fmt.Errorf("data disk %d: %w", i+1, err)
		}
		data = append(data, id)
	}
	vm := VM{
		Resource: b.resource(b.vmName, targetTags(b.in.Target)),
		Size:     b.in.Target.Machine.VMSize(), OSDiskID: osDiskID, DataDiskIDs: data, NICID: nic,
	}
	if s := b.in.Key.Source; s != nil {
		pw, err := unattend.RandomPassword{}.Password()
		if err != nil {
			return fmt.Errorf("administrator password: %w", err)
		}
		if b.in.Mask != nil {
			b.in.Mask(pw)
		}
		vm.Source = &Marketplace{Publisher: s.Publisher, Offer: s.Offer, SKU: s.SKU, Version: s.Version}
		vm.AdminPass, vm.OSDiskSKU = pw, diskSKU(b.in.Target.Disk[0].Variant)
	}
	id, err := b.cloud.CreateVM(ctx, vm)
	b.created("VM", id, err)
	b.vmID = id
	if err != nil {
		// Never wrap anything that could quote the VM (its password).
		return fmt.Errorf("VM %s (%s): %w", b.vmName, vm.Size, err)
	}
	return nil
}

func isStopped(s PowerState) bool { return s == Stopped || s == Deallocated }
func isRunning(s PowerState) bool { return s == Running }

func (b *builder) reseal(ctx context.Context) error {
	if err := b.waitFor(ctx, PhaseReseal, "stopped", isStopped, b.timeout.reseal, 0); err != nil {
		return err
	}
	if err := b.cloud.StartVM(ctx, b.vmID); err != nil {
		return fmt.Errorf("start VM after reseal: %w", err)
	}
	return b.waitFor(ctx, PhaseReseal, "running", isRunning, b.timeout.reseal, 0)
}

// waitFor polls the VM's power state with backoff until want holds for
// stable, or timeout passes (a Retryable error naming phase). Each change
// of state saves the boot diagnostics.
func (b *builder) waitFor(ctx context.Context, phase, wantName string, want func(PowerState) bool, timeout, stable time.Duration) error {
	deadline := b.clock.Now().Add(timeout)
	bo := newBackoff(b.in.PollMin, b.in.PollMax)
	var since time.Time
	matched := false
	failures := 0
	for {
		st, err := b.state(ctx, phase)
		if err != nil {
			// One transient failure among the polls of an hour-long wait
			// does not end the build; a permanent one, or retryAttempts in
			// a row, does.
			failures++
			if !IsRetryable(err) || failures >= retryAttempts || ctx.Err() != nil {
				return err
			}
			b.log("%s: %v (trying again)", phase, err)
			if err := b.clock.Sleep(ctx, bo.step(0)); err != nil {
				return err
			}
			continue
		}
		failures = 0
		now := b.clock.Now()
		if want(st) {
			if !matched {
				matched, since = true, now
			}
			if now.Sub(since) >= stable {
				return nil
			}
		} else {
			matched = false
		}
		if !now.Before(deadline) {
			what := wantName
			if stable > 0 {
				what = fmt.Sprintf("%s for %s", wantName, stable)
			}
			return &Retryable{Err: fmt.Errorf("%s timed out: the VM was not %s within %s (last state: %s)", phase, what, timeout, st)}
		}
		limit := deadline.Sub(now)
		if matched {
			limit = min(limit, stable-now.Sub(since))
		}
		if err := b.clock.Sleep(ctx, bo.step(limit)); err != nil {
			return err
		}
	}
}

// state is the VM's power state; a change saves the diagnostics.
func (b *builder) state(ctx context.Context, phase string) (PowerState, error) {
	st, err := b.cloud.PowerState(ctx, b.vmID)
	if err != nil {
		return "", fmt.Errorf("power state: %w", err)
	}
	if st != b.lastState {
		b.log("%s: VM %s is %s", phase, b.vmName, st)
		b.lastState = st
		b.diagnostics(ctx, phase, string(st))
	}
	return st, nil
}

// diagnostics saves the VM's screenshot and serial log as artifacts. A
// failure to fetch them is logged, never fatal: they are evidence, not the
// build.
func (b *builder) diagnostics(ctx context.Context, phase, label string) {
	d, err := b.cloud.Diagnostics(ctx, b.vmID)
	if err != nil {
		b.log("%s: boot diagnostics: %v", phase, err)
		return
	}
	if len(d.Serial) > 0 {
		b.res.SerialTail = tail(d.Serial, 20)
	}
	if b.in.ArtifactsDir == "" {
		return
	}
	b.seq++
	if err := os.MkdirAll(b.in.ArtifactsDir, 0o755); err != nil {
		b.log("%s: boot diagnostics: %v", phase, err)
		return
	}
	base := fmt.Sprintf("%02d-%s-%s", b.seq, phase, label)
	for _, f := range []struct {
		name string
		data []byte
	}{{base + "-screenshot" + imageExt(d.Screenshot), d.Screenshot}, {base + "-serial.log", d.Serial}} {
		if len(f.data) == 0 {
			continue
		}
		p := filepath.Join(b.in.ArtifactsDir, f.name)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			b.log("%s: boot diagnostics: %v", phase, err)
			continue
		}
		b.res.Artifacts = append(b.res.Artifacts, p)
	}
}

func imageExt(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG")):
		return ".png"
	case bytes.HasPrefix(b, []byte("BM")):
		return ".bmp"
	case bytes.HasPrefix(b, []byte("\xff\xd8")):
		return ".jpg"
	}
	return ".bin"
}

func tail(b []byte, n int) []string {
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// bootstrap runs the executions in order (spec §3).
func (b *builder) bootstrap(ctx context.Context) error {
	for _, x := range b.execs {
		if err := b.execute(ctx, x); err != nil {
			return fmt.Errorf("execution %s: %w", x.name, err)
		}
	}
	return nil
}

func (b *builder) runScript(ctx context.Context, x *execution, script string) (RunResult, error) {
	if x.shell == ShellWinRM {
		return b.in.WinRM(ctx, b.ipID, script)
	}
	return b.cloud.RunCommand(ctx, b.vmID, script)
}

// test runs x's commands (when run) and tests the outcome.
func (b *builder) test(ctx context.Context, x *execution, run bool, last *RunResult) (bool, error) {
	if run {
		r, err := b.runScript(ctx, x, x.script)
		if err != nil {
			return false, fmt.Errorf("run: %w", err) // never the script: it may hold secrets
		}
		*last = r
	}
	st := Unknown
	if x.status != nil {
		var err error
		if st, err = b.state(ctx, PhaseBootstrap); err != nil {
			return false, err
		}
	}
	return x.passes(*last, st), nil
}

func (b *builder) execute(ctx context.Context, x *execution) error {
	deadline := b.clock.Now().Add(b.timeout.bootstrap)
	timedOut := func() error {
		return &Retryable{Err: fmt.Errorf("%s timed out: execution %s's test did not pass within %s", PhaseBootstrap, x.name, b.timeout.bootstrap)}
	}
	var last RunResult
	b.log("bootstrap: %s", x.name)
	ok, err := b.test(ctx, x, true, &last)
	for attempt := 1; ; {
		if err != nil {
			return err
		}
		if ok {
			return b.act(ctx, x.success)
		}
		switch x.failure.Kind {
		case ActionNone, ActionFail:
			return errors.New("the test failed")
		case ActionRetryTask:
			return &Retryable{Err: errors.New("the test failed (on.failure: retry-task)")}
		case ActionRetry, ActionReboot:
			if attempt >= x.attempts {
				return fmt.Errorf("the test failed %d times", attempt)
			}
			attempt++
			if err := b.act(ctx, x.failure); err != nil {
				return err
			}
			if !b.clock.Now().Before(deadline) {
				return timedOut()
			}
			b.log("bootstrap: %s: attempt %d of %d", x.name, attempt, x.attempts)
			ok, err = b.test(ctx, x, true, &last)
		case ActionRetest:
			if err := b.clock.Sleep(ctx, x.failure.After); err != nil {
				return err
			}
			bo := newBackoff(b.in.PollMin, b.in.PollMax)
			for {
				if ok, err = b.test(ctx, x, x.hasStd(), &last); err != nil || ok {
					break
				}
				now := b.clock.Now()
				if !now.Before(deadline) {
					return timedOut()
				}
				if err := b.clock.Sleep(ctx, bo.step(deadline.Sub(now))); err != nil {
					return err
				}
			}
		}
	}
}

// act carries out an action after its pause: only reboot does anything
// beyond the pause (retry and retest are their callers' loops).
func (b *builder) act(ctx context.Context, a Action) error {
	if a.After > 0 {
		if err := b.clock.Sleep(ctx, a.After); err != nil {
			return err
		}
	}
	if a.Kind != ActionReboot {
		return nil
	}
	if err := b.cloud.RestartVM(ctx, b.vmID); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

func (b *builder) imageTags() map[string]string {
	return ImageTags(ImageTagInputs{
		Key: b.in.Key, Target: b.in.Target, DiskRevision: b.in.DiskRevision, DiskCommitTime: b.in.DiskCommitTime,
		DiskTask: b.in.DiskTask, Revision: b.in.Revision, CommitTime: b.in.CommitTime, RunURL: b.in.RunURL,
		ResourceID: b.rid, Fingerprint: b.in.Fingerprint,
	})
}

func (b *builder) capture(ctx context.Context) error {
	if err := b.cloud.Deallocate(ctx, b.vmID); err != nil {
		return fmt.Errorf("deallocate: %w", err)
	}
	if err := b.cloud.Generalize(ctx, b.vmID); err != nil {
		return fmt.Errorf("generalize: %w", err)
	}
	if b.oldImageID != "" {
		// Overwrite: the old image goes only now, when the new one is
		// about to be captured.
		if err := b.cloud.Delete(ctx, b.oldImageID); err != nil {
			return fmt.Errorf("delete the image %s it replaces: %w", b.oldImageID, err)
		}
		b.log("deleted the image %s to replace it", b.oldImageID)
	}
	id, err := b.cloud.CreateImage(ctx, Image{
		Resource:   b.resource(b.res.ImageName, b.imageTags()),
		SourceVMID: b.vmID, HyperVGeneration: b.in.Target.Machine.HyperV,
	})
	b.created("image", id, err)
	if err != nil {
		return fmt.Errorf("image %s: %w", b.res.ImageName, err)
	}
	b.res.ImageID = id
	got, err := b.cloud.ImageID(ctx, b.group, b.res.ImageName)
	if err != nil {
		return fmt.Errorf("verify image %s: %w", b.res.ImageName, err)
	}
	if !strings.EqualFold(got, id) {
		return fmt.Errorf("image %s is missing after capture", b.res.ImageName)
	}
	b.res.Regions = []string{b.region}
	return nil
}

func (b *builder) distribute(ctx context.Context) error {
	regions := b.in.Target.Regions()
	id, err := b.cloud.CreateImageVersion(ctx, ImageVersion{
		Resource: b.resource(versionName(b.start), b.imageTags()),
		Gallery:  b.in.Gallery, Definition: b.in.Definition,
		SourceImageID: b.res.ImageID, Regions: regions,
	})
	b.created("image version", id, err)
	if err != nil {
		return fmt.Errorf("gallery image version in %s/%s: %w", b.in.Gallery, b.in.Definition, err)
	}
	b.res.VersionID, b.res.Regions = id, regions
	return nil
}

// finish tags the product as final and takes it off the undo stack.
func (b *builder) finish(ctx context.Context) error {
	final := merge(b.imageTags(), map[string]string{TagExpires: NoExpiry})
	for _, id := range []string{b.res.ImageID, b.res.VersionID} {
		if id == "" {
			continue
		}
		if err := b.retry(ctx, func() error { return b.cloud.Tag(ctx, id, final) }); err != nil {
			return fmt.Errorf("tag %s: %w", id, err)
		}
	}
	b.undo.keep(b.res.VersionID)
	b.undo.keep(b.res.ImageID)
	return nil
}

// Bounds of retry.
const (
	retryAttempts = 3
	retryPause    = 5 * time.Second
)

// retry calls f until it succeeds, fails for good (not Retryable), or has
// failed retryAttempts times, pausing between attempts. It is for
// idempotent calls whose transient failure should not waste a build that
// has got this far (the final tags).
func (b *builder) retry(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !IsRetryable(err) || attempt >= retryAttempts || ctx.Err() != nil {
			return err
		}
		b.log("%v (attempt %d of %d; trying again)", err, attempt, retryAttempts)
		if serr := b.clock.Sleep(ctx, retryPause*time.Duration(attempt)); serr != nil {
			return err
		}
	}
}

// cleanup deletes what the run created (or keeps it with DisableCleanup).
func (b *builder) cleanup(ctx context.Context) {
	if b.in.DisableCleanup {
		b.res.Kept = b.undo.ids()
		if len(b.res.Kept) > 0 {
			b.log("cleanup disabled: keeping %s (they expire at %s)", strings.Join(b.res.Kept, ", "), b.tags[TagExpires])
		}
		return
	}
	t0 := b.clock.Now()
	b.res.Left = b.undo.run(ctx, undoPolicy{
		clock: b.clock, grace: b.in.CancelGrace, timeout: b.in.CleanupTimeout,
		retry: time.Second, attempts: 3, log: b.log,
	})
	b.res.Phases = append(b.res.Phases, Phase{Name: PhaseCleanup, Duration: b.clock.Now().Sub(t0)})
	if len(b.res.Left) > 0 {
		b.log("cleanup: %d resources may remain (tagged %s=%s for purge): %s", len(b.res.Left), TagExpires, b.tags[TagExpires], strings.Join(b.res.Left, ", "))
	}
}
