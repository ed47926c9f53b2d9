package azuretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
)

func init() { installers = append(installers, (*Azure).installCompute) }

// VMSize is a VM size a region offers.
type VMSize struct {
	Name   string // Standard_DS3_v2
	Family string // the quota it counts against: standardDSv2Family
	VCPUs  int
	// Restricted lists the size with a restriction
	// (NotAvailableForSubscription), as Azure does for a size this
	// subscription may not use in the region.
	Restricted bool
}

// StandardSizes are a few real sizes with their families and vCPUs.
var StandardSizes = []VMSize{
	{Name: "Standard_DS1_v2", Family: "standardDSv2Family", VCPUs: 1},
	{Name: "Standard_DS2_v2", Family: "standardDSv2Family", VCPUs: 2},
	{Name: "Standard_DS3_v2", Family: "standardDSv2Family", VCPUs: 4},
	{Name: "Standard_DS4_v2", Family: "standardDSv2Family", VCPUs: 8},
	{Name: "Standard_DS5_v2", Family: "standardDSv2Family", VCPUs: 16},
	{Name: "Standard_D2s_v3", Family: "standardDSv3Family", VCPUs: 2},
	{Name: "Standard_D4s_v3", Family: "standardDSv3Family", VCPUs: 4},
}

// Guest scripts what runs inside a VM, as seen from outside.
type Guest struct {
	// Boots[i] is how long boot i runs (the first boot at VM creation,
	// then one per start) before the guest shuts itself down: the VM is
	// then PowerState/stopped and stays allocated. A zero or missing
	// entry never stops.
	Boots []time.Duration
	// Commands answers Run Command (RunPowerShellScript) with the
	// script's standard output; an error is its standard error. Nil
	// answers an empty output.
	Commands func(script string) (stdout string, err error)
	// CommandTime is how long each Run Command takes before it answers
	// (the request's context cuts it short).
	CommandTime time.Duration
	// FailProvisioning makes the VM's creation end Failed
	// (VMStartTimedOut): the VM exists, provisioning state Failed,
	// stopped.
	FailProvisioning bool
}

// boot returns how long boot n (1-based) runs; 0 is for ever.
func (g Guest) boot(n int) time.Duration {
	if n < 1 || n > len(g.Boots) {
		return 0
	}
	return g.Boots[n-1]
}

// computeState is the part of the model the stored SDK values do not
// hold: offered sizes, quota, guests and what each VM is doing.
type computeState struct {
	mu     sync.Mutex
	sizes  map[string][]VMSize          // by region
	quota  map[string]map[string]*quota // region → lower-case family (or "cores")
	guests map[string]Guest             // by lower-case VM name
	// imageGuests are the guests of VMs created from an image, by
	// lower-case image ID.
	imageGuests map[string]Guest
	vms         map[string]*vmState // by lower-case VM ID
	diag        *httptest.Server    // boot diagnostics blobs, started on first use
	sig         string              // the SAS signature diag accepts
}

// quota is a family's (or the region's) vCPU usage outside the model's
// VMs, and its limit.
type quota struct{ used, limit int }

// defaultLimit is the vCPU quota of a family, and of a region, that
// SetQuota did not set.
const defaultLimit = 100

// vmState is what a VM is doing.
type vmState struct {
	id, name, region string
	uid              string // the VM's vmId, which names its diagnostics blobs
	size             VMSize
	guest            Guest
	boots            int       // boots so far
	bootAt           time.Time // when the current boot began
	power            string    // running, stopped, deallocated
	generalized      bool
	failed           bool
	diagnostics      bool // boot diagnostics enabled
	log              []string
	nics             []string
}

// advance lets the guest shut itself down when its boot has run its
// time.
func (v *vmState) advance(now time.Time) {
	if v.power != "running" {
		return
	}
	if d := v.guest.boot(v.boots); d > 0 && !now.Before(v.bootAt.Add(d)) {
		v.power = "stopped"
		v.logf(v.bootAt.Add(d), "boot %d: the guest shut down", v.boots)
	}
}

// start begins a new boot.
func (v *vmState) start(now time.Time) {
	v.boots++
	v.bootAt = now
	v.power = "running"
	v.logf(now, "boot %d: Windows Boot Manager: starting Windows", v.boots)
}

func (v *vmState) logf(t time.Time, format string, args ...any) {
	v.log = append(v.log, t.UTC().Format(time.RFC3339Nano)+" "+fmt.Sprintf(format, args...))
}

// allocated reports whether the VM holds a host, and so vCPU quota.
func (v *vmState) allocated() bool { return v.power != "deallocated" }

// OfferSizes makes region offer sizes (replacing an earlier offer of the
// same name).
func (a *Azure) OfferSizes(region string, sizes ...VMSize) {
	s := a.machines
	s.mu.Lock()
	defer s.mu.Unlock()
	r := normRegion(region)
	for _, z := range sizes {
		s.sizes[r] = slices.DeleteFunc(s.sizes[r], func(o VMSize) bool { return strings.EqualFold(o.Name, z.Name) })
		s.sizes[r] = append(s.sizes[r], z)
	}
}

// SetQuota sets the vCPU quota of family in region: used vCPUs beyond
// those of the model's VMs, and the limit. Family "cores" is the
// region's total. Unset, a family that region offers and the region have
// a limit of 100 and nothing used.
func (a *Azure) SetQuota(region, family string, used, limit int) {
	s := a.machines
	s.mu.Lock()
	defer s.mu.Unlock()
	r := normRegion(region)
	if s.quota[r] == nil {
		s.quota[r] = map[string]*quota{}
	}
	s.quota[r][strings.ToLower(family)] = &quota{used: used, limit: limit}
}

// SetGuest scripts the guest of the VM named vmName (in any group),
// including one that exists: its next boots follow g.
func (a *Azure) SetGuest(vmName string, g Guest) {
	s := a.machines
	s.mu.Lock()
	defer s.mu.Unlock()
	s.guests[strings.ToLower(vmName)] = g
	for _, v := range s.vms {
		if strings.EqualFold(v.name, vmName) {
			v.guest = g
		}
	}
}

// SetImageGuest scripts the guest of every VM created from the managed
// image or gallery image version imageID from now on, unless SetGuest
// names the VM: a test makes one image's VMs fail this way.
func (a *Azure) SetImageGuest(imageID string, g Guest) {
	s := a.machines
	s.mu.Lock()
	defer s.mu.Unlock()
	s.imageGuests[strings.ToLower(imageID)] = g
}

// AddGalleryImage makes a Compute Gallery and an image definition in it
// (shared infrastructure a run does not create), and returns the
// definition's ID.
func (a *Azure) AddGalleryImage(group, gallery, definition, region, hyperVGeneration string) string {
	gid := ResourceID(group, "Microsoft.Compute", "galleries", gallery)
	a.put(gid, armcompute.Gallery{
		ID: to.Ptr(gid), Name: to.Ptr(gallery), Type: to.Ptr("Microsoft.Compute/galleries"), Location: to.Ptr(normRegion(region)),
		Properties: &armcompute.GalleryProperties{ProvisioningState: to.Ptr(armcompute.GalleryProvisioningStateSucceeded)},
	})
	id := gid + "/images/" + definition
	a.put(id, armcompute.GalleryImage{
		ID: to.Ptr(id), Name: to.Ptr(definition), Type: to.Ptr("Microsoft.Compute/galleries/images"), Location: to.Ptr(normRegion(region)),
		Properties: &armcompute.GalleryImageProperties{
			OSType: to.Ptr(armcompute.OperatingSystemTypesWindows), OSState: to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
			HyperVGeneration:  to.Ptr(armcompute.HyperVGeneration(hyperVGeneration)),
			Identifier:        &armcompute.GalleryImageIdentifier{Publisher: to.Ptr("cib"), Offer: to.Ptr(gallery), SKU: to.Ptr(definition)},
			ProvisioningState: to.Ptr(armcompute.GalleryProvisioningStateSucceeded),
		},
	})
	return id
}

// Close stops the boot diagnostics server, if it started.
func (a *Azure) Close() {
	s := a.machines
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.diag != nil {
		s.diag.Close()
		s.diag = nil
	}
}

// normRegion is a region's normalized name: Central US → centralus.
func normRegion(r string) string { return strings.ToLower(strings.ReplaceAll(r, " ", "")) }

// armError is an error as ARM answers it: a status, a code and a message
// that says what is wrong (the fake packages' own error responses carry
// no message).
func armError(status int, code, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	body, _ := json.MarshalIndent(map[string]any{"error": map[string]string{"code": code, "message": msg}}, "", "  ")
	const sep = "--------------------------------------------------------------------------------"
	text := fmt.Sprintf("RESPONSE %d: %d %s\nERROR CODE: %s\n%s\n%s\n%s\n", status, status, http.StatusText(status), code, sep, body, sep)
	j, _ := json.Marshal(map[string]any{"errorCode": code, "statusCode": status, "errorMessage": text})
	re := &azcore.ResponseError{}
	_ = json.Unmarshal(j, re) // the only way to give a ResponseError its message
	return re
}

