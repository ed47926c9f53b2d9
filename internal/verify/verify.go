// Package verify proves that machine images boot healthy
// (spec/maintenance.md, "verify"): for each image it starts one VM, waits
// until the VM runs and Run Command answers a trivial script in the guest,
// records the result, and deletes what it started, whatever happened. It
// talks to the cloud only through Cloud, which internal/azure implements
// for Azure.
package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/cib-project/cib/internal/machineimage"
	"github.com/cib-project/cib/internal/secret"
)

// Cloud is what verify asks of a cloud (a subset of machineimage.Cloud,
// with its conventions: a Create that may have created something returns
// its ID along with the error; Delete of what is not there succeeds).
type Cloud interface {
	EnsureNetwork(ctx context.Context, n machineimage.Network) (subnetID string, err error)
	CreateNIC(ctx context.Context, r machineimage.Resource, subnetID, publicIPID string) (id string, err error)
	CreateVM(ctx context.Context, vm machineimage.VM) (id string, err error)
	PowerState(ctx context.Context, vmID string) (machineimage.PowerState, error)
	RunCommand(ctx context.Context, vmID, script string) (machineimage.RunResult, error)
	Diagnostics(ctx context.Context, vmID string) (machineimage.Diagnostics, error)
	Delete(ctx context.Context, id string) error
}

// Image is an image to verify, and where: the target it was built for.
type Image struct {
	ID     string // a managed image or gallery image version ID
	Key    string // the image key
	Group  string // the target's resource group: the VM goes there
	Region string // normalized
	// Network is the target's network, ensured (shared, never deleted)
	// for the VM's NIC.
	Network   machineimage.Network
	Size      string // VM size
	OSDiskSKU string // optional: Standard_LRS, StandardSSD_LRS
}

// Options tune a run; the zero value is the defaults.
type Options struct {
	// Timeout bounds each image's verification, from its network to
	// Run Command's answer (default DefaultTimeout).
	Timeout time.Duration
	// Poll is the pause between looks at the VM (default 10 s).
	Poll time.Duration
	// Concurrency is how many images are verified at once (default 4).
	Concurrency int
	// CleanupTimeout bounds the deletion of what one image's
	// verification created (default 15 min); it runs on a context of its
	// own, so that a cancelled run still cleans up.
	CleanupTimeout time.Duration
	// RetryPause is the pause before a failed delete's second attempt,
	// doubled before its third (default 2 s).
	RetryPause time.Duration
	// TTL is how long what verify creates is marked to live
	// (cib:expires), for purge to collect what a killed run left
	// (default 2 h).
	TTL time.Duration
	// RunURL is the cib:run tag of what verify creates.
	RunURL string
	// Log receives progress lines (nil: none). The administrator password
	// never reaches it.
	Log func(format string, args ...any)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Password makes the VMs' administrator passwords (nil: Password).
	Password func() (string, error)
}

// The defaults of Options.
const (
	DefaultTimeout        = 20 * time.Minute
	DefaultPoll           = 10 * time.Second
	DefaultConcurrency    = 4
	DefaultCleanupTimeout = 15 * time.Minute
	DefaultTTL            = 2 * time.Hour
)

// The tags of what verify creates, besides machineimage's cib:managed,
// cib:expires, cib:run and cib:key.
const (
	TagPurpose = "cib:purpose"
	Purpose    = "verify"
)

// Script is what Run Command runs in the guest; Answer is what it must
// write.
const (
	Script = "Write-Output cib-verify"
	Answer = "cib-verify"
)

// serialLines bounds the serial log lines a result keeps.
const serialLines = 20

// Result is the verdict on one image.
type Result struct {
	Image   Image
	VM      string // the VM's name ("" when none was started)
	Healthy bool
	// Reason says why the image is unhealthy, or how it proved healthy.
	Reason string
	// Retryable marks a failure that says nothing of the image:
	// throttling, quota, a transient cloud failure.
	Retryable bool
	// Running is how long the VM took to run, from its creation; Answered
	// how long until Run Command answered; Total the whole verification
	// (cleanup included); 0 when not reached.
	Running, Answered, Total time.Duration
	// SerialTail is the end of the VM's serial log, on failure.
	SerialTail []string
	// Left are the IDs of what could not be deleted (they expire, for
	// purge).
	Left []string
}

// Run verifies images, Options.Concurrency at a time, and returns a
// result per image, in order. Cancelling ctx stops the waits; what was
// created is deleted all the same.
func Run(ctx context.Context, cloud Cloud, images []Image, o Options) []Result {
	o = o.withDefaults()
	results := make([]Result, len(images))
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i, img := range images {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			results[i] = Result{Image: img, Reason: "not verified: " + cause(ctx)}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = one(ctx, cloud, img, o)
		}()
	}
	wg.Wait()
	return results
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, DefaultTimeout)
	def(&o.Poll, DefaultPoll)
	def(&o.CleanupTimeout, DefaultCleanupTimeout)
	def(&o.TTL, DefaultTTL)
	def(&o.RetryPause, 2*time.Second)
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Password == nil {
		o.Password = Password
	}
	return o
}

