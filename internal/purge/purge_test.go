package purge

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const (
	rg    = "rg-us-east-win"
	wm    = "rg-taskcluster-worker-manager-staging"
	other = "rg-someone-else"
	sub   = "/subscriptions/s/resourceGroups/"
)

func ago(d time.Duration) time.Time { return now.Add(-d) }

func id(group, typ, name string) string { return sub + group + "/providers/" + typ + "/" + name }

func vmID(g, n string) string   { return id(g, "Microsoft.Compute/virtualMachines", n) }
func nicID(g, n string) string  { return id(g, "Microsoft.Network/networkInterfaces", n) }
func ipID(g, n string) string   { return id(g, "Microsoft.Network/publicIPAddresses", n) }
func diskID(g, n string) string { return id(g, "Microsoft.Compute/disks", n) }
func imgID(g, n string) string  { return id(g, "Microsoft.Compute/images", n) }
func verID(g, def, v string) string {
	return id(g, "Microsoft.Compute/galleries", "gallery/images/"+def+"/versions/"+v)
}

// run tags of a managed resource expiring at exp.
func run(exp string) map[string]string {
	t := map[string]string{"cib:managed": "true", "cib:run": "https://github.com/o/r/actions/runs/1", "cib:key": "win11-64"}
	if exp != "" {
		t["cib:expires"] = exp
	}
	return t
}

var (
	past   = ago(3 * time.Hour).Format(time.RFC3339)
	future = now.Add(3 * time.Hour).Format(time.RFC3339)
)

func vm(g, n, power string, created time.Time, tags map[string]string) Resource {
	return Resource{ID: vmID(g, n), Kind: KindVM, Group: g, Name: n, Created: created, Tags: tags, PowerState: power}
}

func nic(g, n, attached string, created time.Time, tags map[string]string) Resource {
	return Resource{ID: nicID(g, n), Kind: KindNIC, Group: g, Name: n, Created: created, Tags: tags, AttachedVM: attached}
}

func ip(g, n, addr, attached string, created time.Time, tags map[string]string) Resource {
	return Resource{ID: ipID(g, n), Kind: KindPublicIP, Group: g, Name: n, Created: created, Tags: tags, Address: addr, AttachedNIC: attached}
}

func disk(g, n, state, attached string, created time.Time, tags map[string]string) Resource {
	return Resource{ID: diskID(g, n), Kind: KindDisk, Group: g, Name: n, Created: created, Tags: tags, DiskState: state, AttachedVM: attached}
}

func image(g, n string, created time.Time, tags map[string]string) Resource {
	return Resource{ID: imgID(g, n), Kind: KindImage, Group: g, Name: n, Created: created, Tags: tags}
}

func version(g, def, v string, created time.Time, tags map[string]string) Resource {
	return Resource{ID: verID(g, def, v), Kind: KindImageVersion, Group: g, Name: v, Created: created, Tags: tags}
}

func policy() Policy {
	return Policy{Groups: []string{rg}, MinimumAge: time.Hour, Retention: 2}
}

// verdicts maps each resource name to "delete: reason" or "keep: reason".
func verdicts(t *testing.T, inv Inventory, d Decision) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range d.Delete {
		out[e.Resource.Name] = "delete: " + e.Reason
	}
	for _, e := range d.Keep {
		_, dup := out[e.Resource.Name]
		require.False(t, dup, "%s both deleted and kept", e.Resource.Name)
		out[e.Resource.Name] = "keep: " + e.Reason
	}
	require.Len(t, out, len(inv.Resources), "every resource has exactly one decision")
	return out
}