// notModelled is the answer to a request the model does not implement.
func notModelled(format string, args ...any) error {
	return armError(http.StatusNotImplemented, "NotImplementedInModel", "azuretest: "+format+" is not part of the in-memory Azure", args...)
}

// clone copies an SDK model value, so that what is stored and what is
// answered never share pointers.
func clone[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// deref is *p, or the zero value of a nil p.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// newUUID is a random UUID-shaped string.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// missing is the error of a resource that is not there: its group's, or
// its own.
func (a *Azure) missing(group, kind, name string) error {
	if _, ok := a.get(GroupID(group)); !ok {
		return armError(http.StatusNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", group)
	}
	return armError(http.StatusNotFound, "ResourceNotFound", "The Resource '%s/%s' under resource group '%s' was not found.", kind, name, group)
}

// groupMissing returns the error of a missing group, or nil.
func (a *Azure) groupMissing(group string) error {
	if _, ok := a.get(GroupID(group)); !ok {
		return armError(http.StatusNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", group)
	}
	return nil
}

// lookup returns the stored T under id.
func lookup[T any](a *Azure, id string) (T, bool) {
	v, ok := a.get(id)
	if !ok {
		var zero T
		return zero, false
	}
	t, ok := v.(T)
	return clone(t), ok
}

// vm returns the state of the VM id, dropping the state of one that is
// gone (with its group). The caller holds s.mu.
func (a *Azure) vm(id string) *vmState {
	s := a.machines
	k := strings.ToLower(id)
	v := s.vms[k]
	if v == nil {
		return nil
	}
	if _, ok := a.get(id); !ok {
		delete(s.vms, k)
		return nil
	}
	return v
}

// usage returns the vCPUs used in region of family ("cores": all) and the
// limit. The caller holds s.mu.
func (a *Azure) usage(region, family string) (used, limit int) {
	s := a.machines
	r, f := normRegion(region), strings.ToLower(family)
	used, limit = 0, defaultLimit
	if q := s.quota[r][f]; q != nil {
		used, limit = q.used, q.limit
	}
	for id := range s.vms {
		v := a.vm(id)
		if v != nil && v.region == r && v.allocated() && (f == "cores" || strings.EqualFold(v.size.Family, f)) {
			used += v.size.VCPUs
		}
	}
	return used, limit
}

// quotaError returns the error of allocating size in region beyond its
// family's or the region's quota, or nil. The caller holds s.mu.
func (a *Azure) quotaError(region string, size VMSize) error {
	for _, f := range []string{size.Family, "cores"} {
		used, limit := a.usage(region, f)
		if used+size.VCPUs > limit {
			return armError(http.StatusConflict, "QuotaExceeded",
				"Operation could not be completed as it results in exceeding approved %s Cores quota. Location: %s, Current Limit: %d, Current Usage: %d, Additional Required: %d.",
				f, region, limit, used, size.VCPUs)
		}
	}
	return nil
}

// installCompute models the compute operations the machine-image stage
// uses: resource SKUs, usage, disks, VMs (with a scripted guest), images
// and gallery image versions.
func (a *Azure) installCompute() {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	a.machines = &computeState{
		sizes: map[string][]VMSize{}, quota: map[string]map[string]*quota{},
		guests: map[string]Guest{}, imageGuests: map[string]Guest{}, vms: map[string]*vmState{}, sig: hex.EncodeToString(b),
	}
	a.installSKUs()
	a.installDisks()
	a.installVMs()
	a.installImages()
	a.installVersions()
}

var locationFilter = regexp.MustCompile(`(?i)^\s*location\s+eq\s+'([^']*)'\s*$`)

// installSKUs models the resource SKU and usage lists, each in pages.
func (a *Azure) installSKUs() {
	a.compute.ResourceSKUsServer.NewListPager = func(o *armcompute.ResourceSKUsClientListOptions) (resp azfake.PagerResponder[armcompute.ResourceSKUsClientListResponse]) {
		s := a.machines
		s.mu.Lock()
		defer s.mu.Unlock()
		var regions []string
		if o != nil && o.Filter != nil {
			m := locationFilter.FindStringSubmatch(*o.Filter)
			if m == nil {
				resp.AddError(armError(http.StatusBadRequest, "InvalidParameter", "The filter '%s' is not supported: only location eq '<location>' is.", *o.Filter))
				return
			}
			regions = []string{normRegion(m[1])}
		} else {
			for r := range s.sizes {
				regions = append(regions, r)
			}
			sort.Strings(regions)
		}
		var skus []*armcompute.ResourceSKU
		for _, r := range regions {
			if len(s.sizes[r]) == 0 {
				continue
			}
			// A region lists more than VM sizes: the adapter must look at
			// the resource type.
			skus = append(skus, &armcompute.ResourceSKU{
				ResourceType: to.Ptr("disks"), Name: to.Ptr("Standard_LRS"), Tier: to.Ptr("Standard"), Size: to.Ptr("E10"),
				Locations: []*string{to.Ptr(r)}, LocationInfo: []*armcompute.ResourceSKULocationInfo{{Location: to.Ptr(r)}},
				Restrictions: []*armcompute.ResourceSKURestrictions{},
			})
			for _, z := range s.sizes[r] {
				sku := &armcompute.ResourceSKU{
					ResourceType: to.Ptr("virtualMachines"), Name: to.Ptr(z.Name), Tier: to.Ptr("Standard"),
					Size: to.Ptr(strings.TrimPrefix(z.Name, "Standard_")), Family: to.Ptr(z.Family),
					Locations: []*string{to.Ptr(r)}, LocationInfo: []*armcompute.ResourceSKULocationInfo{{Location: to.Ptr(r)}},
					Capabilities: []*armcompute.ResourceSKUCapabilities{
						{Name: to.Ptr("MaxResourceVolumeMB"), Value: to.Ptr(strconv.Itoa(z.VCPUs * 7168))},
						{Name: to.Ptr("HyperVGenerations"), Value: to.Ptr("V1,V2")},
						{Name: to.Ptr("vCPUs"), Value: to.Ptr(strconv.Itoa(z.VCPUs))},
						{Name: to.Ptr("MemoryGB"), Value: to.Ptr(strconv.FormatFloat(float64(z.VCPUs)*3.5, 'f', -1, 64))},
						{Name: to.Ptr("vCPUsAvailable"), Value: to.Ptr(strconv.Itoa(z.VCPUs))},
					},
					Restrictions: []*armcompute.ResourceSKURestrictions{},
				}
				if z.Restricted {
					sku.Restrictions = append(sku.Restrictions, &armcompute.ResourceSKURestrictions{
						Type: to.Ptr(armcompute.ResourceSKURestrictionsTypeLocation), Values: []*string{to.Ptr(r)},
						RestrictionInfo: &armcompute.ResourceSKURestrictionInfo{Locations: []*string{to.Ptr(r)}},
						ReasonCode:      to.Ptr(armcompute.ResourceSKURestrictionsReasonCodeNotAvailableForSubscription),
					})
				}
				skus = append(skus, sku)
			}
		}
		for page := range slices.Chunk(skus, 3) {
			resp.AddPage(http.StatusOK, armcompute.ResourceSKUsClientListResponse{ResourceSKUsResult: armcompute.ResourceSKUsResult{Value: page}}, nil)
		}
		if len(skus) == 0 {
			resp.AddPage(http.StatusOK, armcompute.ResourceSKUsClientListResponse{ResourceSKUsResult: armcompute.ResourceSKUsResult{Value: []*armcompute.ResourceSKU{}}}, nil)
		}
		return
	}

	a.compute.UsageServer.NewListPager = func(location string, _ *armcompute.UsageClientListOptions) (resp azfake.PagerResponder[armcompute.UsageClientListResponse]) {
		s := a.machines
		s.mu.Lock()
		defer s.mu.Unlock()
		r := normRegion(location)
		families := map[string]string{"cores": "cores"}
		for _, z := range s.sizes[r] {
			families[strings.ToLower(z.Family)] = z.Family
		}
		for f := range s.quota[r] {
			if _, ok := families[f]; !ok {
				families[f] = f
			}
		}
		var keys []string
		for k := range families {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var vms int32
		for id := range s.vms {
			if v := a.vm(id); v != nil && v.region == r {
				vms++
			}
		}
		usages := []*armcompute.Usage{{
			Name:         &armcompute.UsageName{Value: to.Ptr("virtualMachines"), LocalizedValue: to.Ptr("Total Virtual Machines")},
			CurrentValue: to.Ptr(vms), Limit: to.Ptr(int64(25000)), Unit: to.Ptr("Count"),
		}}
		for _, k := range keys {
			used, limit := a.usage(r, k)
			name := families[k]
			localized := "Total Regional vCPUs"
			if k != "cores" {
				localized = name + " vCPUs"
			}
			usages = append(usages, &armcompute.Usage{
				Name:         &armcompute.UsageName{Value: to.Ptr(name), LocalizedValue: to.Ptr(localized)},
				CurrentValue: to.Ptr(int32(used)), Limit: to.Ptr(int64(limit)), Unit: to.Ptr("Count"),
			})
		}
		half := (len(usages) + 1) / 2
		resp.AddPage(http.StatusOK, armcompute.UsageClientListResponse{ListUsagesResult: armcompute.ListUsagesResult{Value: usages[:half]}}, nil)
		resp.AddPage(http.StatusOK, armcompute.UsageClientListResponse{ListUsagesResult: armcompute.ListUsagesResult{Value: usages[half:]}}, nil)
		return
	}
}

const (
	diskType    = "Microsoft.Compute/disks"
	vmType      = "Microsoft.Compute/virtualMachines"
	imageType   = "Microsoft.Compute/images"
	versionType = "Microsoft.Compute/galleries/images/versions"
)

// installDisks models managed disks: import from a VHD blob or empty,
// get, update (tags) and delete, which Azure refuses for an attached
// disk.
func (a *Azure) installDisks() {
	s := &a.compute.DisksServer
	s.BeginCreateOrUpdate = func(_ context.Context, group, name string, d armcompute.Disk, _ *armcompute.DisksClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.DisksClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		if err := a.groupMissing(group); err != nil {
			errResp.SetError(err)
			return
		}
		if d.Location == nil || *d.Location == "" {
			errResp.SetError(armError(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition."))
			return
		}
		if d.Properties == nil || d.Properties.CreationData == nil || d.Properties.CreationData.CreateOption == nil {
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "Required parameter 'creationData.createOption' is missing (null)."))
			return
		}
		id := ResourceID(group, "Microsoft.Compute", "disks", name)
		cd := d.Properties.CreationData
		switch *cd.CreateOption {
		case armcompute.DiskCreateOptionImport:
			if cd.SourceURI == nil || *cd.SourceURI == "" {
				errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "Required parameter 'creationData.sourceUri' is missing (null)."))
				return
			}
			if cd.StorageAccountID == nil || *cd.StorageAccountID == "" {
				errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "Required parameter 'creationData.storageAccountId' is missing (null)."))
				return
			}
			if d.Properties.DiskSizeGB == nil {
				d.Properties.DiskSizeGB = to.Ptr[int32](127) // the VHD's size, as Azure reads it
			}
		case armcompute.DiskCreateOptionEmpty:
			if d.Properties.DiskSizeGB == nil || *d.Properties.DiskSizeGB <= 0 {
				errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "Disk '%s': 'diskSizeGB' must be greater than 0 for an empty disk.", name))
				return
			}
		default:
			errResp.SetError(notModelled("disk createOption %s", *cd.CreateOption))
			return
		}
		if d.SKU == nil || d.SKU.Name == nil {
			d.SKU = &armcompute.DiskSKU{Name: to.Ptr(armcompute.DiskStorageAccountTypesStandardLRS)}
		}
		if old, ok := lookup[armcompute.Disk](a, id); ok && old.ManagedBy != nil {
			errResp.SetError(armError(http.StatusConflict, "OperationNotAllowed", "Disk '%s' is attached to VM '%s' and cannot be re-created.", name, *old.ManagedBy))
			return
		}
		d.ID, d.Name, d.Type = to.Ptr(id), to.Ptr(name), to.Ptr(diskType)
		d.Location = to.Ptr(normRegion(*d.Location))
		d.Properties.ProvisioningState = to.Ptr("Succeeded")
		d.Properties.DiskState = to.Ptr(armcompute.DiskStateUnattached)
		d.Properties.TimeCreated = to.Ptr(time.Now().UTC())
		d.Properties.UniqueID = to.Ptr(newUUID())
		d.Properties.DiskSizeBytes = to.Ptr(int64(*d.Properties.DiskSizeGB) << 30)
		a.put(id, clone(d))
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.DisksClientCreateOrUpdateResponse{Disk: clone(d)}, nil)
		return
	}
	s.Get = func(_ context.Context, group, name string, _ *armcompute.DisksClientGetOptions) (resp azfake.Responder[armcompute.DisksClientGetResponse], errResp azfake.ErrorResponder) {
		d, ok := lookup[armcompute.Disk](a, ResourceID(group, "Microsoft.Compute", "disks", name))
		if !ok {
			errResp.SetError(a.missing(group, diskType, name))
			return
		}
		resp.SetResponse(http.StatusOK, armcompute.DisksClientGetResponse{Disk: d}, nil)
		return
	}
	s.BeginUpdate = func(_ context.Context, group, name string, u armcompute.DiskUpdate, _ *armcompute.DisksClientBeginUpdateOptions) (resp azfake.PollerResponder[armcompute.DisksClientUpdateResponse], errResp azfake.ErrorResponder) {
		id := ResourceID(group, "Microsoft.Compute", "disks", name)
		d, ok := lookup[armcompute.Disk](a, id)
		if !ok {
			errResp.SetError(a.missing(group, diskType, name))
			return
		}
		if u.Properties != nil {
			errResp.SetError(notModelled("updating disk properties other than tags and SKU"))
			return
		}
		if u.Tags != nil {
			d.Tags = u.Tags
		}
		if u.SKU != nil {
			d.SKU = u.SKU
		}
		a.put(id, clone(d))
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.DisksClientUpdateResponse{Disk: d}, nil)
		return
	}
	s.BeginDelete = func(_ context.Context, group, name string, _ *armcompute.DisksClientBeginDeleteOptions) (resp azfake.PollerResponder[armcompute.DisksClientDeleteResponse], errResp azfake.ErrorResponder) {
		if err := a.groupMissing(group); err != nil {
			errResp.SetError(err)
			return
		}
		id := ResourceID(group, "Microsoft.Compute", "disks", name)
		d, ok := lookup[armcompute.Disk](a, id)
		if !ok {
			resp.SetTerminalResponse(http.StatusNoContent, armcompute.DisksClientDeleteResponse{}, nil)
			return
		}
		if d.ManagedBy != nil && *d.ManagedBy != "" {
			errResp.SetError(armError(http.StatusConflict, "OperationNotAllowed", "Disk %s is attached to VM %s.", name, *d.ManagedBy))
			return
		}
		a.del(id)
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.DisksClientDeleteResponse{}, nil)
		return
	}
}

