// Package purge decides which cloud resources a purge deletes (a pure
// function over an inventory, so every rule is table-tested) and deletes
// them in dependency order, each delete awaited with a timeout.
//
// The rules are those of the purge section of spec/maintenance.md: the
// seed's orphan rules (deallocated VMs, NICs attached to no VM, public IPs
// without an address, disks attached to no VM, stale upload disks, images
// and gallery versions beyond the retention count per key), the expiry
// of what a run created, a minimum age, ownership, and never an image a
// deployed worker-pool configuration references.
package purge

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cib-project/cib/internal/machineimage"
)

// Kind is the kind of a resource purge knows rules for.
type Kind string

// The kinds of resources purge has rules for. Other kinds (NSGs, VNets,
// snapshots, ...) are kept: the seed's two scripts disagreed about NSGs
// and VNets, which `cib prepare` owns now, and cib creates no snapshots.
const (
	KindVM           Kind = "vm"
	KindNIC          Kind = "nic"
	KindPublicIP     Kind = "publicip"
	KindDisk         Kind = "disk"
	KindImage        Kind = "image"
	KindImageVersion Kind = "imageversion"
)

// Power states of a VM, as the inventory reports them (Azure's status
// code without its "PowerState/" prefix; the prefix is accepted too).
const (
	PowerDeallocated = "deallocated"
	PowerRunning     = "running"
	PowerStopped     = "stopped"
)

// Disk states of a managed disk, as Azure reports them.
const (
	DiskUnattached    = "Unattached"
	DiskAttached      = "Attached"
	DiskReadyToUpload = "ReadyToUpload"
	DiskActiveUpload  = "ActiveUpload"
)

// Defaults of a Policy's zero durations.
const (
	// DefaultMinimumAge is the spec's default: long enough that a worker
	// manager's half-provisioned worker is not deleted under it.
	DefaultMinimumAge = time.Hour
	// DefaultStaleUpload is the seed's age after which a disk still
	// waiting for (or in) an upload is abandoned.
	DefaultStaleUpload = 6 * time.Hour
)

// Resource is one resource of the inventory, with the facts the rules need.
type Resource struct {
	// ID is the Azure resource ID; IDs compare case-insensitively, as
	// Azure's do.
	ID    string
	Kind  Kind
	Group string
	Name  string
	// Created is the creation time; zero when the lister does not know it.
	Created time.Time
	Tags    map[string]string

	// PowerState is a VM's power state (PowerDeallocated, ...).
	PowerState string
	// AttachedVM is the ID of the VM a NIC or disk is attached to ("" for none).
	AttachedVM string
	// Address is a public IP's address ("" for none).
	Address string
	// AttachedNIC is the ID of the NIC a public IP is attached to ("" for none).
	AttachedNIC string
	// DiskState is a disk's state (DiskUnattached, DiskReadyToUpload, ...).
	DiskState string
}

// String names the resource for logs and reports: kind group/name.
func (r Resource) String() string {
	return fmt.Sprintf("%s %s/%s", r.Kind, r.Group, r.Name)
}

// Inventory is what the lister found in the resource groups in scope.
type Inventory struct {
	Resources []Resource
}

// Policy is what a purge may delete.
type Policy struct {
	// Groups are the resource groups of the selected targets.
	Groups []string
	// ExtraGroups are the environments' purge.groups, set only when the
	// commit says purge-taskcluster-resources: the worker manager's own
	// groups, where the orphan rules apply to untagged resources too.
	ExtraGroups []string
	// MinimumAge protects younger resources; zero means DefaultMinimumAge.
	MinimumAge time.Duration
	// StaleUpload is when an upload disk is abandoned; zero means
	// DefaultStaleUpload.
	StaleUpload time.Duration
	// Retention is how many images (and, separately, gallery versions) per
	// key and group purge keeps. Below 1 the retention rule is off and
	// every image is kept: configuration validation allows 0, and reading
	// it as "delete every image of every key" is not a risk worth taking
	// on an unset field.
	Retention int
	// Referenced are the IDs of the images and gallery image versions the
	// deployed worker-pool configurations reference; they are never deleted.
	Referenced []string
	// EndedRuns are the cib:run values (run URLs) of runs known to be over:
	// the pipeline's closing purge names its own run. What such a run
	// created and left behind is deleted before its cib:expires, since no
	// job of that run can still use it; a finished product (cib:expires
	// never) is kept as ever.
	EndedRuns []string
}

// Entry is a resource and why it is deleted, or kept.
type Entry struct {
	Resource Resource
	Reason   string
}

