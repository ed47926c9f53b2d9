package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/cib-project/cib/internal/machineimage"
	"github.com/cib-project/cib/internal/secret"
)

// adminUser is the administrator of a VM made from a marketplace image
// (Azure refuses "admin" and "administrator").
const adminUser = "cibadmin"

// maxDiagnostics bounds what Diagnostics downloads of each blob.
const maxDiagnostics = 64 << 20

// SizeOffered reports whether VM size is offered in region to this
// subscription: listed among the region's resource SKUs, and not
// restricted there.
func (m *Machines) SizeOffered(ctx context.Context, region, size string) (bool, error) {
	sku, err := m.vmSKU(ctx, region, size)
	if err != nil {
		return false, classify(fmt.Errorf("azure: size %s in %s: %w", size, region, err))
	}
	return sku != nil && !restricted(sku, region), nil
}

// VCPUs returns the vCPUs of size and how many of its family's quota in
// region are free (the region's total quota bounds it too).
func (m *Machines) VCPUs(ctx context.Context, region, size string) (need, free int, err error) {
	sku, err := m.vmSKU(ctx, region, size)
	if err == nil && sku == nil {
		err = fmt.Errorf("size %s is not offered in %s", size, region)
	}
	if err != nil {
		return 0, 0, classify(fmt.Errorf("azure: vCPUs of %s in %s: %w", size, region, err))
	}
	for _, c := range sku.Capabilities {
		if c != nil && c.Name != nil && *c.Name == "vCPUs" && c.Value != nil {
			need, err = strconv.Atoi(*c.Value)
		}
	}
	if err != nil || need == 0 {
		return 0, 0, fmt.Errorf("azure: vCPUs of %s in %s: no vCPUs capability in its SKU", size, region)
	}
	family := valueOf(sku.Family)
	free, found := -1, false
	pager := m.usage.NewListPager(region, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, 0, classify(fmt.Errorf("azure: vCPU quota in %s: %w", region, err))
		}
		for _, u := range page.Value {
			if u == nil || u.Name == nil || u.CurrentValue == nil || u.Limit == nil {
				continue
			}
			name := valueOf(u.Name.Value)
			if !strings.EqualFold(name, family) && !strings.EqualFold(name, "cores") {
				continue
			}
			left := max(int(*u.Limit)-int(*u.CurrentValue), 0)
			if strings.EqualFold(name, family) {
				found = true
			}
			if free < 0 || left < free {
				free = left
			}
		}
	}
	if !found {
		free = 0 // no quota for the family at all
	}
	return need, free, nil
}

// vmSKU returns the resource SKU of VM size in region, or nil when the
// region does not list it. The list is read to its end even when the size
// comes early: a pager left half-read is a pager the SDK's fake server
// (and so the tests) would answer the next list from.
func (m *Machines) vmSKU(ctx context.Context, region, size string) (*armcompute.ResourceSKU, error) {
	filter := "location eq '" + region + "'"
	pager := m.skus.NewListPager(&armcompute.ResourceSKUsClientListOptions{Filter: &filter})
	var found *armcompute.ResourceSKU
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range page.Value {
			if found != nil || s == nil || !strings.EqualFold(valueOf(s.ResourceType), "virtualMachines") || !strings.EqualFold(valueOf(s.Name), size) {
				continue
			}
			for _, l := range s.Locations {
				if strings.EqualFold(valueOf(l), region) {
					found = s
				}
			}
		}
	}
	return found, nil
}

// restricted reports whether sku may not be used in region by this
// subscription. Zone restrictions leave the region usable.
func restricted(sku *armcompute.ResourceSKU, region string) bool {
	for _, r := range sku.Restrictions {
		if r == nil || valueOf(r.Type) != armcompute.ResourceSKURestrictionsTypeLocation {
			continue
		}
		locations := r.Values
		if r.RestrictionInfo != nil {
			locations = append(locations, r.RestrictionInfo.Locations...)
		}
		for _, l := range locations {
			if strings.EqualFold(valueOf(l), region) {
				return true
			}
		}
	}
	return false
}

