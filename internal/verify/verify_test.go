package verify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
	"github.com/cib-project/cib/internal/verify"
)

// The tests run verify against the in-memory Azure (azuretest) through
// the real clients of internal/azure: two images of one target, one whose
// guest is healthy and one whose guest fails in a given way.

const (
	group  = "rg-central-us-verify"
	region = "centralus"
)

var _ verify.Cloud = (*azure.Machines)(nil)

type rig struct {
	a      *azuretest.Azure
	m      *azure.Machines
	net    machineimage.Network
	good   string // image IDs
	bad    string
	before []string // the IDs before the run: shared infrastructure and images

	mu        sync.Mutex
	logs      []string
	passwords []string
	hook      func(azuretest.Call)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{a: azuretest.New()}
	t.Cleanup(r.a.Close)
	r.a.Hook = func(c azuretest.Call) {
		r.mu.Lock()
		h := r.hook
		r.mu.Unlock()
		if h != nil {
			h(c)
		}
	}
	r.a.OfferSizes(region, azuretest.StandardSizes...)
	r.a.DefaultGuest = azuretest.Guest{Commands: func(script string) (string, error) {
		if strings.Contains(script, "Write-Output cib-verify") {
			return "cib-verify\r\n", nil
		}
		return "", errors.New("unexpected script")
	}}
	m, err := azure.StandIn(azuretest.Subscription, r.a.ClientOptions())
	require.NoError(t, err)
	m.PollFrequency = time.Millisecond
	r.m = m
	r.net = machineimage.Network{Group: group, Region: region, NSG: "nsg-verify", VNet: "vn-verify", Prefix: "10.9.0.0/16",
		Subnet: "sn-verify", SubnetPrefix: "10.9.0.0/24", Tags: map[string]string{machineimage.TagManaged: "true"}}
	_, err = m.EnsureNetwork(context.Background(), r.net)
	require.NoError(t, err)
	image := func(name string) string {
		id, err := r.a.Put(armcompute.Image{
			ID: to.Ptr(azuretest.ResourceID(group, "Microsoft.Compute", "images", name)), Name: to.Ptr(name),
			Type: to.Ptr("Microsoft.Compute/images"), Location: to.Ptr(region),
			Properties: &armcompute.ImageProperties{StorageProfile: &armcompute.ImageStorageProfile{OSDisk: &armcompute.ImageOSDisk{
				OSType: to.Ptr(armcompute.OperatingSystemTypesWindows), OSState: to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
				DiskSizeGB: to.Ptr[int32](64),
			}}},
		})
		require.NoError(t, err)
		return id
	}
	r.good, r.bad = image("win-good-abc1234"), image("win-bad-def5678")
	r.before = r.a.IDs()
	return r
}

func (r *rig) images() []verify.Image {
	img := func(id string) verify.Image {
		return verify.Image{ID: id, Key: "win10-64", Group: group, Region: region, Network: r.net, Size: "Standard_DS2_v2"}
	}
	return []verify.Image{img(r.good), img(r.bad)}
}

func (r *rig) options(timeout time.Duration) verify.Options {
	return verify.Options{
		Timeout: timeout, Poll: 5 * time.Millisecond, CleanupTimeout: 10 * time.Second, RetryPause: time.Millisecond,
		RunURL: "https://github.com/o/r/actions/runs/7",
		Log: func(format string, args ...any) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.logs = append(r.logs, fmt.Sprintf(format, args...))
		},
		Password: func() (string, error) {
			pw, err := verify.Password()
			r.mu.Lock()
			defer r.mu.Unlock()
			r.passwords = append(r.passwords, pw)
			return pw, err
		},
	}
}