// Decision is the outcome of Candidates: every resource of the inventory
// is in exactly one of Delete and Keep, with its reason.
type Decision struct {
	Delete []Entry
	Keep   []Entry
}

// Candidates decides, for every resource of the inventory, whether a purge
// under the policy deletes it at now, and why.
//
// Ownership: the spec allows "resources that carry cib:managed=true and
// whose cib:expires has passed, or that match the seed's orphan rules and
// are older than a minimum age". It does not say whether the orphan rules
// reach untagged resources; the conservative reading taken here is that
// they do only in the extra (worker-manager) groups, where untagged
// workers are what the rules are for, and never in the targets' groups,
// where anything untagged was made by someone else.
//
// Conservative readings where the spec is silent:
//   - a managed resource whose cib:expires is still in the future is kept
//     whatever its state: its run said how long it needs it, and a build's
//     VM is deallocated between generalizing and capture;
//   - a resource whose age cannot be established is kept;
//   - a NIC or disk is deleted only when attached to no VM or to a VM this
//     purge deletes, a public IP only when attached to no NIC or to a NIC
//     this purge deletes (Azure refuses the delete otherwise);
//   - an upload disk (ReadyToUpload, ActiveUpload) is an orphan only after
//     StaleUpload, not after the minimum age: an upload takes long.
func Candidates(inv Inventory, p Policy, now time.Time) Decision {
	c := newChooser(p, now)
	out := make([]*verdict, len(inv.Resources))
	var images []int
	// VMs first, then what attaches to VMs, then what attaches to NICs:
	// each attachment rule needs the decision on the resource it names.
	pass := func(k Kind) int {
		switch k {
		case KindVM:
			return 0
		case KindNIC, KindDisk:
			return 1
		case KindPublicIP:
			return 2
		}
		return 3
	}
	for n := 0; n <= 3; n++ {
		for i, r := range inv.Resources {
			if pass(r.Kind) != n {
				continue
			}
			del, reason, retain := c.decide(r)
			if retain {
				images = append(images, i)
				continue
			}
			v := c.guard(r, del, reason)
			out[i] = &v
		}
	}
	for i, v := range c.retention(inv.Resources, images) {
		out[i] = &v
	}
	var d Decision
	for _, v := range out {
		if v.del {
			d.Delete = append(d.Delete, v.Entry)
		} else {
			d.Keep = append(d.Keep, v.Entry)
		}
	}
	return d
}

type verdict struct {
	Entry
	del bool
}

type chooser struct {
	p          Policy
	now        time.Time
	groups     map[string]bool
	extra      map[string]bool
	referenced map[string]bool
	deleting   map[string]bool
	ended      map[string]bool
}

func newChooser(p Policy, now time.Time) *chooser {
	if p.MinimumAge <= 0 {
		p.MinimumAge = DefaultMinimumAge
	}
	if p.StaleUpload <= 0 {
		p.StaleUpload = DefaultStaleUpload
	}
	set := func(xs []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range xs {
			m[strings.ToLower(x)] = true
		}
		return m
	}
	c := &chooser{p: p, now: now, groups: set(p.Groups), extra: set(p.ExtraGroups),
		referenced: set(p.Referenced), deleting: map[string]bool{}, ended: map[string]bool{}}
	for _, run := range p.EndedRuns {
		if run != "" {
			c.ended[run] = true
		}
	}
	return c
}

func idKey(id string) string { return strings.ToLower(id) }

// guard records a delete, unless a deployed pool references the resource.
func (c *chooser) guard(r Resource, del bool, reason string) verdict {
	if del && c.referenced[idKey(r.ID)] {
		return verdict{Entry{r, "referenced by a deployed worker-pool configuration (otherwise: " + reason + ")"}, false}
	}
	if del {
		c.deleting[idKey(r.ID)] = true
	}
	return verdict{Entry{r, reason}, del}
}

type expiry int

const (
	noExpiry expiry = iota // missing, "never" or not a time
	expired
	notYet
)

func (c *chooser) expiry(r Resource) (expiry, time.Time) {
	v, ok := r.Tags[machineimage.TagExpires]
	if !ok || v == machineimage.NoExpiry {
		return noExpiry, time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return noExpiry, time.Time{}
	}
	if t.Before(c.now) {
		return expired, t
	}
	return notYet, t
}

func managed(r Resource) bool { return r.Tags[machineimage.TagManaged] == "true" }