// ImageID returns the ID of the managed image name in group, or "" when
// there is none (a missing group has none).
func (m *Machines) ImageID(ctx context.Context, group, name string) (string, error) {
	res, err := m.images.Get(ctx, group, name, nil)
	switch {
	case err == nil && res.ID != nil:
		return *res.ID, nil
	case err == nil:
		return "", fmt.Errorf("azure: get image %s/%s: no ID in the response", group, name)
	case notFound(err):
		return "", nil
	}
	return "", classify(fmt.Errorf("azure: get image %s/%s: %w", group, name, err))
}

// CreateDisk creates a managed disk: a Windows OS disk imported from
// d.SourceBlob, or an empty data disk of d.SizeGiB.
func (m *Machines) CreateDisk(ctx context.Context, d machineimage.Disk) (string, error) {
	disk := armcompute.Disk{
		Location: to.Ptr(d.Region), Tags: azureTags(d.Tags),
		SKU:        &armcompute.DiskSKU{Name: to.Ptr(armcompute.DiskStorageAccountTypes(d.SKU))},
		Properties: &armcompute.DiskProperties{},
	}
	if d.SKU == "" {
		disk.SKU = nil
	}
	if d.SizeGiB > 0 {
		disk.Properties.DiskSizeGB = to.Ptr(int32(d.SizeGiB))
	}
	if d.SourceBlob != "" {
		disk.Properties.CreationData = &armcompute.CreationData{
			CreateOption: to.Ptr(armcompute.DiskCreateOptionImport),
			SourceURI:    to.Ptr(d.SourceBlob), StorageAccountID: to.Ptr(d.StorageAccountID),
		}
		disk.Properties.OSType = to.Ptr(armcompute.OperatingSystemTypesWindows)
		if d.HyperVGeneration != "" {
			disk.Properties.HyperVGeneration = to.Ptr(armcompute.HyperVGeneration(d.HyperVGeneration))
		}
	} else {
		disk.Properties.CreationData = &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionEmpty)}
	}
	id := m.resourceID(d.Group, "Microsoft.Compute/disks", d.Name)
	p, err := m.disks.BeginCreateOrUpdate(ctx, d.Group, d.Name, disk, nil)
	var res armcompute.DisksClientCreateOrUpdateResponse
	if err == nil {
		res, err = p.PollUntilDone(ctx, m.poll())
	}
	if err == nil && res.ID == nil {
		err = errors.New("no ID in the response")
	}
	if err != nil {
		return mayExist(id, p != nil, err), classify(fmt.Errorf("azure: create disk %s/%s: %w", d.Group, d.Name, err))
	}
	return *res.ID, nil
}