func TestCandidates(t *testing.T) {
	vmA := vmID(rg, "vm-a")
	nicA := nicID(rg, "nic-a")
	for _, tc := range []struct {
		name   string
		p      func(*Policy)
		inv    []Resource
		expect map[string]string // name → "delete" or "keep", then a fragment of the reason
	}{
		{
			name: "deallocated VM",
			inv: []Resource{
				vm(rg, "dealloc", "deallocated", ago(2*time.Hour), run("")),
				vm(rg, "prefixed", "PowerState/deallocated", ago(2*time.Hour), run(machineNever)),
				vm(rg, "running", "running", ago(2*time.Hour), run("")),
				vm(rg, "stopped", "stopped", ago(2*time.Hour), run("")),
				vm(rg, "unknown", "", ago(2*time.Hour), run("")),
			},
			expect: map[string]string{
				"dealloc": "delete: deallocated VM", "prefixed": "delete: deallocated VM",
				"running": "keep: VM is not deallocated (power state running)",
				"stopped": "keep: VM is not deallocated (power state stopped)",
				"unknown": "keep: VM is not deallocated (power state unknown)",
			},
		},
		{
			name: "unattached NIC",
			inv: []Resource{
				nic(rg, "free", "", ago(2*time.Hour), run("")),
				vm(rg, "vm-a", "running", ago(2*time.Hour), run("")),
				nic(rg, "used", vmA, ago(2*time.Hour), run("")),
			},
			expect: map[string]string{
				"free": "delete: NIC attached to no VM", "vm-a": "keep: VM is not deallocated",
				"used": "keep: attached to VM " + vmA + ", which is not deleted",
			},
		},
		{
			name: "NIC and disks of a deleted VM go with it",
			inv: []Resource{
				nic(rg, "nic-a", vmA, ago(2*time.Hour), run("")),
				disk(rg, "os-a", "Attached", vmA, ago(2*time.Hour), run("")),
				vm(rg, "vm-a", "deallocated", ago(2*time.Hour), run("")),
			},
			expect: map[string]string{
				"vm-a": "delete: deallocated VM", "nic-a": "delete: NIC of a VM this purge deletes",
				"os-a": "delete: disk of a VM this purge deletes",
			},
		},
		{
			name: "address-less public IP",
			inv: []Resource{
				ip(rg, "none", "", "", ago(2*time.Hour), run("")),
				ip(rg, "addr", "20.1.2.3", "", ago(2*time.Hour), run("")),
				vm(rg, "vm-a", "running", ago(2*time.Hour), run("")),
				nic(rg, "nic-a", vmA, ago(2*time.Hour), run("")),
				ip(rg, "on-kept-nic", "", nicA, ago(2*time.Hour), run("")),
			},
			expect: map[string]string{
				"none": "delete: public IP without an address", "addr": "keep: public IP has the address 20.1.2.3",
				"vm-a": "keep: VM is not deallocated", "nic-a": "keep: attached to VM",
				"on-kept-nic": "keep: public IP without an address, but attached to NIC " + nicA + ", which is not deleted",
			},
		},
		{
			name: "public IP of a NIC this purge deletes",
			inv: []Resource{
				vm(rg, "vm-a", "deallocated", ago(2*time.Hour), run("")),
				nic(rg, "nic-a", vmA, ago(2*time.Hour), run("")),
				ip(rg, "ip-a", "", nicA, ago(2*time.Hour), run("")),
			},
			expect: map[string]string{
				"vm-a": "delete: deallocated VM", "nic-a": "delete: NIC of a VM",
				"ip-a": "delete: public IP without an address",
			},
		},
		{
			name: "unattached disks",
			inv: []Resource{
				disk(rg, "free", "Unattached", "", ago(2*time.Hour), run("")),
				disk(rg, "nostate", "", "", ago(2*time.Hour), run("")),
				disk(rg, "sas", "ActiveSAS", "", ago(2*time.Hour), run("")),
				vm(rg, "vm-a", "running", ago(2*time.Hour), run("")),
				disk(rg, "used", "Attached", vmA, ago(2*time.Hour), run("")),
			},
			expect: map[string]string{
				"free": "delete: disk attached to no VM", "nostate": "delete: disk attached to no VM",
				"sas":  "keep: disk attached to no VM, but in state ActiveSAS",
				"vm-a": "keep: VM is not deallocated", "used": "keep: attached to VM " + vmA,
			},
		},
		{
			name: "stale upload disks",
			inv: []Resource{
				disk(rg, "ready-old", "ReadyToUpload", "", ago(7*time.Hour), run("")),
				disk(rg, "active-old", "ActiveUpload", "", ago(7*time.Hour), run("")),
				disk(rg, "ready-2h", "ReadyToUpload", "", ago(2*time.Hour), run("")),
				disk(rg, "ready-unknown", "ReadyToUpload", "", time.Time{}, run("")),
			},
			expect: map[string]string{
				"ready-old":     "delete: stale upload disk (ReadyToUpload for more than 6h0m0s)",
				"active-old":    "delete: stale upload disk (ActiveUpload",
				"ready-2h":      "keep: upload disk (ReadyToUpload) younger than 6h0m0s",
				"ready-unknown": "keep: upload disk (ReadyToUpload) of unknown age",
			},
		},
		{
			name: "stale upload age is configurable",
			p:    func(p *Policy) { p.StaleUpload = 90 * time.Minute },
			inv:  []Resource{disk(rg, "ready-2h", "ReadyToUpload", "", ago(2*time.Hour), run(""))},
			expect: map[string]string{
				"ready-2h": "delete: stale upload disk (ReadyToUpload for more than 1h30m0s)",
			},
		},
		{
			name: "minimum age protects orphans",
			inv: []Resource{
				vm(rg, "young-vm", "deallocated", ago(30*time.Minute), run("")),
				nic(rg, "young-nic", "", ago(59*time.Minute), run("")),
				ip(rg, "young-ip", "", "", ago(time.Minute), run("")),
				disk(rg, "young-disk", "Unattached", "", ago(10*time.Minute), run("")),
				nic(rg, "old-nic", "", ago(61*time.Minute), run("")),
				nic(rg, "unknown-age", "", time.Time{}, run("")),
			},
			expect: map[string]string{
				"young-vm":    "keep: deallocated VM, but younger than the minimum age 1h0m0s (created 30m0s ago)",
				"young-nic":   "keep: NIC attached to no VM, but younger than the minimum age",
				"young-ip":    "keep: public IP without an address, but younger than the minimum age",
				"young-disk":  "keep: disk attached to no VM, but younger than the minimum age",
				"old-nic":     "delete: NIC attached to no VM",
				"unknown-age": "keep: NIC attached to no VM, but creation time unknown",
			},
		},
		{
			name: "minimum age is configurable, 1h by default",
			p:    func(p *Policy) { p.MinimumAge = 0 },
			inv: []Resource{
				nic(rg, "50m", "", ago(50*time.Minute), run("")),
				nic(rg, "70m", "", ago(70*time.Minute), run("")),
			},
			expect: map[string]string{"50m": "keep: NIC attached to no VM, but younger than the minimum age 1h0m0s", "70m": "delete: NIC attached to no VM"},
		},
		{
			name: "expired resources of a run are deleted whatever their state",
			inv: []Resource{
				vm(rg, "vm-a", "running", ago(4*time.Hour), run(past)),
				nic(rg, "nic-a", vmA, ago(4*time.Hour), run(past)),
				ip(rg, "ip-a", "20.1.2.3", nicA, ago(4*time.Hour), run(past)),
				disk(rg, "os-a", "Attached", vmA, ago(4*time.Hour), run(past)),
				disk(rg, "upload", "ActiveUpload", "", ago(4*time.Hour), run(past)),
				image(rg, "us-east-win-win11-64-abcdef1-1234567", ago(4*time.Hour), run(past)),
			},
			expect: map[string]string{
				"vm-a":  "delete: expired at " + past + ", left by run https://github.com/o/r/actions/runs/1",
				"nic-a": "delete: expired at", "ip-a": "delete: expired at", "os-a": "delete: expired at",
				"upload":                               "delete: expired at",
				"us-east-win-win11-64-abcdef1-1234567": "delete: expired at",
			},
		},
		{
			name: "expired but young, or attached to what is kept",
			inv: []Resource{
				nic(rg, "young", "", ago(40*time.Minute), run(ago(10*time.Minute).Format(time.RFC3339))),
				nic(rg, "unknown-recent", "", time.Time{}, run(ago(10*time.Minute).Format(time.RFC3339))),
				nic(rg, "unknown-long-ago", "", time.Time{}, run(past)),
				vm(rg, "vm-a", "running", ago(4*time.Hour), run(future)),
				disk(rg, "os-a", "Attached", vmA, ago(4*time.Hour), run(past)),
			},
			expect: map[string]string{
				"young":            "keep: expired, but younger than the minimum age",
				"unknown-recent":   "keep: expired, but creation time unknown and expired only 10m0s ago",
				"unknown-long-ago": "delete: expired at " + past,
				"vm-a":             "keep: expires at " + future + ": its run may still use it",
				"os-a":             "keep: expired, but attached to VM " + vmA + ", which is not deleted",
			},
		},
		{
			name: "what an ended run left goes before its expiry; its products stay",
			p:    func(p *Policy) { p.EndedRuns = []string{"https://github.com/o/r/actions/runs/1"} },
			inv: []Resource{
				vm(rg, "build-vm", "running", ago(10*time.Minute), run(future)),
				nic(rg, "build-nic", vmA, ago(10*time.Minute), run(future)),
				vm(rg, "vm-a", "running", ago(10*time.Minute), func() map[string]string {
					t := run(future)
					t["cib:run"] = "https://github.com/o/r/actions/runs/2"
					return t
				}()),
				disk(rg, "product-disk", "Unattached", "", ago(10*time.Minute), run(machineNever)),
				vm(rg, "garbage", "running", ago(10*time.Minute), run("tomorrow")),
			},
			expect: map[string]string{
				"build-vm":     "delete: left by run https://github.com/o/r/actions/runs/1, which has ended",
				"build-nic":    "keep: left by run https://github.com/o/r/actions/runs/1, which has ended, but attached to VM " + vmA,
				"vm-a":         "keep: expires at " + future + ": its run may still use it",
				"product-disk": "keep: disk attached to no VM, but younger than the minimum age",
				"garbage":      "keep: VM is not deallocated",
			},
		},
		{
			name: "expiry not yet passed, never, or not a time",
			inv: []Resource{
				vm(rg, "future", "deallocated", ago(4*time.Hour), run(future)),
				vm(rg, "never", "running", ago(4*time.Hour), run(machineNever)),
				vm(rg, "garbage", "running", ago(4*time.Hour), run("tomorrow")),
				vm(rg, "garbage-dealloc", "deallocated", ago(4*time.Hour), run("tomorrow")),
			},
			expect: map[string]string{
				"future":          "keep: expires at " + future,
				"never":           "keep: VM is not deallocated",
				"garbage":         "keep: VM is not deallocated",
				"garbage-dealloc": "delete: deallocated VM",
			},
		},
		{
			name: "ownership: untagged resources in a target's group are never touched",
			inv: []Resource{
				vm(rg, "vm", "deallocated", ago(4*time.Hour), nil),
				nic(rg, "nic", "", ago(4*time.Hour), map[string]string{"cib:managed": "false"}),
				disk(rg, "disk", "Unattached", "", ago(4*time.Hour), map[string]string{"cib:expires": past}),
				image(rg, "us-east-win-win11-64-abcdef1-1234567", ago(40*24*time.Hour), nil),
			},
			expect: map[string]string{
				"vm": "keep: not managed by cib", "nic": "keep: not managed by cib", "disk": "keep: not managed by cib",
				"us-east-win-win11-64-abcdef1-1234567": "keep: not managed by cib",
			},
		},
		{
			name: "ownership: in the extra groups the orphan rules reach untagged resources",
			p:    func(p *Policy) { p.ExtraGroups = []string{wm} },
			inv: []Resource{
				vm(wm, "worker-dealloc", "deallocated", ago(4*time.Hour), nil),
				vm(wm, "worker-running", "running", ago(4*time.Hour), nil),
				vm(wm, "worker-new", "deallocated", ago(20*time.Minute), nil),
				nic(wm, "worker-nic", "", ago(4*time.Hour), nil),
				ip(wm, "worker-ip", "", "", ago(4*time.Hour), nil),
				disk(wm, "worker-disk", "Unattached", "", ago(4*time.Hour), nil),
				disk(wm, "expires-untagged", "Attached", vmID(wm, "worker-running"), ago(4*time.Hour), map[string]string{"cib:expires": past}),
			},
			expect: map[string]string{
				"worker-dealloc": "delete: deallocated VM", "worker-running": "keep: VM is not deallocated",
				"worker-new":       "keep: deallocated VM, but younger than the minimum age",
				"worker-nic":       "delete: NIC attached to no VM",
				"worker-ip":        "delete: public IP without an address",
				"worker-disk":      "delete: disk attached to no VM",
				"expires-untagged": "keep: attached to VM",
			},
		},
		{
			name: "scope: a group neither selected nor extra is never touched",
			inv: []Resource{
				vm(other, "vm", "deallocated", ago(4*time.Hour), run(past)),
				vm(wm, "wm-vm", "deallocated", ago(4*time.Hour), run(past)),
				vm(strings.ToUpper(rg), "upper", "deallocated", ago(4*time.Hour), run(past)),
			},
			expect: map[string]string{
				"vm":    "keep: resource group " + other + " is not in the purge scope",
				"wm-vm": "keep: resource group " + wm + " is not in the purge scope",
				"upper": "delete: expired",
			},
		},
		{
			name: "a resource outside the rules is never touched",
			inv: []Resource{
				{ID: id(rg, "Microsoft.Network/networkSecurityGroups", "nsg-x"), Kind: "nsg", Group: rg, Name: "nsg-x", Created: ago(40 * 24 * time.Hour), Tags: run(past)},
				{ID: id(rg, "Microsoft.Compute/snapshots", "snap"), Kind: "snapshot", Group: rg, Name: "snap", Created: ago(40 * 24 * time.Hour), Tags: run(past)},
				vm(rg, "running", "running", ago(40*24*time.Hour), run("")),
				ip(rg, "addr", "20.1.2.3", "", ago(40*24*time.Hour), run("")),
			},
			expect: map[string]string{
				"nsg-x": `keep: no purge rule for a resource of kind "nsg"`, "snap": `keep: no purge rule for a resource of kind "snapshot"`,
				"running": "keep: VM is not deallocated", "addr": "keep: public IP has the address",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy()
			if tc.p != nil {
				tc.p(&p)
			}
			inv := Inventory{Resources: tc.inv}
			got := verdicts(t, inv, Candidates(inv, p, now))
			for name, want := range tc.expect {
				assert.Contains(t, got[name], want, name)
			}
			assert.Len(t, got, len(tc.expect), "the table names every resource")
		})
	}
}