// cause names why ctx ended.
func cause(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "timed out"
	}
	return "cancelled"
}

// run is one image's verification under way.
type run struct {
	cloud   Cloud
	o       Options
	res     *Result
	created []string // IDs, in creation order
	log     func(format string, args ...any)
}

func one(ctx context.Context, cloud Cloud, img Image, o Options) Result {
	res := Result{Image: img}
	start := o.Now()
	suffix, err := randomHex(4)
	if err != nil {
		res.Reason = fmt.Sprintf("VM name: %v", err)
		return res
	}
	res.VM = "vfy-" + suffix // a Windows computer name: at most 15 characters
	r := &run{cloud: cloud, o: o, res: &res, log: func(format string, args ...any) {
		o.Log("verify %s in %s (VM %s): %s", img.Key, img.Group, res.VM, strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " "))
	}}
	work, stop := context.WithTimeout(ctx, o.Timeout)
	err = r.verify(work, start)
	stop()
	if err != nil {
		res.Healthy, res.Retryable = false, machineimage.IsRetryable(err)
		res.Reason = err.Error()
		r.log("unhealthy: %s", res.Reason)
	}
	r.cleanup(ctx)
	res.Total = o.Now().Sub(start)
	return res
}

// verify starts the VM and waits until it is healthy; a nil error is a
// healthy image.
func (r *run) verify(ctx context.Context, start time.Time) error {
	img, o := r.res.Image, r.o
	tags := map[string]string{
		machineimage.TagManaged: "true",
		machineimage.TagExpires: start.Add(o.TTL).UTC().Format(time.RFC3339),
		TagPurpose:              Purpose,
	}
	if o.RunURL != "" {
		tags[machineimage.TagRun] = o.RunURL
	}
	if img.Key != "" {
		tags[machineimage.TagKey] = img.Key
	}
	resource := func(name string) machineimage.Resource {
		return machineimage.Resource{Group: img.Group, Region: img.Region, Name: name, Tags: tags}
	}
	subnet, err := r.cloud.EnsureNetwork(ctx, img.Network)
	if err != nil {
		return r.stopped(ctx, fmt.Errorf("network %s/%s: %w", img.Network.VNet, img.Network.Subnet, err))
	}
	nic, err := r.cloud.CreateNIC(ctx, resource("ni-"+r.res.VM), subnet, "")
	r.created = appendID(r.created, nic)
	if err != nil {
		return r.stopped(ctx, fmt.Errorf("network interface: %w", err))
	}
	pw, err := o.Password()
	if err != nil {
		return fmt.Errorf("administrator password: %w", err)
	}
	r.log("creating VM (%s) in %s from %s", img.Size, img.Region, img.ID)
	created := o.Now()
	vmID, err := r.cloud.CreateVM(ctx, machineimage.VM{
		Resource: resource(r.res.VM), Size: img.Size, ImageID: img.ID, AdminPass: pw, OSDiskSKU: img.OSDiskSKU, NICID: nic,
	})
	if vmID != "" {
		// Azure deletes the OS disk with the VM; should it not, the
		// disk is deleted after it (its name is CreateVM's).
		r.created = appendID(r.created, osDiskID(vmID, r.res.VM))
		r.created = appendID(r.created, vmID)
	}
	if err != nil {
		err = secret.Redact(fmt.Errorf("create VM: %w", r.stopped(ctx, err)), pw)
		if vmID != "" {
			r.serial(vmID)
		}
		return err
	}
	r.log("created; waiting until it runs and Run Command answers")
	if err := r.wait(ctx, vmID, created); err != nil {
		r.serial(vmID)
		return err
	}
	r.res.Healthy = true
	r.res.Reason = fmt.Sprintf("running after %s, Run Command answered after %s", round(r.res.Running), round(r.res.Answered))
	r.log("healthy: %s", r.res.Reason)
	return nil
}

// stopped words err as a timeout or a cancellation when ctx ended it.
func (r *run) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s after %s: %w", cause(ctx), r.o.Timeout, err)
	}
	return err
}