// CreateVM creates a VM and waits until Azure has started it: with the OS
// disk vm.OSDiskID attached (nothing to provision), or from the
// marketplace image vm.Source or the managed image or gallery image
// version vm.ImageID, with an administrator password. Boot diagnostics are
// on, in managed storage. The OS disk of a VM made from an image is
// deleted with the VM, as the run never learns its ID (from vm.ImageID it
// is named <vm.Name>-osdisk, so that a caller can delete it all the same).
func (m *Machines) CreateVM(ctx context.Context, vm machineimage.VM) (string, error) {
	where := vm.Group + "/" + vm.Name
	sp := &armcompute.StorageProfile{}
	var os *armcompute.OSProfile
	sources := 0
	for _, set := range []bool{vm.OSDiskID != "", vm.Source != nil, vm.ImageID != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources > 1:
		return "", fmt.Errorf("azure: create VM %s: more than one of an OS disk, a marketplace image and an image ID", where)
	case vm.OSDiskID != "":
		sp.OSDisk = &armcompute.OSDisk{
			CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesAttach), OSType: to.Ptr(armcompute.OperatingSystemTypesWindows),
			ManagedDisk: &armcompute.ManagedDiskParameters{ID: to.Ptr(vm.OSDiskID)},
		}
	case vm.Source != nil:
		if vm.AdminPass == "" {
			return "", fmt.Errorf("azure: create VM %s: a marketplace image needs an administrator password", where)
		}
		version := vm.Source.Version
		if version == "" {
			version = "latest"
		}
		sp.ImageReference = &armcompute.ImageReference{
			Publisher: to.Ptr(vm.Source.Publisher), Offer: to.Ptr(vm.Source.Offer), SKU: to.Ptr(vm.Source.SKU), Version: to.Ptr(version),
		}
		sp.OSDisk = &armcompute.OSDisk{
			CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesFromImage), OSType: to.Ptr(armcompute.OperatingSystemTypesWindows),
			DeleteOption: to.Ptr(armcompute.DiskDeleteOptionTypesDelete),
		}
		if vm.OSDiskSKU != "" {
			sp.OSDisk.ManagedDisk = &armcompute.ManagedDiskParameters{StorageAccountType: to.Ptr(armcompute.StorageAccountTypes(vm.OSDiskSKU))}
		}
		os = &armcompute.OSProfile{ComputerName: to.Ptr(vm.Name), AdminUsername: to.Ptr(adminUser), AdminPassword: to.Ptr(vm.AdminPass)}
	case vm.ImageID != "":
		if vm.AdminPass == "" {
			return "", fmt.Errorf("azure: create VM %s: an image needs an administrator password", where)
		}
		sp.ImageReference = &armcompute.ImageReference{ID: to.Ptr(vm.ImageID)}
		sp.OSDisk = &armcompute.OSDisk{
			Name:         to.Ptr(vm.Name + "-osdisk"),
			CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesFromImage), OSType: to.Ptr(armcompute.OperatingSystemTypesWindows),
			DeleteOption: to.Ptr(armcompute.DiskDeleteOptionTypesDelete),
		}
		if vm.OSDiskSKU != "" {
			sp.OSDisk.ManagedDisk = &armcompute.ManagedDiskParameters{StorageAccountType: to.Ptr(armcompute.StorageAccountTypes(vm.OSDiskSKU))}
		}
		os = &armcompute.OSProfile{ComputerName: to.Ptr(vm.Name), AdminUsername: to.Ptr(adminUser), AdminPassword: to.Ptr(vm.AdminPass)}
	default:
		return "", fmt.Errorf("azure: create VM %s: no OS disk, marketplace image or image ID", where)
	}
	for i, id := range vm.DataDiskIDs {
		sp.DataDisks = append(sp.DataDisks, &armcompute.DataDisk{
			Lun: to.Ptr(int32(i)), CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesAttach),
			ManagedDisk: &armcompute.ManagedDiskParameters{ID: to.Ptr(id)},
		})
	}
	id := m.resourceID(vm.Group, "Microsoft.Compute/virtualMachines", vm.Name)
	p, err := m.vms.BeginCreateOrUpdate(ctx, vm.Group, vm.Name, armcompute.VirtualMachine{
		Location: to.Ptr(vm.Region), Tags: azureTags(vm.Tags),
		Properties: &armcompute.VirtualMachineProperties{
			HardwareProfile: &armcompute.HardwareProfile{VMSize: to.Ptr(armcompute.VirtualMachineSizeTypes(vm.Size))},
			StorageProfile:  sp,
			OSProfile:       os,
			NetworkProfile: &armcompute.NetworkProfile{NetworkInterfaces: []*armcompute.NetworkInterfaceReference{{
				ID: to.Ptr(vm.NICID), Properties: &armcompute.NetworkInterfaceReferenceProperties{Primary: to.Ptr(true)},
			}}},
			DiagnosticsProfile: &armcompute.DiagnosticsProfile{BootDiagnostics: &armcompute.BootDiagnostics{Enabled: to.Ptr(true)}},
		},
	}, nil)
	var res armcompute.VirtualMachinesClientCreateOrUpdateResponse
	if err == nil {
		res, err = p.PollUntilDone(ctx, m.poll())
	}
	if err == nil && res.ID == nil {
		err = errors.New("no ID in the response")
	}
	if err != nil {
		return mayExist(id, p != nil, err), classify(fmt.Errorf("azure: create VM %s: %w", where, secret.Redact(err, vm.AdminPass)))
	}
	return *res.ID, nil
}