// oldEnough tells whether the resource is older than the minimum age.
// Without a creation time, a passed expiry bounds the age from below
// (a resource expires after it is created).
func (c *chooser) oldEnough(r Resource) (bool, string) {
	min := c.p.MinimumAge
	if !r.Created.IsZero() {
		if age := c.now.Sub(r.Created); age < min {
			return false, fmt.Sprintf("younger than the minimum age %s (created %s ago)", min, age.Round(time.Second))
		}
		return true, ""
	}
	if e, t := c.expiry(r); e == expired && managed(r) {
		if c.now.Sub(t) >= min {
			return true, ""
		}
		return false, fmt.Sprintf("creation time unknown and expired only %s ago (minimum age %s)", c.now.Sub(t).Round(time.Second), min)
	}
	return false, "creation time unknown, so it may be younger than the minimum age " + min.String()
}

// decide is the decision on one resource; retain says that the resource
// is an image or version whose fate is the retention rule's.
func (c *chooser) decide(r Resource) (del bool, reason string, retain bool) {
	g := strings.ToLower(r.Group)
	inExtra := c.extra[g]
	if !inExtra && !c.groups[g] {
		return false, fmt.Sprintf("resource group %s is not in the purge scope", r.Group), false
	}
	switch r.Kind {
	case KindVM, KindNIC, KindPublicIP, KindDisk, KindImage, KindImageVersion:
	default:
		return false, fmt.Sprintf("no purge rule for a resource of kind %q", r.Kind), false
	}
	own := managed(r)
	if !own && !inExtra {
		return false, fmt.Sprintf("not managed by cib (no %s=true tag) in a target's group", machineimage.TagManaged), false
	}
	if run := r.Tags[machineimage.TagRun]; own && run != "" && c.ended[run] {
		if e, _ := c.expiry(r); e != noExpiry {
			if blocked := c.attachedToKept(r); blocked != "" {
				return false, "left by run " + run + ", which has ended, but " + blocked, false
			}
			return true, "left by run " + run + ", which has ended", false
		}
	}
	if own {
		switch e, t := c.expiry(r); e {
		case expired:
			if blocked := c.attachedToKept(r); blocked != "" {
				return false, "expired, but " + blocked, false
			}
			reason := fmt.Sprintf("expired at %s", t.UTC().Format(time.RFC3339))
			if run := r.Tags[machineimage.TagRun]; run != "" {
				reason += ", left by run " + run
			}
			if ok, why := c.oldEnough(r); !ok {
				return false, "expired, but " + why, false
			}
			return true, reason, false
		case notYet:
			return false, fmt.Sprintf("expires at %s: its run may still use it", t.UTC().Format(time.RFC3339)), false
		}
	}
	if r.Kind == KindImage || r.Kind == KindImageVersion {
		return false, "", true
	}
	match, why := c.orphan(r)
	if !match {
		return false, why, false
	}
	if ok, young := c.oldEnough(r); !ok {
		return false, why + ", but " + young, false
	}
	return true, why, false
}

// attachedToKept names what a resource is attached to that this purge
// does not delete, or "".
func (c *chooser) attachedToKept(r Resource) string {
	switch r.Kind {
	case KindNIC, KindDisk:
		if r.AttachedVM != "" && !c.deleting[idKey(r.AttachedVM)] {
			return "attached to VM " + r.AttachedVM + ", which is not deleted"
		}
	case KindPublicIP:
		if r.AttachedNIC != "" && !c.deleting[idKey(r.AttachedNIC)] {
			return "attached to NIC " + r.AttachedNIC + ", which is not deleted"
		}
	}
	return ""
}