const machineNever = "never"

func product(key string) map[string]string {
	t := run(machineNever)
	t["cib:key"] = key
	return t
}

func TestCandidatesRetention(t *testing.T) {
	name := func(key, sha string) string { return "us-east-win-" + key + "-" + sha + "-1234567" }
	def := "win11-64"
	refImage := imgID(rg, name("win11-64", "aaaaaa1"))
	refVersion := verID(rg, def, "2026.1001.1")
	for _, tc := range []struct {
		name   string
		p      func(*Policy)
		inv    []Resource
		expect map[string]string
	}{
		{
			name: "newest N images per key are kept, older ones deleted",
			inv: []Resource{
				image(rg, name("win11-64", "aaaaaa1"), ago(40*24*time.Hour), product("win11-64")),
				image(rg, name("win11-64", "aaaaaa4"), ago(1*24*time.Hour), product("win11-64")),
				image(rg, name("win11-64", "aaaaaa2"), ago(30*24*time.Hour), product("win11-64")),
				image(rg, name("win11-64", "aaaaaa3"), ago(2*24*time.Hour), product("win11-64")),
				image(rg, name("win10-64", "bbbbbb1"), ago(50*24*time.Hour), product("win10-64")),
			},
			expect: map[string]string{
				name("win11-64", "aaaaaa4"): "keep: one of the newest 2 images of key win11-64",
				name("win11-64", "aaaaaa3"): "keep: one of the newest 2 images of key win11-64",
				name("win11-64", "aaaaaa2"): "delete: beyond retention: 2 newer images of key win11-64",
				name("win11-64", "aaaaaa1"): "delete: beyond retention: 3 newer images of key win11-64",
				name("win10-64", "bbbbbb1"): "keep: one of the newest 2 images of key win10-64",
			},
		},
		{
			name: "an image a deployed pool references is kept even beyond retention",
			p:    func(p *Policy) { p.Referenced = []string{strings.ToUpper(refImage), refVersion} },
			inv: []Resource{
				image(rg, name("win11-64", "aaaaaa1"), ago(40*24*time.Hour), product("win11-64")),
				image(rg, name("win11-64", "aaaaaa2"), ago(30*24*time.Hour), product("win11-64")),
				image(rg, name("win11-64", "aaaaaa3"), ago(2*24*time.Hour), product("win11-64")),
				image(rg, name("win11-64", "aaaaaa4"), ago(1*24*time.Hour), product("win11-64")),
				version(rg, def, "2026.1001.1", ago(40*24*time.Hour), product("win11-64")),
				version(rg, def, "2026.1002.1", ago(39*24*time.Hour), product("win11-64")),
				version(rg, def, "2026.1003.1", ago(38*24*time.Hour), product("win11-64")),
				version(rg, def, "2026.1004.1", ago(37*24*time.Hour), product("win11-64")),
			},
			expect: map[string]string{
				name("win11-64", "aaaaaa1"): "keep: referenced by a deployed worker-pool configuration (otherwise: beyond retention",
				name("win11-64", "aaaaaa2"): "delete: beyond retention",
				name("win11-64", "aaaaaa3"): "keep: one of the newest",
				name("win11-64", "aaaaaa4"): "keep: one of the newest",
				"2026.1001.1":               "keep: referenced by a deployed worker-pool configuration",
				"2026.1002.1":               "delete: beyond retention: 2 newer gallery image versions of key win11-64",
				"2026.1003.1":               "keep: one of the newest 2 gallery image versions",
				"2026.1004.1":               "keep: one of the newest 2 gallery image versions",
			},
		},
		{
			name: "a referenced expired image is kept",
			p:    func(p *Policy) { p.Referenced = []string{refImage} },
			inv:  []Resource{image(rg, name("win11-64", "aaaaaa1"), ago(40*24*time.Hour), run(past))},
			expect: map[string]string{
				name("win11-64", "aaaaaa1"): "keep: referenced by a deployed worker-pool configuration (otherwise: expired at",
			},
		},
		{
			name: "retention counts per group and per gallery image definition",
			p:    func(p *Policy) { p.Groups = append(p.Groups, "rg-us-west-win"); p.Retention = 1 },
			inv: []Resource{
				image(rg, name("win11-64", "aaaaaa1"), ago(40*24*time.Hour), product("win11-64")),
				image("rg-us-west-win", "us-west-win-win11-64-aaaaaa2-1234567", ago(30*24*time.Hour), product("win11-64")),
				version(rg, "def-a", "2026.1001.1", ago(40*24*time.Hour), product("win11-64")),
				version(rg, "def-b", "2026.1002.1", ago(39*24*time.Hour), product("win11-64")),
			},
			expect: map[string]string{
				name("win11-64", "aaaaaa1"):            "keep: one of the newest 1 images",
				"us-west-win-win11-64-aaaaaa2-1234567": "keep: one of the newest 1 images",
				"2026.1001.1":                          "keep: one of the newest 1 gallery image versions",
				"2026.1002.1":                          "keep: one of the newest 1 gallery image versions",
			},
		},
		{
			name: "the key comes from cib:key, imageKey or the name",
			p:    func(p *Policy) { p.Retention = 1; p.ExtraGroups = []string{wm} },
			inv: []Resource{
				image(rg, "x1", ago(40*24*time.Hour), product("win11-64")),
				image(rg, "x2", ago(30*24*time.Hour), map[string]string{"cib:managed": "true", "imageKey": "win11-64"}),
				image(wm, "taskcluster-worker-manager-staging-win11-64-aaaaaa1-1234567", ago(30*24*time.Hour), nil),
				image(wm, "taskcluster-worker-manager-staging-win11-64-aaaaaa2-1234567", ago(20*24*time.Hour), nil),
				image(wm, "unparsable", ago(30*24*time.Hour), nil),
				version(wm, "d", "1.0.0", ago(30*24*time.Hour), nil),
			},
			expect: map[string]string{
				"x1": "delete: beyond retention: 1 newer images of key win11-64",
				"x2": "keep: one of the newest 1 images of key win11-64",
				"taskcluster-worker-manager-staging-win11-64-aaaaaa1-1234567": "delete: beyond retention: 1 newer images of key win11-64",
				"taskcluster-worker-manager-staging-win11-64-aaaaaa2-1234567": "keep: one of the newest 1",
				"unparsable": "keep: image key unknown",
				"1.0.0":      "keep: image key unknown",
			},
		},
		{
			name: "beyond retention but younger than the minimum age, or of unknown age",
			p:    func(p *Policy) { p.Retention = 1 },
			inv: []Resource{
				image(rg, "new", ago(10*time.Minute), product("k")),
				image(rg, "newer", ago(5*time.Minute), product("k")),
				image(rg, "unknown", time.Time{}, product("k")),
			},
			expect: map[string]string{
				"newer":   "keep: one of the newest 1",
				"new":     "keep: beyond retention: 1 newer images of key k, but younger than the minimum age",
				"unknown": "keep: creation time unknown, so it cannot be ranked",
			},
		},
		{
			name: "retention below 1 keeps every image",
			p:    func(p *Policy) { p.Retention = 0 },
			inv: []Resource{
				image(rg, "a", ago(40*24*time.Hour), product("k")),
				image(rg, "b", ago(30*24*time.Hour), product("k")),
			},
			expect: map[string]string{"a": "keep: retention is off", "b": "keep: retention is off"},
		},
		{
			name: "an image whose run has not finished is kept and not ranked",
			p:    func(p *Policy) { p.Retention = 1 },
			inv: []Resource{
				image(rg, "building", ago(2*time.Hour), run(future)),
				image(rg, "done", ago(20*24*time.Hour), product("win11-64")),
			},
			expect: map[string]string{
				"building": "keep: expires at",
				"done":     "keep: one of the newest 1 images",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy()
			if tc.p != nil {
				tc.p(&p)
			}
			inv := Inventory{Resources: tc.inv}
			got := verdicts(t, inv, Candidates(inv, p, now))
			for name, want := range tc.expect {
				assert.Contains(t, got[name], want, name)
			}
			assert.Len(t, got, len(tc.expect), "the table names every resource")
		})
	}
}