// vmRef parses a VM's ID.
func vmRef(id string) (*arm.ResourceID, error) {
	r, err := arm.ParseResourceID(id)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(r.ResourceType.String(), "Microsoft.Compute/virtualMachines") {
		return nil, fmt.Errorf("%s is not a VM", id)
	}
	return r, nil
}

// PowerState is the VM's power state as its instance view shows it
// (PowerState/<state>); Unknown when it shows none.
func (m *Machines) PowerState(ctx context.Context, vmID string) (machineimage.PowerState, error) {
	r, err := vmRef(vmID)
	if err != nil {
		return machineimage.Unknown, fmt.Errorf("azure: power state of %s: %w", vmID, err)
	}
	iv, err := m.vms.InstanceView(ctx, r.ResourceGroupName, r.Name, nil)
	if err != nil {
		return machineimage.Unknown, classify(fmt.Errorf("azure: power state of VM %s/%s: %w", r.ResourceGroupName, r.Name, err))
	}
	for _, s := range iv.Statuses {
		if c := valueOf(s.Code); strings.HasPrefix(c, "PowerState/") {
			return machineimage.PowerState(strings.TrimPrefix(c, "PowerState/")), nil
		}
	}
	return machineimage.Unknown, nil
}

// StartVM starts a stopped or deallocated VM and waits until it runs.
func (m *Machines) StartVM(ctx context.Context, vmID string) error {
	r, err := vmRef(vmID)
	if err != nil {
		return fmt.Errorf("azure: start %s: %w", vmID, err)
	}
	p, err := m.vms.BeginStart(ctx, r.ResourceGroupName, r.Name, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, m.poll())
	}
	if err != nil {
		return classify(fmt.Errorf("azure: start VM %s/%s: %w", r.ResourceGroupName, r.Name, err))
	}
	return nil
}

// RestartVM restarts a running VM and waits until Azure has restarted it:
// the guest boots again.
func (m *Machines) RestartVM(ctx context.Context, vmID string) error {
	r, err := vmRef(vmID)
	if err != nil {
		return fmt.Errorf("azure: restart %s: %w", vmID, err)
	}
	p, err := m.vms.BeginRestart(ctx, r.ResourceGroupName, r.Name, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, m.poll())
	}
	if err != nil {
		return classify(fmt.Errorf("azure: restart VM %s/%s: %w", r.ResourceGroupName, r.Name, err))
	}
	return nil
}

// RunCommand runs a PowerShell script in the running guest (Run Command,
// RunPowerShellScript) and returns what it wrote.
func (m *Machines) RunCommand(ctx context.Context, vmID, script string) (machineimage.RunResult, error) {
	r, err := vmRef(vmID)
	if err != nil {
		return machineimage.RunResult{}, fmt.Errorf("azure: run command on %s: %w", vmID, err)
	}
	p, err := m.vms.BeginRunCommand(ctx, r.ResourceGroupName, r.Name, armcompute.RunCommandInput{
		CommandID: to.Ptr("RunPowerShellScript"),
		Script:    to.SliceOfPtrs(strings.Split(script, "\n")...),
	}, nil)
	var res armcompute.VirtualMachinesClientRunCommandResponse
	if err == nil {
		res, err = p.PollUntilDone(ctx, m.poll())
	}
	if err != nil {
		return machineimage.RunResult{}, classify(fmt.Errorf("azure: run command on VM %s/%s: %w", r.ResourceGroupName, r.Name, err))
	}
	var out machineimage.RunResult
	for _, s := range res.Value {
		switch c := valueOf(s.Code); {
		case strings.Contains(c, "/StdOut/"):
			out.Stdout += valueOf(s.Message)
		case strings.Contains(c, "/StdErr/"):
			out.Stderr += valueOf(s.Message)
		}
	}
	return out, nil
}