// attachDisk marks disk id as attached to vmID (or detached, when vmID
// is empty).
func (a *Azure) attachDisk(id, vmID string) {
	d, ok := lookup[armcompute.Disk](a, id)
	if !ok {
		return
	}
	if vmID == "" {
		d.ManagedBy = nil
		d.Properties.DiskState = to.Ptr(armcompute.DiskStateUnattached)
	} else {
		d.ManagedBy = to.Ptr(vmID)
		d.Properties.DiskState = to.Ptr(armcompute.DiskStateAttached)
	}
	a.put(*d.ID, d)
}

// nicRegion returns the region of the NIC id and whether it exists,
// whichever way network.go stores it.
func (a *Azure) nicRegion(id string) (string, bool) {
	v, ok := a.get(id)
	if !ok {
		return "", false
	}
	switch n := v.(type) {
	case armnetwork.Interface:
		return normRegion(deref(n.Location)), true
	case *armnetwork.Interface:
		return normRegion(deref(n.Location)), true
	}
	return "", true
}

// disksOf returns the IDs of a stored VM's disks, and of those that go
// with it when it is deleted.
func disksOf(vm armcompute.VirtualMachine) (all []string, deleted []string) {
	if vm.Properties == nil || vm.Properties.StorageProfile == nil {
		return nil, nil
	}
	sp := vm.Properties.StorageProfile
	add := func(md *armcompute.ManagedDiskParameters, del *armcompute.DiskDeleteOptionTypes) {
		if md == nil || md.ID == nil {
			return
		}
		all = append(all, *md.ID)
		if del != nil && *del == armcompute.DiskDeleteOptionTypesDelete {
			deleted = append(deleted, *md.ID)
		}
	}
	if sp.OSDisk != nil {
		add(sp.OSDisk.ManagedDisk, sp.OSDisk.DeleteOption)
	}
	for _, d := range sp.DataDisks {
		add(d.ManagedDisk, d.DeleteOption)
	}
	return all, deleted
}

var computerName = regexp.MustCompile(`^[A-Za-z0-9-]{1,15}$`)