// assertClean checks that nothing verify created remains, and that no
// password reached a log line or a result.
func (r *rig) assertClean(t *testing.T, results []verify.Result) {
	t.Helper()
	assert.Empty(t, r.a.Since(r.before), "verify left resources behind")
	r.mu.Lock()
	defer r.mu.Unlock()
	text := strings.Join(r.logs, "\n") + fmt.Sprintf("%+v", results)
	for _, pw := range r.passwords {
		assert.NotContains(t, text, pw, "a password leaked")
	}
	for _, res := range results {
		assert.Empty(t, res.Left)
	}
}

// vmCreates counts the VMs verify asked Azure to create.
func (r *rig) vmCreates() int {
	n := 0
	for _, c := range r.a.Calls() {
		if c.API == "VirtualMachinesClient.BeginCreateOrUpdate" && c.Method == http.MethodPut {
			n++
		}
	}
	return n
}

func TestHealthyImages(t *testing.T) {
	r := newRig(t)
	// A gallery image version replicated to the region, besides the two
	// managed images.
	def := r.a.AddGalleryImage(group, "gal", "win10-64", region, "V1")
	version, err := r.a.Put(armcompute.GalleryImageVersion{
		ID: to.Ptr(def + "/versions/2026.1127.1"), Name: to.Ptr("2026.1127.1"), Type: to.Ptr("Microsoft.Compute/galleries/images/versions"),
		Location: to.Ptr(region),
		Properties: &armcompute.GalleryImageVersionProperties{PublishingProfile: &armcompute.GalleryImageVersionPublishingProfile{
			TargetRegions: []*armcompute.TargetRegion{{Name: to.Ptr("eastus")}, {Name: to.Ptr(region)}},
		}},
	})
	require.NoError(t, err)
	r.before = r.a.IDs()
	images := append(r.images(), r.images()[0])
	images[2].ID = version
	results := verify.Run(context.Background(), r.m, images, r.options(10*time.Second))
	require.Len(t, results, 3)
	for _, res := range results {
		assert.True(t, res.Healthy, res.Reason)
		assert.Contains(t, res.Reason, "Run Command answered after")
		assert.Positive(t, res.Running)
		assert.GreaterOrEqual(t, res.Answered, res.Running)
		assert.GreaterOrEqual(t, res.Total, res.Answered)
		assert.Regexp(t, `^vfy-[0-9a-f]{8}$`, res.VM)
		assert.Empty(t, res.SerialTail)
	}
	assert.Equal(t, r.good, results[0].Image.ID, "results are in the images' order")
	assert.Equal(t, version, results[2].Image.ID)
	assert.Equal(t, 3, r.vmCreates())
	r.assertClean(t, results)
	r.mu.Lock()
	defer r.mu.Unlock()
	assert.Contains(t, strings.Join(r.logs, "\n"), "healthy: running after")
}

// What verify creates carries the tags purge collects leftovers by, and
// has no public IP.
func TestWhatVerifyCreatesIsTaggedForPurge(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	var seen []string
	r.hook = func(c azuretest.Call) {
		if c.Method != http.MethodPut {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c.API)
	}
	// Read the VM's and NIC's tags while it runs: a guest whose Run
	// Command looks at them.
	var vmTags, nicTags map[string]*string
	r.a.SetImageGuest(r.good, azuretest.Guest{Commands: func(string) (string, error) {
		for _, id := range r.a.Since(r.before) {
			switch {
			case strings.Contains(id, "/virtualMachines/"):
				vmTags = tagsOf(t, r, id)
			case strings.Contains(id, "/networkInterfaces/"):
				nicTags = tagsOf(t, r, id)
			}
		}
		return "cib-verify", nil
	}})
	results := verify.Run(context.Background(), r.m, r.images()[:1], r.options(10*time.Second))
	require.True(t, results[0].Healthy, results[0].Reason)
	for _, tags := range []map[string]*string{vmTags, nicTags} {
		require.NotNil(t, tags)
		assert.Equal(t, "true", *tags[machineimage.TagManaged])
		assert.Equal(t, "verify", *tags[verify.TagPurpose])
		assert.Equal(t, "win10-64", *tags[machineimage.TagKey])
		exp, err := time.Parse(time.RFC3339, *tags[machineimage.TagExpires])
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(2*time.Hour), exp, time.Minute)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.NotContains(t, strings.Join(seen, ","), "PublicIPAddresses", "no public IP")
	r.assertClean(t, results)
}