// Diagnostics downloads the VM's boot diagnostics: the console screenshot
// and the serial log, from the short-lived SAS URLs Azure gives. The
// URLs' queries (the SAS) never appear in an error.
func (m *Machines) Diagnostics(ctx context.Context, vmID string) (machineimage.Diagnostics, error) {
	r, err := vmRef(vmID)
	if err != nil {
		return machineimage.Diagnostics{}, fmt.Errorf("azure: boot diagnostics of %s: %w", vmID, err)
	}
	where := r.ResourceGroupName + "/" + r.Name
	res, err := m.vms.RetrieveBootDiagnosticsData(ctx, r.ResourceGroupName, r.Name, &armcompute.VirtualMachinesClientRetrieveBootDiagnosticsDataOptions{
		SasURIExpirationTimeInMinutes: to.Ptr[int32](10),
	})
	if err != nil {
		return machineimage.Diagnostics{}, classify(fmt.Errorf("azure: boot diagnostics of VM %s: %w", where, err))
	}
	var d machineimage.Diagnostics
	if d.Screenshot, err = m.download(ctx, valueOf(res.ConsoleScreenshotBlobURI)); err != nil {
		return machineimage.Diagnostics{}, fmt.Errorf("azure: boot diagnostics of VM %s: screenshot: %w", where, err)
	}
	if d.Serial, err = m.download(ctx, valueOf(res.SerialConsoleLogBlobURI)); err != nil {
		return machineimage.Diagnostics{}, fmt.Errorf("azure: boot diagnostics of VM %s: serial log: %w", where, err)
	}
	return d, nil
}

// download GETs a blob through its SAS URL. Errors name the URL without
// its query; throttling and server failures are retryable.
func (m *Machines) download(ctx context.Context, sasURL string) ([]byte, error) {
	if sasURL == "" {
		return nil, errors.New("no URL")
	}
	u, err := url.Parse(sasURL)
	if err != nil {
		return nil, errors.New("malformed URL")
	}
	bare := u.Scheme + "://" + u.Host + u.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sasURL, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", bare, errors.Unwrap(err))
	}
	client := m.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message would carry the SAS
		}
		return nil, &machineimage.Retryable{Err: fmt.Errorf("GET %s: %w", bare, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("GET %s: %s", bare, resp.Status)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			err = &machineimage.Retryable{Err: err}
		}
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDiagnostics))
	if err != nil {
		return nil, &machineimage.Retryable{Err: fmt.Errorf("GET %s: %w", bare, err)}
	}
	return b, nil
}

// Deallocate stops the VM, releases its host, and waits for it.
func (m *Machines) Deallocate(ctx context.Context, vmID string) error {
	r, err := vmRef(vmID)
	if err != nil {
		return fmt.Errorf("azure: deallocate %s: %w", vmID, err)
	}
	p, err := m.vms.BeginDeallocate(ctx, r.ResourceGroupName, r.Name, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, m.poll())
	}
	if err != nil {
		return classify(fmt.Errorf("azure: deallocate VM %s/%s: %w", r.ResourceGroupName, r.Name, err))
	}
	return nil
}

// Generalize marks a deallocated VM generalized, so that an image can be
// captured from it.
func (m *Machines) Generalize(ctx context.Context, vmID string) error {
	r, err := vmRef(vmID)
	if err != nil {
		return fmt.Errorf("azure: generalize %s: %w", vmID, err)
	}
	if _, err := m.vms.Generalize(ctx, r.ResourceGroupName, r.Name, nil); err != nil {
		return classify(fmt.Errorf("azure: generalize VM %s/%s: %w", r.ResourceGroupName, r.Name, err))
	}
	return nil
}

