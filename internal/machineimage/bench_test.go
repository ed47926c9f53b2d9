package machineimage_test

// The distribution of one key to six regions, simulated against the
// in-memory Azure with a latency on every ARM call: replicate (build once,
// a gallery version replicated to the other five regions) against the
// seed's rebuild (a full build in every region, six jobs at once).
//
//	go test -run '^$' -bench Distribution -benchtime 3x ./internal/machineimage
//
// Metrics: wall-ms (the key's wall time), arm-calls (every request,
// polls and pages included), vms (VMs booted), vm-s (seconds the build VMs
// existed, summed: what the VMs cost, in the simulation's time), and for
// rebuild sum-wall-ms (the six builds one after the other).

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/config"
	mi "github.com/cib-project/cib/internal/machineimage"
)

// The six target regions of the key, the build region first.
var benchRegions = []string{"Central US", "East US", "East US 2", "North Central US", "South Central US", "West US"}

const benchLatency = 20 * time.Millisecond

// benchAzure is an Azure with the key's six groups, sizes on offer in
// each region, a gallery image definition in the build region's group,
// and a record of how long each VM existed.
type benchAzure struct {
	a     *azuretest.Azure
	m     *azure.Machines
	n0    int
	mu    sync.Mutex
	born  map[string]time.Time
	vmDur time.Duration
	vms   int
}

func benchGroup(region string) string {
	return "rg-" + strings.ToLower(strings.ReplaceAll(region, " ", "-")) + "-gecko-t"
}

func newBenchAzure(b *testing.B) *benchAzure {
	a := azuretest.New()
	b.Cleanup(a.Close)
	a.DefaultGuest = azuretest.Guest{Boots: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}}
	groups, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range benchRegions {
		a.OfferSizes(config.NormalizeRegion(r), azuretest.StandardSizes...)
		if _, err := groups.CreateOrUpdate(context.Background(), benchGroup(r), armresources.ResourceGroup{Location: to.Ptr(config.NormalizeRegion(r))}, nil); err != nil {
			b.Fatal(err)
		}
	}
	a.AddGalleryImage(benchGroup(benchRegions[0]), gallery, definition, config.NormalizeRegion(benchRegions[0]), "V1")
	m, err := azure.NewMachines(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	if err != nil {
		b.Fatal(err)
	}
	m.PollFrequency = benchLatency
	ba := &benchAzure{a: a, m: m, n0: len(a.Calls()), born: map[string]time.Time{}}
	a.Hook = func(c azuretest.Call) {
		if !strings.Contains(c.Path, "/virtualMachines/") || strings.HasSuffix(c.Path, "/get/fake/status") {
			return
		}
		ba.mu.Lock()
		defer ba.mu.Unlock()
		switch c.Method {
		case "PUT":
			ba.born[c.Path] = time.Now()
			ba.vms++
		case "DELETE":
			if t, ok := ba.born[c.Path]; ok {
				ba.vmDur += time.Since(t)
				delete(ba.born, c.Path)
			}
		}
	}
	a.Latency = benchLatency
	return ba
}

// inputs are the inputs of a build of win10-64 in region, distributed to
// locations, on the real clock with the pipeline's waits shortened to the
// simulation's scale.
func (ba *benchAzure) inputs(b *testing.B, region string, locations []string) mi.BuildInputs {
	r := &rig{t: b}
	_, k := loadKey(b, "win10-64")
	t := &k.Targets[0]
	t.Group, t.Region, t.Locations = benchGroup(region), region, locations
	r.in = mi.BuildInputs{
		Cloud: ba.m, Key: k, Target: t, Environment: "production",
		DiskRevision: "0123456789abcdef0123456789abcdef01234567", DiskCommitTime: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		DiskBlobURL:      "https://sa.blob.core.windows.net/images/vhd/0123456.vhd",
		StorageAccountID: "/subscriptions/" + azuretest.Subscription + "/resourceGroups/" + t.Group + "/providers/Microsoft.Storage/storageAccounts/sa",
		Revision:         "fedcba9876543210fedcba9876543210fedcba98", CommitTime: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		RunURL: "https://github.com/o/r/actions/runs/2", Fingerprint: "sha256:abc",
		Gallery: gallery, Definition: definition,
		PollMin: benchLatency, PollMax: 100 * time.Millisecond, StableStop: 200 * time.Millisecond,
		Clock: mi.RealClock{},
	}
	return r.in
}

func (ba *benchAzure) report(b *testing.B, wall time.Duration) {
	ba.mu.Lock()
	defer ba.mu.Unlock()
	b.ReportMetric(float64(wall.Milliseconds()), "wall-ms")
	b.ReportMetric(float64(len(ba.a.Calls())-ba.n0), "arm-calls")
	b.ReportMetric(float64(ba.vms), "vms")
	b.ReportMetric(ba.vmDur.Seconds(), "vm-s")
}

func BenchmarkDistribution(b *testing.B) {
	b.Run("replicate", func(b *testing.B) {
		for b.Loop() {
			ba := newBenchAzure(b)
			in := ba.inputs(b, benchRegions[0], benchRegions[1:])
			start := time.Now()
			res, err := mi.Build(context.Background(), in)
			wall := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Regions) != 6 || res.VersionID == "" {
				b.Fatalf("regions %v, version %q", res.Regions, res.VersionID)
			}
			ba.report(b, wall)
		}
	})
	b.Run("rebuild", func(b *testing.B) {
		for b.Loop() {
			ba := newBenchAzure(b)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var sum time.Duration
			errs := make([]error, len(benchRegions))
			start := time.Now()
			for i, region := range benchRegions {
				in := ba.inputs(b, region, nil)
				wg.Go(func() {
					t0 := time.Now()
					res, err := mi.Build(context.Background(), in)
					if err == nil && (len(res.Regions) != 1 || res.ImageID == "") {
						err = fmt.Errorf("regions %v, image %q", res.Regions, res.ImageID)
					}
					mu.Lock()
					sum += time.Since(t0)
					mu.Unlock()
					errs[i] = err
				})
			}
			wg.Wait()
			wall := time.Since(start)
			for i, err := range errs {
				if err != nil {
					b.Fatalf("%s: %v", benchRegions[i], err)
				}
			}
			ba.report(b, wall)
			b.ReportMetric(float64(sum.Milliseconds()), "sum-wall-ms")
		}
	})
}