// tagsOf reads the tags of a VM or NIC straight from the model.
func tagsOf(t *testing.T, r *rig, id string) map[string]*string {
	t.Helper()
	ctx := context.Background()
	name := id[strings.LastIndex(id, "/")+1:]
	if strings.Contains(id, "/virtualMachines/") {
		c, err := armcompute.NewVirtualMachinesClient(azuretest.Subscription, &fake.TokenCredential{}, r.a.ClientOptions())
		require.NoError(t, err)
		vm, err := c.Get(ctx, group, name, nil)
		require.NoError(t, err)
		return vm.Tags
	}
	c, err := armnetwork.NewInterfacesClient(azuretest.Subscription, &fake.TokenCredential{}, r.a.ClientOptions())
	require.NoError(t, err)
	nic, err := c.Get(ctx, group, name, nil)
	require.NoError(t, err)
	return nic.Tags
}

// Each way an image fails: the result says why, keeps the serial log's
// tail, the healthy image is not affected, and nothing remains.
func TestUnhealthyImage(t *testing.T) {
	for _, c := range []struct {
		name    string
		guest   azuretest.Guest
		timeout time.Duration
		reason  string
	}{
		{"provisioning fails", azuretest.Guest{FailProvisioning: true}, 10 * time.Second, "create VM: "},
		{"guest shuts down", azuretest.Guest{Boots: []time.Duration{20 * time.Millisecond}, CommandTime: 50 * time.Millisecond},
			10 * time.Second, "the VM is stopped: the guest shut down within "},
		{"run command errs", azuretest.Guest{Commands: func(string) (string, error) {
			return "", errors.New("Write-Output : The term 'Write-Output' is not recognized")
		}}, 10 * time.Second, `run command answered stdout "", stderr "Write-Output : The term 'Write-Output' is not recognized", not "cib-verify"`},
		{"run command hangs", azuretest.Guest{CommandTime: time.Minute}, 400 * time.Millisecond, "not healthy: timed out after 400ms (last: run command: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.a.SetImageGuest(r.bad, c.guest)
			results := verify.Run(context.Background(), r.m, r.images(), r.options(c.timeout))
			require.Len(t, results, 2)
			good, bad := results[0], results[1]
			assert.True(t, good.Healthy, good.Reason)
			assert.False(t, bad.Healthy)
			assert.False(t, bad.Retryable)
			assert.Contains(t, bad.Reason, c.reason)
			t.Logf("reason: %s", bad.Reason)
			require.NotEmpty(t, bad.SerialTail, "the serial log's tail is kept")
			assert.Contains(t, strings.Join(bad.SerialTail, "\n"), "VM "+bad.VM+" allocated")
			r.assertClean(t, results)
		})
	}
	t.Run("provisioning failure names its code", func(t *testing.T) {
		r := newRig(t)
		r.a.SetImageGuest(r.bad, azuretest.Guest{FailProvisioning: true})
		results := verify.Run(context.Background(), r.m, r.images()[1:], r.options(10*time.Second))
		assert.Contains(t, results[0].Reason, "VMStartTimedOut")
	})
}

// Cancelling the run while a VM is being created stops the waits, and
// everything created is deleted all the same; images not started yet are
// not verified.
func TestCancelledRunCleansUp(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.mu.Lock()
	r.hook = func(c azuretest.Call) {
		if c.API == "VirtualMachinesClient.BeginCreateOrUpdate" {
			cancel()
		}
	}
	r.mu.Unlock()
	o := r.options(10 * time.Second)
	o.Concurrency = 1
	images := append(r.images(), r.images()...)
	results := verify.Run(ctx, r.m, images, o)
	require.Len(t, results, 4)
	assert.False(t, results[0].Healthy)
	assert.Contains(t, results[0].Reason, "cancelled")
	for _, res := range results[1:] {
		assert.False(t, res.Healthy)
		assert.Equal(t, "not verified: cancelled", res.Reason)
		assert.Empty(t, res.VM)
	}
	assert.Equal(t, 1, r.vmCreates())
	r.assertClean(t, results)
}