// CreateImage captures a managed image of a generalized VM.
func (m *Machines) CreateImage(ctx context.Context, img machineimage.Image) (string, error) {
	props := &armcompute.ImageProperties{SourceVirtualMachine: &armcompute.SubResource{ID: to.Ptr(img.SourceVMID)}}
	if img.HyperVGeneration != "" {
		props.HyperVGeneration = to.Ptr(armcompute.HyperVGenerationTypes(img.HyperVGeneration))
	}
	id := m.resourceID(img.Group, "Microsoft.Compute/images", img.Name)
	p, err := m.images.BeginCreateOrUpdate(ctx, img.Group, img.Name, armcompute.Image{
		Location: to.Ptr(img.Region), Tags: azureTags(img.Tags), Properties: props,
	}, nil)
	var res armcompute.ImagesClientCreateOrUpdateResponse
	if err == nil {
		res, err = p.PollUntilDone(ctx, m.poll())
	}
	if err == nil && res.ID == nil {
		err = errors.New("no ID in the response")
	}
	if err != nil {
		return mayExist(id, p != nil, err), classify(fmt.Errorf("azure: create image %s/%s: %w", img.Group, img.Name, err))
	}
	return *res.ID, nil
}

// CreateImageVersion creates a Compute Gallery image version of a managed
// image and waits until it is replicated to v.Regions (v.Region always
// among them).
func (m *Machines) CreateImageVersion(ctx context.Context, v machineimage.ImageVersion) (string, error) {
	where := v.Group + "/" + v.Gallery + "/" + v.Definition + "/" + v.Name
	regions := []string{v.Region}
	for _, r := range v.Regions {
		if !containsFold(regions, r) {
			regions = append(regions, r)
		}
	}
	var targets []*armcompute.TargetRegion
	for _, r := range regions {
		targets = append(targets, &armcompute.TargetRegion{Name: to.Ptr(r), RegionalReplicaCount: to.Ptr[int32](1)})
	}
	id := m.resourceID(v.Group, "Microsoft.Compute/galleries", v.Gallery) + "/images/" + v.Definition + "/versions/" + v.Name
	p, err := m.versions.BeginCreateOrUpdate(ctx, v.Group, v.Gallery, v.Definition, v.Name, armcompute.GalleryImageVersion{
		Location: to.Ptr(v.Region), Tags: azureTags(v.Tags),
		Properties: &armcompute.GalleryImageVersionProperties{
			StorageProfile:    &armcompute.GalleryImageVersionStorageProfile{Source: &armcompute.GalleryArtifactVersionFullSource{ID: to.Ptr(v.SourceImageID)}},
			PublishingProfile: &armcompute.GalleryImageVersionPublishingProfile{TargetRegions: targets},
		},
	}, nil)
	var res armcompute.GalleryImageVersionsClientCreateOrUpdateResponse
	if err == nil {
		res, err = p.PollUntilDone(ctx, m.poll())
	}
	if err == nil && res.ID == nil {
		err = errors.New("no ID in the response")
	}
	if err != nil {
		return mayExist(id, p != nil, err), classify(fmt.Errorf("azure: create image version %s: %w", where, err))
	}
	return *res.ID, nil
}