// createVM checks a VM's definition as Azure does, creates the disks it
// asks for, and returns the VM to store, or the error of the request.
// The caller holds s.mu.
func (a *Azure) createVM(group, name string, vm armcompute.VirtualMachine) (armcompute.VirtualMachine, VMSize, error) {
	id := ResourceID(group, "Microsoft.Compute", "virtualMachines", name)
	bad := func(format string, args ...any) error {
		return armError(http.StatusBadRequest, "InvalidParameter", format, args...)
	}
	if vm.Location == nil || *vm.Location == "" {
		return vm, VMSize{}, armError(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.")
	}
	region := normRegion(*vm.Location)
	p := vm.Properties
	if p == nil || p.HardwareProfile == nil || p.HardwareProfile.VMSize == nil {
		return vm, VMSize{}, bad("Required parameter 'hardwareProfile.vmSize' is missing (null).")
	}
	sizeName := string(*p.HardwareProfile.VMSize)
	i := slices.IndexFunc(a.machines.sizes[region], func(z VMSize) bool { return strings.EqualFold(z.Name, sizeName) })
	if i < 0 || a.machines.sizes[region][i].Restricted {
		return vm, VMSize{}, armError(http.StatusConflict, "SkuNotAvailable",
			"The requested VM size '%s' is currently not available in location '%s'. Please try another size or deploy to a different location.", sizeName, region)
	}
	size := a.machines.sizes[region][i]
	if err := a.quotaError(region, size); err != nil {
		return vm, VMSize{}, err
	}

	// The NICs.
	if p.NetworkProfile == nil || len(p.NetworkProfile.NetworkInterfaces) == 0 {
		return vm, VMSize{}, bad("Virtual machine '%s' must have at least one network interface.", name)
	}
	for _, n := range p.NetworkProfile.NetworkInterfaces {
		if n.ID == nil {
			return vm, VMSize{}, bad("Required parameter 'networkInterfaces.id' is missing (null).")
		}
		r, ok := a.nicRegion(*n.ID)
		if !ok {
			return vm, VMSize{}, armError(http.StatusNotFound, "NotFound", "Resource %s not found.", *n.ID)
		}
		if r != "" && r != region {
			return vm, VMSize{}, bad("Network interface %s is in location '%s', not in the VM's location '%s'.", *n.ID, r, region)
		}
		for k := range a.machines.vms {
			if v := a.vm(k); v != nil && !strings.EqualFold(v.id, id) && slices.ContainsFunc(v.nics, func(x string) bool { return strings.EqualFold(x, *n.ID) }) {
				return vm, VMSize{}, armError(http.StatusBadRequest, "NicInUse", "Network Interface %s is used by existing resource %s.", *n.ID, v.id)
			}
		}
	}

	// The disks: attached ones must exist, in the region, unattached.
	sp := p.StorageProfile
	if sp == nil || sp.OSDisk == nil || sp.OSDisk.CreateOption == nil {
		return vm, VMSize{}, bad("Required parameter 'osDisk.createOption' is missing (null).")
	}
	attachable := func(md *armcompute.ManagedDiskParameters) error {
		if md == nil || md.ID == nil {
			return bad("Required parameter 'managedDisk.id' is missing (null).")
		}
		d, ok := lookup[armcompute.Disk](a, *md.ID)
		if !ok {
			return armError(http.StatusNotFound, "NotFound", "Disk %s not found.", *md.ID)
		}
		if normRegion(*d.Location) != region {
			return bad("Disk %s is in location '%s', not in the VM's location '%s'.", *md.ID, *d.Location, region)
		}
		if d.ManagedBy != nil && !strings.EqualFold(*d.ManagedBy, id) {
			return armError(http.StatusConflict, "OperationNotAllowed", "Disk %s is already attached to VM %s.", *md.ID, *d.ManagedBy)
		}
		return nil
	}
	var created []armcompute.Disk // made by the VM's creation
	newDisk := func(diskName string, size int32, sku *armcompute.StorageAccountTypes, opt armcompute.DiskCreateOption) armcompute.Disk {
		did := ResourceID(group, "Microsoft.Compute", "disks", diskName)
		t := armcompute.DiskStorageAccountTypesStandardLRS
		if sku != nil {
			t = armcompute.DiskStorageAccountTypes(*sku)
		}
		d := armcompute.Disk{
			ID: to.Ptr(did), Name: to.Ptr(diskName), Type: to.Ptr(diskType), Location: to.Ptr(region), ManagedBy: to.Ptr(id),
			SKU: &armcompute.DiskSKU{Name: to.Ptr(t)},
			Properties: &armcompute.DiskProperties{
				CreationData: &armcompute.CreationData{CreateOption: to.Ptr(opt)}, DiskSizeGB: to.Ptr(size),
				DiskState: to.Ptr(armcompute.DiskStateAttached), ProvisioningState: to.Ptr("Succeeded"),
				TimeCreated: to.Ptr(time.Now().UTC()), UniqueID: to.Ptr(newUUID()),
			},
		}
		created = append(created, d)
		return d
	}
	suffix := strings.ReplaceAll(newUUID(), "-", "")
	switch *sp.OSDisk.CreateOption {
	case armcompute.DiskCreateOptionTypesAttach:
		if err := attachable(sp.OSDisk.ManagedDisk); err != nil {
			return vm, VMSize{}, err
		}
		if sp.OSDisk.OSType == nil {
			return vm, VMSize{}, bad("Required parameter 'osDisk.osType' is missing (null).")
		}
		if sp.ImageReference != nil {
			return vm, VMSize{}, bad("Parameter 'imageReference' is not allowed when the OS disk is attached.")
		}
		if p.OSProfile != nil {
			return vm, VMSize{}, bad("Parameter 'osProfile' is not allowed.")
		}
	case armcompute.DiskCreateOptionTypesFromImage:
		ir := sp.ImageReference
		size := int32(127)
		switch {
		case ir != nil && ir.ID != nil:
			if ir.Publisher != nil || ir.Offer != nil || ir.SKU != nil {
				return vm, VMSize{}, bad("Parameter 'imageReference' must name either an image ID or a publisher, offer and sku, not both.")
			}
			imageSize, err := a.imageSource(*ir.ID, region, p.OSProfile != nil)
			if err != nil {
				return vm, VMSize{}, err
			}
			if imageSize > 0 {
				size = imageSize
			}
		case ir == nil || ir.Publisher == nil || ir.Offer == nil || ir.SKU == nil:
			return vm, VMSize{}, bad("Required parameter 'imageReference' (publisher, offer, sku) is missing (null).")
		}
		op := p.OSProfile
		switch {
		case op == nil || op.AdminUsername == nil || *op.AdminUsername == "":
			return vm, VMSize{}, bad("Required parameter 'adminUsername' is missing (null).")
		case op.AdminPassword == nil || *op.AdminPassword == "":
			return vm, VMSize{}, bad("Required parameter 'adminPassword' is missing (null).")
		case op.ComputerName == nil || !computerName.MatchString(*op.ComputerName):
			return vm, VMSize{}, bad("Windows computer name cannot be more than 15 characters long, be entirely numeric, or contain the following characters: ` ~ ! @ # $ %% ^ & * ( ) = + _ [ ] { } \\ | ; : . ' \" , < > / ?.")
		case len(*op.AdminPassword) < 12:
			return vm, VMSize{}, bad("The supplied password must be between 8-123 characters long and must satisfy at least 3 of password complexity requirements.")
		}
		if sp.OSDisk.ManagedDisk == nil {
			sp.OSDisk.ManagedDisk = &armcompute.ManagedDiskParameters{}
		}
		diskName := name + "_OsDisk_1_" + suffix
		if sp.OSDisk.Name != nil {
			diskName = *sp.OSDisk.Name
		}
		if _, taken := a.get(ResourceID(group, "Microsoft.Compute", "disks", diskName)); taken {
			return vm, VMSize{}, armError(http.StatusConflict, "OperationNotAllowed", "Disk %s already exists in resource group %s. Only CreateOption.Attach is supported.", diskName, strings.ToUpper(group))
		}
		if sp.OSDisk.DiskSizeGB != nil {
			size = *sp.OSDisk.DiskSizeGB
		}
		d := newDisk(diskName, size, sp.OSDisk.ManagedDisk.StorageAccountType, armcompute.DiskCreateOptionFromImage)
		d.Properties.OSType = to.Ptr(armcompute.OperatingSystemTypesWindows)
		created[len(created)-1] = d
		sp.OSDisk.ManagedDisk.ID, sp.OSDisk.Name, sp.OSDisk.OSType = d.ID, d.Name, to.Ptr(armcompute.OperatingSystemTypesWindows)
		if sp.OSDisk.DeleteOption == nil {
			sp.OSDisk.DeleteOption = to.Ptr(armcompute.DiskDeleteOptionTypesDetach)
		}
		// Azure never answers the password.
		op.AdminPassword = nil
	default:
		return vm, VMSize{}, notModelled("osDisk createOption %s", *sp.OSDisk.CreateOption)
	}
	luns := map[int32]bool{}
	for _, dd := range sp.DataDisks {
		if dd.Lun == nil {
			return vm, VMSize{}, bad("Required parameter 'dataDisk.lun' is missing (null).")
		}
		if luns[*dd.Lun] {
			return vm, VMSize{}, bad("Data disks must have unique LUNs; LUN %d is used twice.", *dd.Lun)
		}
		luns[*dd.Lun] = true
		switch {
		case dd.CreateOption == nil:
			return vm, VMSize{}, bad("Required parameter 'dataDisk.createOption' is missing (null).")
		case *dd.CreateOption == armcompute.DiskCreateOptionTypesAttach:
			if err := attachable(dd.ManagedDisk); err != nil {
				return vm, VMSize{}, err
			}
		case *dd.CreateOption == armcompute.DiskCreateOptionTypesEmpty:
			if dd.DiskSizeGB == nil || *dd.DiskSizeGB <= 0 {
				return vm, VMSize{}, bad("Data disk at LUN %d: 'diskSizeGB' must be greater than 0 for an empty disk.", *dd.Lun)
			}
			diskName := fmt.Sprintf("%s_disk%d_%s", name, *dd.Lun+2, suffix)
			if dd.Name != nil {
				diskName = *dd.Name
			}
			if dd.ManagedDisk == nil {
				dd.ManagedDisk = &armcompute.ManagedDiskParameters{}
			}
			d := newDisk(diskName, *dd.DiskSizeGB, dd.ManagedDisk.StorageAccountType, armcompute.DiskCreateOptionEmpty)
			dd.ManagedDisk.ID, dd.Name = d.ID, d.Name
		default:
			return vm, VMSize{}, notModelled("dataDisk createOption %s", *dd.CreateOption)
		}
	}
	for _, d := range created {
		a.put(*d.ID, d)
	}
	vm.ID, vm.Name, vm.Type = to.Ptr(id), to.Ptr(name), to.Ptr(vmType)
	vm.Location = to.Ptr(region)
	p.VMID = to.Ptr(newUUID())
	p.TimeCreated = to.Ptr(time.Now().UTC())
	p.ProvisioningState = to.Ptr("Succeeded")
	return vm, size, nil
}

// imageSource checks the image a VM is created from by ID, as Azure does,
// and returns the size of its OS disk (0: not known). A managed image
// must exist in the VM's region; a gallery image version must exist and
// be replicated to the VM's region (one of its publishing profile's
// target regions). A generalized image needs an OS profile to provision
// the VM with, and a specialized one refuses one.
func (a *Azure) imageSource(id, region string, osProfile bool) (int32, error) {
	bad := func(format string, args ...any) error {
		return armError(http.StatusBadRequest, "InvalidParameter", format, args...)
	}
	r, err := arm.ParseResourceID(id)
	if err != nil {
		return 0, bad("The value '%s' of parameter 'imageReference.id' is not a valid resource ID.", id)
	}
	var size *int32
	var state armcompute.OperatingSystemStateTypes
	switch strings.ToLower(r.ResourceType.String()) {
	case "microsoft.compute/images":
		img, ok := lookup[armcompute.Image](a, id)
		if !ok || normRegion(deref(img.Location)) != region {
			return 0, armError(http.StatusNotFound, "NotFound", "The Image '%s' cannot be found in '%s' region.", id, region)
		}
		if img.Properties == nil || img.Properties.StorageProfile == nil || img.Properties.StorageProfile.OSDisk == nil {
			return 0, notModelled("a VM from image %s, which has no OS disk in its storage profile", id)
		}
		d := img.Properties.StorageProfile.OSDisk
		size, state = d.DiskSizeGB, deref(d.OSState)
	case "microsoft.compute/galleries/images/versions":
		v, ok := lookup[armcompute.GalleryImageVersion](a, id)
		replicated := false
		if ok && v.Properties != nil && v.Properties.PublishingProfile != nil {
			for _, t := range v.Properties.PublishingProfile.TargetRegions {
				if t != nil && normRegion(deref(t.Name)) == region {
					replicated = true
				}
			}
		}
		if !replicated {
			return 0, armError(http.StatusNotFound, "GalleryImageNotFound",
				"The gallery image %s is not available in %s region. Please contact image owner to replicate to this region, or change your requested region.", id, region)
		}
		def, ok := lookup[armcompute.GalleryImage](a, r.Parent.String())
		if !ok || def.Properties == nil || def.Properties.OSState == nil {
			return 0, notModelled("a VM from gallery image version %s, whose image definition is not there", id)
		}
		state = *def.Properties.OSState
		if so := v.Properties.StorageProfile; so != nil && so.OSDiskImage != nil {
			size = so.OSDiskImage.SizeInGB
		}
	case "microsoft.compute/galleries/images":
		return 0, notModelled("a VM from the latest version of gallery image %s", id)
	default:
		return 0, bad("The value '%s' of parameter 'imageReference.id' is not a managed image or a gallery image version.", id)
	}
	switch {
	case state == armcompute.OperatingSystemStateTypesSpecialized && osProfile:
		return 0, bad("Parameter 'osProfile' is not allowed.")
	case state != armcompute.OperatingSystemStateTypesGeneralized && state != armcompute.OperatingSystemStateTypesSpecialized:
		return 0, notModelled("a VM from image %s, whose OS state is %q", id, state)
	case state == armcompute.OperatingSystemStateTypesSpecialized:
		return 0, notModelled("a VM from the specialized image %s", id)
	}
	return deref(size), nil
}

// instanceView is the VM's instance view now. The caller holds s.mu.
func instanceView(v *vmState) *armcompute.VirtualMachineInstanceView {
	now := time.Now().UTC()
	prov := &armcompute.InstanceViewStatus{Code: to.Ptr("ProvisioningState/succeeded"), Level: to.Ptr(armcompute.StatusLevelTypesInfo), DisplayStatus: to.Ptr("Provisioning succeeded"), Time: to.Ptr(now)}
	if v.failed {
		prov = &armcompute.InstanceViewStatus{Code: to.Ptr("ProvisioningState/failed/VMStartTimedOut"), Level: to.Ptr(armcompute.StatusLevelTypesError), DisplayStatus: to.Ptr("Provisioning failed"), Time: to.Ptr(now),
			Message: to.Ptr("VM '" + v.name + "' did not start in the allotted time.")}
	}
	statuses := []*armcompute.InstanceViewStatus{prov}
	if v.generalized {
		statuses = append(statuses, &armcompute.InstanceViewStatus{Code: to.Ptr("OSState/generalized"), Level: to.Ptr(armcompute.StatusLevelTypesInfo), DisplayStatus: to.Ptr("VM generalized")})
	}
	statuses = append(statuses, &armcompute.InstanceViewStatus{Code: to.Ptr("PowerState/" + v.power), Level: to.Ptr(armcompute.StatusLevelTypesInfo), DisplayStatus: to.Ptr("VM " + v.power)})
	iv := &armcompute.VirtualMachineInstanceView{Statuses: statuses, ComputerName: to.Ptr(v.name), OSName: to.Ptr("Windows")}
	if v.diagnostics {
		iv.BootDiagnostics = &armcompute.BootDiagnosticsInstanceView{}
	}
	return iv
}

// installVMs models VMs: create (and start), get, instance view, update
// (tags), start, restart, deallocate, generalize, run command, boot diagnostics,
// delete.
func (a *Azure) installVMs() {
	srv := &a.compute.VirtualMachinesServer
	st := a.machines
	vmID := func(group, name string) string {
		return ResourceID(group, "Microsoft.Compute", "virtualMachines", name)
	}
	// find returns the VM's state, advanced to now, holding st.mu; the
	// caller unlocks.
	find := func(group, name string) (*vmState, error) {
		st.mu.Lock()
		v := a.vm(vmID(group, name))
		if v == nil {
			return nil, a.missing(group, vmType, name)
		}
		v.advance(time.Now())
		return v, nil
	}

	srv.BeginCreateOrUpdate = func(_ context.Context, group, name string, vm armcompute.VirtualMachine, _ *armcompute.VirtualMachinesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.VirtualMachinesClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		if err := a.groupMissing(group); err != nil {
			errResp.SetError(err)
			return
		}
		id := vmID(group, name)
		st.mu.Lock()
		defer st.mu.Unlock()
		if a.vm(id) != nil {
			errResp.SetError(notModelled("updating the existing VM %s by PUT", id))
			return
		}
		vm, size, err := a.createVM(group, name, vm)
		if err != nil {
			errResp.SetError(err)
			return
		}
		g, ok := st.guests[strings.ToLower(name)]
		if ir := vm.Properties.StorageProfile.ImageReference; !ok && ir != nil && ir.ID != nil {
			g, ok = st.imageGuests[strings.ToLower(*ir.ID)]
		}
		if !ok {
			g = a.DefaultGuest
		}
		v := &vmState{id: id, name: name, region: *vm.Location, uid: *vm.Properties.VMID, size: size, guest: g}
		if dp := vm.Properties.DiagnosticsProfile; dp != nil && dp.BootDiagnostics != nil && dp.BootDiagnostics.Enabled != nil {
			v.diagnostics = *dp.BootDiagnostics.Enabled
		}
		for _, n := range vm.Properties.NetworkProfile.NetworkInterfaces {
			v.nics = append(v.nics, *n.ID)
			a.AttachNIC(*n.ID, id) // network.go
		}
		disks, _ := disksOf(vm)
		for _, d := range disks {
			a.attachDisk(d, id)
		}
		now := time.Now()
		v.logf(now, "VM %s allocated (%s)", name, size.Name)
		if g.FailProvisioning {
			v.failed, v.power = true, "stopped"
			vm.Properties.ProvisioningState = to.Ptr("Failed")
		} else {
			v.start(now)
		}
		st.vms[strings.ToLower(id)] = v
		a.put(id, clone(vm))
		resp.AddNonTerminalResponse(http.StatusCreated, nil)
		if v.failed {
			// A failed asynchronous operation: the final poll answers 200
			// with the operation's error.
			resp.AddPollingError(armError(http.StatusOK, "VMStartTimedOut", "VM '%s' did not start in the allotted time. The VM may still start successfully. Please check the power state later.", name))
			return
		}
		resp.SetTerminalResponse(http.StatusOK, armcompute.VirtualMachinesClientCreateOrUpdateResponse{VirtualMachine: clone(vm)}, nil)
		return
	}

	srv.Get = func(_ context.Context, group, name string, o *armcompute.VirtualMachinesClientGetOptions) (resp azfake.Responder[armcompute.VirtualMachinesClientGetResponse], errResp azfake.ErrorResponder) {
		v, err := find(group, name)
		defer st.mu.Unlock()
		if err != nil {
			errResp.SetError(err)
			return
		}
		vm, _ := lookup[armcompute.VirtualMachine](a, v.id)
		if o != nil && o.Expand != nil && *o.Expand == armcompute.InstanceViewTypesInstanceView {
			vm.Properties.InstanceView = instanceView(v)
		}
		resp.SetResponse(http.StatusOK, armcompute.VirtualMachinesClientGetResponse{VirtualMachine: vm}, nil)
		return
	}

	srv.InstanceView = func(_ context.Context, group, name string, _ *armcompute.VirtualMachinesClientInstanceViewOptions) (resp azfake.Responder[armcompute.VirtualMachinesClientInstanceViewResponse], errResp azfake.ErrorResponder) {
		v, err := find(group, name)
		defer st.mu.Unlock()
		if err != nil {
			errResp.SetError(err)
			return
		}
		resp.SetResponse(http.StatusOK, armcompute.VirtualMachinesClientInstanceViewResponse{VirtualMachineInstanceView: *instanceView(v)}, nil)
		return
	}

	srv.BeginUpdate = func(_ context.Context, group, name string, u armcompute.VirtualMachineUpdate, _ *armcompute.VirtualMachinesClientBeginUpdateOptions) (resp azfake.PollerResponder[armcompute.VirtualMachinesClientUpdateResponse], errResp azfake.ErrorResponder) {
		v, err := find(group, name)
		defer st.mu.Unlock()
		if err != nil {
			errResp.SetError(err)
			return
		}
		if u.Properties != nil || u.Identity != nil || u.Plan != nil || u.Zones != nil {
			errResp.SetError(notModelled("updating VM properties other than tags"))
			return
		}
		vm, _ := lookup[armcompute.VirtualMachine](a, v.id)
		if u.Tags != nil {
			vm.Tags = u.Tags
		}
		a.put(v.id, clone(vm))
		resp.AddNonTerminalResponse(http.StatusOK, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.VirtualMachinesClientUpdateResponse{VirtualMachine: vm}, nil)
		return
	}

	srv.BeginStart = func(_ context.Context, group, name string, _ *armcompute.VirtualMachinesClientBeginStartOptions) (resp azfake.PollerResponder[armcompute.VirtualMachinesClientStartResponse], errResp azfake.ErrorResponder) {
		v, err := find(group, name)
		defer st.mu.Unlock()
		if err != nil {
			errResp.SetError(err)
			return
		}
		if v.generalized {
			errResp.SetError(armError(http.StatusConflict, "OperationNotAllowed", "Operation 'start' is not allowed on VM '%s' since the VM is generalized.", name))
			return
		}
		if v.power == "deallocated" {
			if err := a.quotaError(v.region, v.size); err != nil {
				errResp.SetError(err)
				return
			}
		}
		if v.power != "running" {
			v.start(time.Now())
		}
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.VirtualMachinesClientStartResponse{}, nil)
		return
	}

	// A restart is a new boot of the running guest: its script's next
	// boot (Guest.Boots) begins. Like Azure, it needs a running VM.
	srv.BeginRestart = func(_ context.Context, group, name string, _ *armcompute.VirtualMachinesClientBeginRestartOptions) (resp azfake.PollerResponder[armcompute.VirtualMachinesClientRestartResponse], errResp azfake.ErrorResponder) {
		v, err := find(group, name)
		defer st.mu.Unlock()
		if err != nil {
			errResp.SetError(err)
			return
		}
		if v.generalized {
			errResp.SetError(armError(http.StatusConflict, "OperationNotAllowed", "Operation 'restart' is not allowed on VM '%s' since the VM is generalized.", name))
			return
		}
		if v.power != "running" {
			errResp.SetError(armError(http.StatusConflict, "OperationNotAllowed", "Operation 'restart' is not allowed on VM '%s' since the VM is %s.", name, v.power))
			return
		}
		now := time.Now()
		v.logf(now, "boot %d: the guest restarts", v.boots)
		v.start(now)
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.VirtualMachinesClientRestartResponse{}, nil)
		return
	}

	srv.BeginDeallocate = func(_ context.Context, group, name string, _ *armcompute.VirtualMachinesClientBeginDeallocateOptions) (resp azfake.PollerResponder[armcompute.VirtualMachinesClientDeallocateResponse], errResp azfake.ErrorResponder) {
		v, err := find(group, name)
		defer st.mu.Unlock()
		if err != nil {
			errResp.SetError(err)
			return
		}
		if v.power != "deallocated" {
			v.power = "deallocated"
			v.logf(time.Now(), "VM %s deallocated", name)
		}
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.VirtualMachinesClientDeallocateResponse{}, nil)
		return
	}

	srv.Generalize = func(_ context.Context, group, name string, _ *armcompute.VirtualMachinesClientGeneralizeOptions) (resp azfake.Responder[armcompute.VirtualMachinesClientGeneralizeResponse], errResp azfake.ErrorResponder) {
		v, err := find(group, name)
		defer st.mu.Unlock()
		if err != nil {
			errResp.SetError(err)
			return
		}
		if v.power != "deallocated" {
			errResp.SetError(armError(http.StatusConflict, "OperationNotAllowed", "Operation 'generalize' is not allowed on VM '%s' since the VM is %s. Deallocate the VM first.", name, v.power))
			return
		}
		v.generalized = true
		resp.SetResponse(http.StatusOK, armcompute.VirtualMachinesClientGeneralizeResponse{}, nil)
		return
	}

	srv.BeginRunCommand = func(ctx context.Context, group, name string, in armcompute.RunCommandInput, _ *armcompute.VirtualMachinesClientBeginRunCommandOptions) (resp azfake.PollerResponder[armcompute.VirtualMachinesClientRunCommandResponse], errResp azfake.ErrorResponder) {
		v, err := find(group, name)
		if err != nil {
			st.mu.Unlock()
			errResp.SetError(err)
			return
		}
		power, commands, took := v.power, v.guest.Commands, v.guest.CommandTime
		st.mu.Unlock()
		if in.CommandID == nil || *in.CommandID != "RunPowerShellScript" {
			errResp.SetError(notModelled("Run Command %q (only RunPowerShellScript is)", deref(in.CommandID)))
			return
		}
		if power != "running" {
			errResp.SetError(armError(http.StatusConflict, "OperationNotAllowed", "The operation requires the VM to be running (or set to run). VM '%s' is %s.", name, power))
			return
		}
		var lines []string
		for _, l := range in.Script {
			lines = append(lines, deref(l))
		}
		if err := sleep(ctx, took); err != nil {
			errResp.SetError(err)
			return
		}
		var stdout, stderr string
		if commands != nil {
			out, err := commands(strings.Join(lines, "\n"))
			stdout = out
			if err != nil {
				stderr = err.Error()
			}
		}
		status := func(code, msg string) *armcompute.InstanceViewStatus {
			return &armcompute.InstanceViewStatus{Code: to.Ptr(code), Level: to.Ptr(armcompute.StatusLevelTypesInfo), DisplayStatus: to.Ptr("Provisioning succeeded"), Message: to.Ptr(msg)}
		}
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.VirtualMachinesClientRunCommandResponse{RunCommandResult: armcompute.RunCommandResult{
			Value: []*armcompute.InstanceViewStatus{status("ComponentStatus/StdOut/succeeded", stdout), status("ComponentStatus/StdErr/succeeded", stderr)},
		}}, nil)
		return
	}

	srv.RetrieveBootDiagnosticsData = func(_ context.Context, group, name string, _ *armcompute.VirtualMachinesClientRetrieveBootDiagnosticsDataOptions) (resp azfake.Responder[armcompute.VirtualMachinesClientRetrieveBootDiagnosticsDataResponse], errResp azfake.ErrorResponder) {
		v, err := find(group, name)
		defer st.mu.Unlock()
		if err != nil {
			errResp.SetError(err)
			return
		}
		if !v.diagnostics {
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "Boot diagnostics is not enabled for VM '%s'.", name))
			return
		}
		base := a.diagURL()
		sas := "?sv=2021-12-02&sr=b&sp=r&se=" + time.Now().Add(2*time.Hour).UTC().Format("2006-01-02T15:04:05Z") + "&sig=" + st.sig
		blob := base + "/bootdiagnostics-" + v.uid + "/" + name + "." + v.uid
		resp.SetResponse(http.StatusOK, armcompute.VirtualMachinesClientRetrieveBootDiagnosticsDataResponse{RetrieveBootDiagnosticsDataResult: armcompute.RetrieveBootDiagnosticsDataResult{
			ConsoleScreenshotBlobURI: to.Ptr(blob + ".screenshot.bmp" + sas),
			SerialConsoleLogBlobURI:  to.Ptr(blob + ".serialconsole.log" + sas),
		}}, nil)
		return
	}

	srv.BeginDelete = func(_ context.Context, group, name string, _ *armcompute.VirtualMachinesClientBeginDeleteOptions) (resp azfake.PollerResponder[armcompute.VirtualMachinesClientDeleteResponse], errResp azfake.ErrorResponder) {
		if err := a.groupMissing(group); err != nil {
			errResp.SetError(err)
			return
		}
		id := vmID(group, name)
		st.mu.Lock()
		defer st.mu.Unlock()
		v := a.vm(id)
		if v == nil {
			resp.SetTerminalResponse(http.StatusNoContent, armcompute.VirtualMachinesClientDeleteResponse{}, nil)
			return
		}
		vm, _ := lookup[armcompute.VirtualMachine](a, id)
		all, deleted := disksOf(vm)
		for _, d := range all {
			if slices.Contains(deleted, d) {
				a.del(d)
			} else {
				a.attachDisk(d, "")
			}
		}
		for _, n := range v.nics {
			a.DetachNIC(n)
		}
		a.del(id)
		delete(st.vms, strings.ToLower(id))
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.VirtualMachinesClientDeleteResponse{}, nil)
		return
	}
}