// A fault on the VM's creation fails the image; the NIC made for it is
// deleted. Throttling is retryable.
func TestFaultOnVMCreationCleansUpTheNIC(t *testing.T) {
	for _, c := range []struct {
		status    int
		code      string
		retryable bool
	}{
		{http.StatusConflict, "SkuNotAvailable", false},
		{http.StatusTooManyRequests, "TooManyRequests", true},
		{http.StatusInternalServerError, "InternalServerError", true},
	} {
		t.Run(c.code, func(t *testing.T) {
			r := newRig(t)
			r.a.Inject(azuretest.Fault{API: "VirtualMachinesClient.BeginCreateOrUpdate", Status: c.status, Code: c.code})
			results := verify.Run(context.Background(), r.m, r.images()[:1], r.options(10*time.Second))
			res := results[0]
			assert.False(t, res.Healthy)
			assert.Equal(t, c.retryable, res.Retryable)
			assert.Contains(t, res.Reason, "create VM: ")
			assert.Contains(t, res.Reason, c.code)
			nicDeleted := false
			for _, call := range r.a.Calls() {
				if call.API == "InterfacesClient.BeginDelete" {
					nicDeleted = true
				}
			}
			assert.True(t, nicDeleted)
			r.assertClean(t, results)
		})
	}
}

// A delete that keeps failing is tried three times; what it could not
// delete is reported (it expires, for purge), and the rest is deleted.
func TestCleanupFailureIsReported(t *testing.T) {
	r := newRig(t)
	r.a.Inject(azuretest.Fault{API: "InterfacesClient.BeginDelete", Status: http.StatusConflict, Code: "InUseNicCannotBeDeleted"})
	results := verify.Run(context.Background(), r.m, r.images()[:1], r.options(10*time.Second))
	res := results[0]
	assert.True(t, res.Healthy, res.Reason)
	require.Len(t, res.Left, 1)
	assert.Contains(t, res.Left[0], "/networkInterfaces/ni-"+res.VM)
	assert.Equal(t, res.Left, r.a.Since(r.before), "only the NIC remains")
	attempts := 0
	for _, c := range r.a.Calls() {
		if c.API == "InterfacesClient.BeginDelete" {
			attempts++
		}
	}
	assert.Equal(t, 3, attempts)
	r.mu.Lock()
	defer r.mu.Unlock()
	assert.Contains(t, strings.Join(r.logs, "\n"), "could not delete "+res.Left[0]+" (it expires, for purge)")
}

// A missing image is unhealthy at once, and leaves nothing.
func TestMissingImage(t *testing.T) {
	r := newRig(t)
	images := r.images()[:1]
	images[0].ID = azuretest.ResourceID(group, "Microsoft.Compute", "images", "gone")
	results := verify.Run(context.Background(), r.m, images, r.options(10*time.Second))
	assert.False(t, results[0].Healthy)
	assert.Contains(t, results[0].Reason, "cannot be found in 'centralus' region")
	r.assertClean(t, results)
}

func TestPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		pw, err := verify.Password()
		require.NoError(t, err)
		require.Len(t, pw, 24)
		var upper, lower, digit, other bool
		for _, c := range pw {
			switch {
			case unicode.IsUpper(c):
				upper = true
			case unicode.IsLower(c):
				lower = true
			case unicode.IsDigit(c):
				digit = true
			default:
				other = true
			}
		}
		assert.True(t, upper && lower && digit && other, pw)
		assert.False(t, seen[pw])
		seen[pw] = true
	}
}