// containsFold reports whether list holds s, ignoring case.
func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Tag sets tags on a resource, keeping its others: Azure's updates
// replace a resource's tags whole, so the current ones are read first.
// Nothing is written when the resource has them already.
func (m *Machines) Tag(ctx context.Context, id string, tags map[string]string) error {
	r, err := arm.ParseResourceID(id)
	if err != nil {
		return fmt.Errorf("azure: tag %s: %w", id, err)
	}
	if strings.EqualFold(r.ResourceType.Namespace, "Microsoft.Network") {
		return m.tagNetwork(ctx, r, tags)
	}
	g := r.ResourceGroupName
	var what string
	var current map[string]*string
	var update func(map[string]*string) error
	switch strings.ToLower(r.ResourceType.String()) {
	case "microsoft.compute/virtualmachines":
		what = "VM " + g + "/" + r.Name
		res, err := m.vms.Get(ctx, g, r.Name, nil)
		if err != nil {
			return classify(fmt.Errorf("azure: tag %s: %w", what, err))
		}
		current = res.Tags
		update = func(t map[string]*string) error {
			p, err := m.vms.BeginUpdate(ctx, g, r.Name, armcompute.VirtualMachineUpdate{Tags: t}, nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, m.poll())
			}
			return err
		}
	case "microsoft.compute/disks":
		what = "disk " + g + "/" + r.Name
		res, err := m.disks.Get(ctx, g, r.Name, nil)
		if err != nil {
			return classify(fmt.Errorf("azure: tag %s: %w", what, err))
		}
		current = res.Tags
		update = func(t map[string]*string) error {
			p, err := m.disks.BeginUpdate(ctx, g, r.Name, armcompute.DiskUpdate{Tags: t}, nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, m.poll())
			}
			return err
		}
	case "microsoft.compute/images":
		what = "image " + g + "/" + r.Name
		res, err := m.images.Get(ctx, g, r.Name, nil)
		if err != nil {
			return classify(fmt.Errorf("azure: tag %s: %w", what, err))
		}
		current = res.Tags
		update = func(t map[string]*string) error {
			p, err := m.images.BeginUpdate(ctx, g, r.Name, armcompute.ImageUpdate{Tags: t}, nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, m.poll())
			}
			return err
		}
	case "microsoft.compute/galleries/images/versions":
		gallery, image := r.Parent.Parent.Name, r.Parent.Name
		what = "image version " + g + "/" + gallery + "/" + image + "/" + r.Name
		res, err := m.versions.Get(ctx, g, gallery, image, r.Name, nil)
		if err != nil {
			return classify(fmt.Errorf("azure: tag %s: %w", what, err))
		}
		current = res.Tags
		update = func(t map[string]*string) error {
			p, err := m.versions.BeginUpdate(ctx, g, gallery, image, r.Name, armcompute.GalleryImageVersionUpdate{Tags: t}, nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, m.poll())
			}
			return err
		}
	default:
		return fmt.Errorf("azure: tag %s: cib does not tag %s resources", id, r.ResourceType)
	}
	merged := maps.Clone(current)
	if merged == nil {
		merged = map[string]*string{}
	}
	changed := false
	for k, v := range tags {
		if old, ok := merged[k]; !ok || old == nil || *old != v {
			merged[k] = to.Ptr(v)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := update(merged); err != nil {
		return classify(fmt.Errorf("azure: tag %s: %w", what, err))
	}
	return nil
}

// deleteCompute deletes a compute resource and waits for it.
func (m *Machines) deleteCompute(ctx context.Context, r *arm.ResourceID) error {
	switch strings.ToLower(r.ResourceType.String()) {
	case "microsoft.compute/virtualmachines":
		p, err := m.vms.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		return pollDone(ctx, m, p, err)
	case "microsoft.compute/disks":
		p, err := m.disks.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		return pollDone(ctx, m, p, err)
	case "microsoft.compute/images":
		p, err := m.images.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		return pollDone(ctx, m, p, err)
	case "microsoft.compute/galleries/images/versions":
		gallery, image := r.Parent.Parent.Name, r.Parent.Name
		p, err := m.versions.BeginDelete(ctx, r.ResourceGroupName, gallery, image, r.Name, nil)
		return pollDone(ctx, m, p, err)
	}
	return fmt.Errorf("cib does not delete %s resources", r.ResourceType)
}

// resourceID is the ID of resource name of type ("Microsoft.Compute/disks")
// in group of this subscription.
func (m *Machines) resourceID(group, typ, name string) string {
	return "/subscriptions/" + m.subscription + "/resourceGroups/" + group + "/providers/" + typ + "/" + name
}

// mayExist returns the ID of a resource whose creation failed with err
// when the resource may exist all the same, so that the caller can undo
// it; else "". It may exist when Azure accepted the request (begun: the
// operation failed or was abandoned while polling) or when its answer
// does not say it refused it (a server error, a broken connection, a
// cancelled request); a 4xx answer to the request is a refusal.
func mayExist(id string, begun bool, err error) string {
	if begun {
		return id
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 {
		return ""
	}
	return id
}

// valueOf is *p, or the zero value of a nil p.
func valueOf[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