func TestCandidatesKeepsInventoryOrder(t *testing.T) {
	inv := Inventory{Resources: []Resource{
		disk(rg, "d", "Unattached", "", ago(2*time.Hour), run("")),
		vm(rg, "v", "deallocated", ago(2*time.Hour), run("")),
		nic(rg, "n", "", ago(2*time.Hour), run("")),
	}}
	d := Candidates(inv, policy(), now)
	var names []string
	for _, e := range d.Delete {
		names = append(names, e.Resource.Name)
	}
	assert.Equal(t, []string{"d", "v", "n"}, names)
	assert.Empty(t, d.Keep)
}

func TestImageKey(t *testing.T) {
	for _, tc := range []struct {
		r    Resource
		want string
	}{
		{image("rg-a", "a-win11-64-abcdef1-1234567", now, nil), "win11-64"},
		{image("RG-A", "a-win11-64-abcdef1-1234567", now, nil), "win11-64"},
		{image("a", "a-k-abcdef1-1234567", now, nil), "k"},
		{image("rg-a", "b-win11-64-abcdef1-1234567", now, nil), ""},
		{image("rg-a", "a-abcdef1-1234567", now, nil), ""},
		{image("rg-a", "a-k-abcdef-1234567", now, nil), ""},
		{image("rg-a", "whatever", now, map[string]string{"cib:key": "k1", "imageKey": "k2"}), "k1"},
		{image("rg-a", "whatever", now, map[string]string{"imageKey": "k2"}), "k2"},
		{version("rg-a", "d", "1.0.0", now, nil), ""},
	} {
		assert.Equal(t, tc.want, ImageKey(tc.r), tc.r.Name)
	}
}