// diagURL returns the base URL of the boot diagnostics server, starting
// it on first use. The caller holds s.mu.
func (a *Azure) diagURL() string {
	s := a.machines
	if s.diag == nil {
		s.diag = httptest.NewServer(http.HandlerFunc(a.serveDiagnostics))
	}
	return s.diag.URL
}

var diagBlob = regexp.MustCompile(`^/bootdiagnostics-([0-9a-f-]+)/[^/]+\.([0-9a-f-]+)\.(screenshot\.bmp|serialconsole\.log)$`)

// serveDiagnostics serves a VM's boot diagnostics blobs, as a storage
// account would behind a read SAS: the serial log of every boot so far,
// and a screenshot that shows the current boot and power state.
func (a *Azure) serveDiagnostics(w http.ResponseWriter, r *http.Request) {
	s := a.machines
	if r.URL.Query().Get("sig") != s.sig || r.URL.Query().Get("sp") != "r" {
		w.Header().Set("x-ms-error-code", "AuthenticationFailed")
		http.Error(w, "<Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message></Error>", http.StatusForbidden)
		return
	}
	m := diagBlob.FindStringSubmatch(r.URL.Path)
	s.mu.Lock()
	var v *vmState
	for id := range s.vms {
		if x := a.vm(id); m != nil && x != nil && x.uid == m[1] && m[1] == m[2] {
			v = x
		}
	}
	if v == nil {
		s.mu.Unlock()
		w.Header().Set("x-ms-error-code", "BlobNotFound")
		http.Error(w, "<Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.</Message></Error>", http.StatusNotFound)
		return
	}
	v.advance(time.Now())
	var body []byte
	var ctype string
	if m[3] == "serialconsole.log" {
		body, ctype = []byte(strings.Join(v.log, "\r\n")+"\r\n"), "text/plain"
	} else {
		body, ctype = screenshot(v.boots, v.power), "image/png"
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// screenshot is a small image whose colour tells the boot and the power
// state.
func screenshot(boot int, power string) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 16, 12))
	c := color.RGBA{R: uint8(boot * 40), A: 255}
	switch power {
	case "running":
		c.G = 200
	case "stopped":
		c.B = 200
	}
	for y := 0; y < 12; y++ {
		for x := 0; x < 16; x++ {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}

// installImages models managed images captured from generalized VMs.
func (a *Azure) installImages() {
	srv := &a.compute.ImagesServer
	st := a.machines
	imageID := func(group, name string) string { return ResourceID(group, "Microsoft.Compute", "images", name) }
	srv.BeginCreateOrUpdate = func(_ context.Context, group, name string, img armcompute.Image, _ *armcompute.ImagesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.ImagesClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		if err := a.groupMissing(group); err != nil {
			errResp.SetError(err)
			return
		}
		if img.Location == nil || *img.Location == "" {
			errResp.SetError(armError(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition."))
			return
		}
		p := img.Properties
		if p == nil || p.SourceVirtualMachine == nil || p.SourceVirtualMachine.ID == nil {
			errResp.SetError(notModelled("an image from anything but a source VM"))
			return
		}
		src := *p.SourceVirtualMachine.ID
		st.mu.Lock()
		defer st.mu.Unlock()
		v := a.vm(src)
		if v == nil {
			errResp.SetError(armError(http.StatusNotFound, "NotFound", "Source virtual machine %s not found.", src))
			return
		}
		if v.region != normRegion(*img.Location) {
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "The source virtual machine is in location '%s', not in the image's location '%s'.", v.region, *img.Location))
			return
		}
		if !v.generalized {
			errResp.SetError(armError(http.StatusConflict, "OperationNotAllowed", "The source virtual machine %s must be generalized to create an image from it.", src))
			return
		}
		vm, _ := lookup[armcompute.VirtualMachine](a, src)
		sp := vm.Properties.StorageProfile
		osDisk, _ := lookup[armcompute.Disk](a, *sp.OSDisk.ManagedDisk.ID)
		var size *int32
		if osDisk.Properties != nil {
			size = osDisk.Properties.DiskSizeGB
		}
		p.StorageProfile = &armcompute.ImageStorageProfile{OSDisk: &armcompute.ImageOSDisk{
			OSType: to.Ptr(armcompute.OperatingSystemTypesWindows), OSState: to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
			ManagedDisk: &armcompute.SubResource{ID: sp.OSDisk.ManagedDisk.ID}, DiskSizeGB: size, Caching: to.Ptr(armcompute.CachingTypesReadWrite),
		}}
		for _, dd := range sp.DataDisks {
			p.StorageProfile.DataDisks = append(p.StorageProfile.DataDisks, &armcompute.ImageDataDisk{Lun: dd.Lun, ManagedDisk: &armcompute.SubResource{ID: dd.ManagedDisk.ID}})
		}
		if p.HyperVGeneration == nil {
			p.HyperVGeneration = to.Ptr(armcompute.HyperVGenerationTypesV1)
		}
		id := imageID(group, name)
		img.ID, img.Name, img.Type, img.Location = to.Ptr(id), to.Ptr(name), to.Ptr(imageType), to.Ptr(normRegion(*img.Location))
		p.ProvisioningState = to.Ptr("Succeeded")
		a.put(id, clone(img))
		resp.AddNonTerminalResponse(http.StatusCreated, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.ImagesClientCreateOrUpdateResponse{Image: clone(img)}, nil)
		return
	}
	srv.Get = func(_ context.Context, group, name string, _ *armcompute.ImagesClientGetOptions) (resp azfake.Responder[armcompute.ImagesClientGetResponse], errResp azfake.ErrorResponder) {
		img, ok := lookup[armcompute.Image](a, imageID(group, name))
		if !ok {
			errResp.SetError(a.missing(group, imageType, name))
			return
		}
		resp.SetResponse(http.StatusOK, armcompute.ImagesClientGetResponse{Image: img}, nil)
		return
	}
	srv.BeginUpdate = func(_ context.Context, group, name string, u armcompute.ImageUpdate, _ *armcompute.ImagesClientBeginUpdateOptions) (resp azfake.PollerResponder[armcompute.ImagesClientUpdateResponse], errResp azfake.ErrorResponder) {
		id := imageID(group, name)
		img, ok := lookup[armcompute.Image](a, id)
		if !ok {
			errResp.SetError(a.missing(group, imageType, name))
			return
		}
		if u.Properties != nil {
			errResp.SetError(notModelled("updating image properties"))
			return
		}
		if u.Tags != nil {
			img.Tags = u.Tags
		}
		a.put(id, clone(img))
		resp.AddNonTerminalResponse(http.StatusOK, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.ImagesClientUpdateResponse{Image: img}, nil)
		return
	}
	srv.BeginDelete = func(_ context.Context, group, name string, _ *armcompute.ImagesClientBeginDeleteOptions) (resp azfake.PollerResponder[armcompute.ImagesClientDeleteResponse], errResp azfake.ErrorResponder) {
		if err := a.groupMissing(group); err != nil {
			errResp.SetError(err)
			return
		}
		if !a.del(imageID(group, name)) {
			resp.SetTerminalResponse(http.StatusNoContent, armcompute.ImagesClientDeleteResponse{}, nil)
			return
		}
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.ImagesClientDeleteResponse{}, nil)
		return
	}
}