// wait polls the VM until it runs and Run Command answers Script with
// Answer. A guest that stops, or answers something else, fails at once;
// a VM not yet running, or a Run Command refused (the guest agent is not
// ready), is waited for until ctx ends.
func (r *run) wait(ctx context.Context, vmID string, created time.Time) error {
	last := "no answer yet"
	var seen machineimage.PowerState
	for {
		st, err := r.cloud.PowerState(ctx, vmID)
		switch {
		case err != nil:
			last = "power state: " + err.Error()
		case st != seen:
			r.log("VM is %s", st)
			seen = st
		}
		switch {
		case err != nil:
		case isDown(st):
			return r.down(st, created)
		case st == machineimage.Running:
			if r.res.Running == 0 {
				r.res.Running = r.o.Now().Sub(created)
			}
			out, err := r.cloud.RunCommand(ctx, vmID, Script)
			if err == nil {
				if strings.TrimSpace(out.Stdout) == Answer && strings.TrimSpace(out.Stderr) == "" {
					r.res.Answered = r.o.Now().Sub(created)
					return nil
				}
				// A guest shutting down may answer anything on its way:
				// the shutdown is the news.
				if st, err := r.cloud.PowerState(ctx, vmID); err == nil && isDown(st) {
					return r.down(st, created)
				}
				return fmt.Errorf("run command answered %s, not %q", answer(out), Answer)
			}
			last = "run command: " + err.Error()
			if st, err := r.cloud.PowerState(ctx, vmID); err == nil && isDown(st) {
				return r.down(st, created)
			}
		default:
			last = "the VM is " + string(st)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("not healthy: %s after %s (last: %s)", cause(ctx), r.o.Timeout, last)
		}
		t := time.NewTimer(r.o.Poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("not healthy: %s after %s (last: %s)", cause(ctx), r.o.Timeout, last)
		}
	}
}

func isDown(st machineimage.PowerState) bool {
	switch st {
	case machineimage.Stopped, machineimage.Stopping, machineimage.Deallocated, machineimage.Deallocating:
		return true
	}
	return false
}

func (r *run) down(st machineimage.PowerState, created time.Time) error {
	return fmt.Errorf("the VM is %s: the guest shut down within %s of its creation", st, round(r.o.Now().Sub(created)))
}

// answer words what Run Command wrote.
func answer(out machineimage.RunResult) string {
	s := fmt.Sprintf("stdout %q", clip(strings.TrimSpace(out.Stdout)))
	if e := strings.TrimSpace(out.Stderr); e != "" {
		s += fmt.Sprintf(", stderr %q", clip(e))
	}
	return s
}

func clip(s string) string {
	const n = 300
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// serial keeps the tail of the VM's serial log. It runs on a context of
// its own: the verification's may have ended.
func (r *run) serial(vmID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := r.cloud.Diagnostics(ctx, vmID)
	if err != nil {
		r.log("boot diagnostics: %v", err)
		return
	}
	r.res.SerialTail = tail(d.Serial, serialLines)
}

// cleanup deletes what the run created, newest first, on a context of its
// own (bounded by CleanupTimeout) so that a cancelled run cleans up too.
// A failed delete is tried again, up to three times.
func (r *run) cleanup(parent context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), r.o.CleanupTimeout)
	defer cancel()
	for i := len(r.created) - 1; i >= 0; i-- {
		id := r.created[i]
		var err error
		for attempt := 1; attempt <= 3; attempt++ {
			if err = r.cloud.Delete(ctx, id); err == nil || ctx.Err() != nil {
				break
			}
			r.log("delete %s: %v (attempt %d of 3)", id, err, attempt)
			if attempt == 3 {
				break
			}
			t := time.NewTimer(r.o.RetryPause << (attempt - 1))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if err != nil {
			r.res.Left = append(r.res.Left, id)
			r.log("could not delete %s (it expires, for purge): %v", id, err)
			continue
		}
		r.log("deleted %s", id)
	}
}

func appendID(ids []string, id string) []string {
	if id == "" {
		return ids
	}
	return append(ids, id)
}

// osDiskID is the ID of the OS disk CreateVM names <vm>-osdisk, next to
// the VM.
func osDiskID(vmID, name string) string {
	i := strings.LastIndex(strings.ToLower(vmID), "/providers/microsoft.compute/virtualmachines/")
	if i < 0 {
		return ""
	}
	return vmID[:i] + "/providers/Microsoft.Compute/disks/" + name + "-osdisk"
}

func tail(b []byte, n int) []string {
	s := strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Password makes a random administrator password (crypto/rand) of 24
// characters that meets Azure's rules: upper and lower case letters,
// digits and symbols.
func Password() (string, error) {
	const (
		upper  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		lower  = "abcdefghijkmnopqrstuvwxyz"
		digits = "23456789"
		symbol = "!#%+-.=?@^_~"
	)
	sets := []string{upper, lower, digits, symbol}
	all := strings.Join(sets, "")
	out := make([]byte, 24)
	for i := range out {
		set := all
		if i < len(sets) {
			set = sets[i]
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return "", err
		}
		out[i] = set[n.Int64()]
	}
	// Shuffle, so that the classes' places are not fixed.
	for i := len(out) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", err
		}
		out[i], out[j.Int64()] = out[j.Int64()], out[i]
	}
	return string(out), nil
}