// orphan applies the seed's orphan rule of the resource's kind: whether
// it matches, and why (or why not).
func (c *chooser) orphan(r Resource) (bool, string) {
	switch r.Kind {
	case KindVM:
		ps := strings.TrimPrefix(strings.ToLower(r.PowerState), "powerstate/")
		if ps == PowerDeallocated {
			return true, "deallocated VM"
		}
		if ps == "" {
			ps = "unknown"
		}
		return false, "VM is not deallocated (power state " + ps + ")"
	case KindNIC:
		if blocked := c.attachedToKept(r); blocked != "" {
			return false, blocked
		}
		if r.AttachedVM != "" {
			return true, "NIC of a VM this purge deletes"
		}
		return true, "NIC attached to no VM"
	case KindPublicIP:
		if r.Address != "" {
			return false, "public IP has the address " + r.Address
		}
		if blocked := c.attachedToKept(r); blocked != "" {
			return false, "public IP without an address, but " + blocked
		}
		return true, "public IP without an address"
	case KindDisk:
		if blocked := c.attachedToKept(r); blocked != "" {
			return false, blocked
		}
		switch {
		case strings.EqualFold(r.DiskState, DiskReadyToUpload) || strings.EqualFold(r.DiskState, DiskActiveUpload):
			if r.Created.IsZero() {
				return false, "upload disk (" + r.DiskState + ") of unknown age"
			}
			if age := c.now.Sub(r.Created); age < c.p.StaleUpload {
				return false, fmt.Sprintf("upload disk (%s) younger than %s: the upload may still be running", r.DiskState, c.p.StaleUpload)
			}
			return true, fmt.Sprintf("stale upload disk (%s for more than %s)", r.DiskState, c.p.StaleUpload)
		case r.AttachedVM != "":
			return true, "disk of a VM this purge deletes"
		case r.DiskState == "" || strings.EqualFold(r.DiskState, DiskUnattached):
			return true, "disk attached to no VM"
		default:
			return false, "disk attached to no VM, but in state " + r.DiskState
		}
	}
	return false, "no orphan rule"
}

// ImageKey is the image key of an image or gallery image version: its
// cib:key tag, else its imageKey tag, else (an image) the key part of its
// name <group without rg->-<key>-<sha7>-<deploymentId 7>; "" if unknown.
func ImageKey(r Resource) string {
	for _, t := range []string{machineimage.TagKey, "imageKey"} {
		if v := r.Tags[t]; v != "" {
			return v
		}
	}
	if r.Kind != KindImage {
		return ""
	}
	prefix := strings.ToLower(strings.TrimPrefix(strings.ToLower(r.Group), "rg-")) + "-"
	name := strings.ToLower(r.Name)
	if !strings.HasPrefix(name, prefix) {
		return ""
	}
	rest := r.Name[len(prefix):]
	parts := strings.Split(rest, "-")
	if len(parts) < 3 || len(parts[len(parts)-1]) != 7 || len(parts[len(parts)-2]) != 7 {
		return ""
	}
	return strings.Join(parts[:len(parts)-2], "-")
}

// bucket is what retention counts within: images per group and key;
// gallery versions per image definition (the version's parent) and key.
func bucket(r Resource, key string) string {
	parent := strings.ToLower(r.Group)
	if r.Kind == KindImageVersion {
		id := strings.ToLower(r.ID)
		if i := strings.LastIndex(id, "/versions/"); i >= 0 {
			parent = id[:i]
		}
	}
	return string(r.Kind) + "\x00" + parent + "\x00" + key
}

// retention decides the images and versions of idx: the newest Retention
// of each bucket are kept, older ones deleted (a deployed pool's are
// kept anyway, by guard).
func (c *chooser) retention(rs []Resource, idx []int) map[int]verdict {
	out := map[int]verdict{}
	buckets := map[string][]int{}
	var order []string
	for _, i := range idx {
		r := rs[i]
		key := ImageKey(r)
		switch {
		case c.p.Retention < 1:
			out[i] = c.guard(r, false, "retention is off (purge.retention below 1): images are kept")
		case key == "":
			out[i] = c.guard(r, false, "image key unknown (no cib:key or imageKey tag, name not <group>-<key>-<sha7>-<id7>)")
		case r.Created.IsZero():
			out[i] = c.guard(r, false, "creation time unknown, so it cannot be ranked for retention")
		default:
			b := bucket(r, key)
			if _, ok := buckets[b]; !ok {
				order = append(order, b)
			}
			buckets[b] = append(buckets[b], i)
		}
	}
	for _, b := range order {
		is := buckets[b]
		sort.SliceStable(is, func(x, y int) bool {
			rx, ry := rs[is[x]], rs[is[y]]
			if !rx.Created.Equal(ry.Created) {
				return rx.Created.After(ry.Created)
			}
			return rx.Name > ry.Name
		})
		for rank, i := range is {
			r := rs[i]
			what := "images"
			if r.Kind == KindImageVersion {
				what = "gallery image versions"
			}
			key := ImageKey(r)
			if rank < c.p.Retention {
				out[i] = c.guard(r, false, fmt.Sprintf("one of the newest %d %s of key %s", c.p.Retention, what, key))
				continue
			}
			reason := fmt.Sprintf("beyond retention: %d newer %s of key %s", rank, what, key)
			if ok, young := c.oldEnough(r); !ok {
				out[i] = c.guard(r, false, reason+", but "+young)
				continue
			}
			out[i] = c.guard(r, true, reason)
		}
	}
	return out
}