var versionName = regexp.MustCompile(`^\d{1,9}\.\d{1,9}\.\d{1,9}$`)

// installVersions models Compute Gallery image versions of managed
// images, replicated to their target regions.
func (a *Azure) installVersions() {
	srv := &a.compute.GalleryImageVersionsServer
	definitionID := func(group, gallery, image string) string {
		return ResourceID(group, "Microsoft.Compute", "galleries", gallery) + "/images/" + image
	}
	srv.BeginCreateOrUpdate = func(_ context.Context, group, gallery, image, version string, v armcompute.GalleryImageVersion, _ *armcompute.GalleryImageVersionsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.GalleryImageVersionsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		bad := func(format string, args ...any) {
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", format, args...))
		}
		if err := a.groupMissing(group); err != nil {
			errResp.SetError(err)
			return
		}
		def, ok := lookup[armcompute.GalleryImage](a, definitionID(group, gallery, image))
		if !ok {
			errResp.SetError(armError(http.StatusNotFound, "ParentResourceNotFound", "Can not perform requested operation on nested resource. Parent resource '%s/%s' not found.", gallery, image))
			return
		}
		if !versionName.MatchString(version) {
			bad("The gallery image version name '%s' is invalid: it must be Major.Minor.Patch, each a 32-bit integer.", version)
			return
		}
		if v.Location == nil || *v.Location == "" {
			errResp.SetError(armError(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition."))
			return
		}
		region := normRegion(*v.Location)
		if region != normRegion(*def.Location) {
			bad("The gallery image version must be in the gallery's location '%s', not '%s'.", *def.Location, region)
			return
		}
		p := v.Properties
		if p == nil || p.StorageProfile == nil || p.StorageProfile.Source == nil || p.StorageProfile.Source.ID == nil {
			bad("Required parameter 'storageProfile.source.id' is missing (null).")
			return
		}
		src := *p.StorageProfile.Source.ID
		img, ok := lookup[armcompute.Image](a, src)
		if !ok {
			if _, other := a.get(src); other {
				errResp.SetError(notModelled("a gallery image version from %s", src))
				return
			}
			errResp.SetError(armError(http.StatusNotFound, "NotFound", "Source image %s not found.", src))
			return
		}
		if normRegion(*img.Location) != region {
			bad("The source image %s is in location '%s', not in the image version's location '%s'.", src, *img.Location, region)
			return
		}
		var targets []*armcompute.TargetRegion
		if p.PublishingProfile != nil {
			targets = p.PublishingProfile.TargetRegions
		}
		if len(targets) == 0 {
			targets = []*armcompute.TargetRegion{{Name: to.Ptr(region), RegionalReplicaCount: to.Ptr[int32](1)}}
		}
		var summary []*armcompute.RegionalReplicationStatus
		seen := map[string]bool{}
		for _, t := range targets {
			if t.Name == nil || *t.Name == "" {
				bad("Required parameter 'targetRegions.name' is missing (null).")
				return
			}
			if seen[normRegion(*t.Name)] {
				bad("Target region '%s' is given more than once.", *t.Name)
				return
			}
			seen[normRegion(*t.Name)] = true
			summary = append(summary, &armcompute.RegionalReplicationStatus{
				Region: t.Name, State: to.Ptr(armcompute.ReplicationStateCompleted), Progress: to.Ptr[int32](100), Details: to.Ptr(""),
			})
		}
		if !seen[region] {
			bad("The target regions of the gallery image version must include its location '%s'.", region)
			return
		}
		id := definitionID(group, gallery, image) + "/versions/" + version
		if p.PublishingProfile == nil {
			p.PublishingProfile = &armcompute.GalleryImageVersionPublishingProfile{}
		}
		p.PublishingProfile.TargetRegions = targets
		p.PublishingProfile.PublishedDate = to.Ptr(time.Now().UTC())
		var size *int32
		if img.Properties != nil && img.Properties.StorageProfile != nil && img.Properties.StorageProfile.OSDisk != nil {
			size = img.Properties.StorageProfile.OSDisk.DiskSizeGB
		}
		p.StorageProfile.OSDiskImage = &armcompute.GalleryOSDiskImage{SizeInGB: size, HostCaching: to.Ptr(armcompute.HostCachingReadWrite)}
		p.ProvisioningState = to.Ptr(armcompute.GalleryProvisioningStateSucceeded)
		p.ReplicationStatus = &armcompute.ReplicationStatus{AggregatedState: to.Ptr(armcompute.AggregatedReplicationStateCompleted), Summary: summary}
		v.ID, v.Name, v.Type, v.Location = to.Ptr(id), to.Ptr(version), to.Ptr(versionType), to.Ptr(region)
		a.put(id, clone(v))
		// Replication takes a while per region.
		for range targets {
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		}
		v.Properties.ReplicationStatus = nil // answered only on request ($expand)
		resp.SetTerminalResponse(http.StatusOK, armcompute.GalleryImageVersionsClientCreateOrUpdateResponse{GalleryImageVersion: clone(v)}, nil)
		return
	}
	srv.Get = func(_ context.Context, group, gallery, image, version string, o *armcompute.GalleryImageVersionsClientGetOptions) (resp azfake.Responder[armcompute.GalleryImageVersionsClientGetResponse], errResp azfake.ErrorResponder) {
		v, ok := lookup[armcompute.GalleryImageVersion](a, definitionID(group, gallery, image)+"/versions/"+version)
		if !ok {
			errResp.SetError(a.missing(group, versionType, gallery+"/"+image+"/"+version))
			return
		}
		if o == nil || o.Expand == nil || *o.Expand != armcompute.ReplicationStatusTypesReplicationStatus {
			v.Properties.ReplicationStatus = nil
		}
		resp.SetResponse(http.StatusOK, armcompute.GalleryImageVersionsClientGetResponse{GalleryImageVersion: v}, nil)
		return
	}
	srv.BeginUpdate = func(_ context.Context, group, gallery, image, version string, u armcompute.GalleryImageVersionUpdate, _ *armcompute.GalleryImageVersionsClientBeginUpdateOptions) (resp azfake.PollerResponder[armcompute.GalleryImageVersionsClientUpdateResponse], errResp azfake.ErrorResponder) {
		id := definitionID(group, gallery, image) + "/versions/" + version
		v, ok := lookup[armcompute.GalleryImageVersion](a, id)
		if !ok {
			errResp.SetError(a.missing(group, versionType, gallery+"/"+image+"/"+version))
			return
		}
		if u.Properties != nil {
			errResp.SetError(notModelled("updating gallery image version properties"))
			return
		}
		if u.Tags != nil {
			v.Tags = u.Tags
		}
		a.put(id, clone(v))
		v.Properties.ReplicationStatus = nil
		resp.AddNonTerminalResponse(http.StatusOK, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.GalleryImageVersionsClientUpdateResponse{GalleryImageVersion: v}, nil)
		return
	}
	srv.BeginDelete = func(_ context.Context, group, gallery, image, version string, _ *armcompute.GalleryImageVersionsClientBeginDeleteOptions) (resp azfake.PollerResponder[armcompute.GalleryImageVersionsClientDeleteResponse], errResp azfake.ErrorResponder) {
		if err := a.groupMissing(group); err != nil {
			errResp.SetError(err)
			return
		}
		if !a.del(definitionID(group, gallery, image) + "/versions/" + version) {
			resp.SetTerminalResponse(http.StatusNoContent, armcompute.GalleryImageVersionsClientDeleteResponse{}, nil)
			return
		}
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.GalleryImageVersionsClientDeleteResponse{}, nil)
		return
	}
}
