package actions_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"

	"gopkg.in/yaml.v3"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
	"github.com/cib-project/cib/internal/verify"
)

// The actions that touch Azure run here against the in-memory Azure,
// served over HTTPS to the cib the action builds (azuretest.Server): cib
// logs in exactly as in a job with `id-token: write` (the runner's ID
// token, exchanged at an Entra ID authority), through the environment
// variables of a non-public cloud (AZURE_RESOURCE_MANAGER_ENDPOINT,
// AZURE_AUTHORITY_HOST).

// standInAzure is an in-memory Azure, its server, and the Machines the
// test arranges resources with (in-process, no login).
type standIn struct {
	a   *azuretest.Azure
	srv *azuretest.Server
	m   *azure.Machines
}

func newStandIn(t *testing.T) *standIn {
	t.Helper()
	a := azuretest.New()
	t.Cleanup(a.Close)
	srv, err := a.Serve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	m, err := azure.StandIn(azuretest.Subscription, a.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	m.PollFrequency = time.Millisecond
	return &standIn{a: a, srv: srv, m: m}
}

// run runs actions/<action> for a push of ws.sha with this Azure's
// environment.
func (s *standIn) run(t *testing.T, root, action string, ws workspace, message string, inputs map[string]string) *actionRun {
	t.Helper()
	return runEventAction(t, root, action, ws, "push", map[string]any{
		"ref": "refs/heads/main", "after": ws.sha,
		"head_commit": map[string]any{"id": ws.sha, "message": message},
	}, inputs, s.srv.Env()...)
}

// checkFederated asserts that cib logged in by federation and that no
// Resource Manager request went without the token.
func (s *standIn) checkFederated(t *testing.T) {
	t.Helper()
	if got := s.srv.Audiences(); len(got) == 0 || slices.ContainsFunc(got, func(a string) bool { return a != azure.FederationAudience }) {
		t.Errorf("ID tokens were asked for audiences %v; want %s", got, azure.FederationAudience)
	}
	if n := s.srv.Refused(); n != 0 {
		t.Errorf("%d Resource Manager requests carried no access token", n)
	}
}

// TestPurgeActionAgainstAzure runs actions/purge as the pipeline's closing
// cleanup job runs it (this-run): it deletes the VM and NIC this run left,
// young and unexpired as they are, keeps another run's and what is not
// cib's, and its outputs and summary say so.
func TestPurgeActionAgainstAzure(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	const group, region = "rg-central-us-gecko-t", "centralus"
	az := newStandIn(t)
	az.a.OfferSizes(region, azuretest.StandardSizes...)
	ctx := context.Background()
	res := func(name string, tags map[string]string) machineimage.Resource {
		return machineimage.Resource{Group: group, Region: region, Name: name, Tags: tags}
	}
	// runEventAction's run: GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID.
	left := map[string]string{machineimage.TagManaged: "true", machineimage.TagRun: "https://github.com/cib-project/cib/actions/runs/4242",
		machineimage.TagExpires: time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)}
	other := map[string]string{machineimage.TagManaged: "true", machineimage.TagRun: "https://github.com/cib-project/cib/actions/runs/4243",
		machineimage.TagExpires: time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)}
	subnet, err := az.m.EnsureNetwork(ctx, machineimage.Network{Group: group, Region: region, NSG: "nsg", VNet: "vn",
		Prefix: "10.9.0.0/16", Subnet: "sn", SubnetPrefix: "10.9.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	nic, err := az.m.CreateNIC(ctx, res("nic-left", left), subnet, "")
	if err != nil {
		t.Fatal(err)
	}
	vm, err := az.m.CreateVM(ctx, machineimage.VM{Resource: res("vm-left", left), Size: "Standard_DS2_v2", NICID: nic,
		Source:    &machineimage.Marketplace{Publisher: "MicrosoftWindowsServer", Offer: "WindowsServer", SKU: "2022-datacenter", Version: "latest"},
		AdminPass: "Adm1n-Passw0rd-For-Test", OSDiskSKU: "StandardSSD_LRS"})
	if err != nil {
		t.Fatal(err)
	}
	if err := az.m.Deallocate(ctx, vm); err != nil {
		t.Fatal(err)
	}
	kept, err := az.m.CreateNIC(ctx, res("nic-someone-elses", nil), subnet, "")
	if err != nil {
		t.Fatal(err)
	}
	running, err := az.m.CreatePublicIP(ctx, res("pip-of-a-running-run", other))
	if err != nil {
		t.Fatal(err)
	}
	before := az.a.IDs()

	msg := "purge\n"
	ws := newWorkspace(t, root, msg, "")
	run := az.run(t, root, "purge", ws, msg, map[string]string{"environment": "staging", "groups": group, "this-run": "true"})
	if run.failed {
		t.Fatalf("the action failed:\n%s", run.steps[len(run.steps)-1].log)
	}
	az.checkFederated(t)
	gone := []string{}
	for _, id := range before {
		if !slices.Contains(az.a.IDs(), id) {
			gone = append(gone, id)
		}
	}
	for _, id := range []string{vm, nic} {
		if !slices.ContainsFunc(gone, func(g string) bool { return strings.EqualFold(g, id) }) {
			t.Errorf("%s was not deleted; gone: %v", id, gone)
		}
	}
	// The VM's OS disk goes with it (its delete option is Delete).
	if len(gone) != 3 || slices.Contains(gone, kept) || slices.Contains(gone, running) {
		t.Errorf("deleted %v; want the VM of this run (with its OS disk) and its NIC only", gone)
	}
	if want := map[string]string{"deleted": "2", "failed": "0", "kept": "3", "planned": "0"}; !maps.Equal(run.outputs, want) {
		t.Errorf("outputs %v; want %v", run.outputs, want)
	}
	if !strings.Contains(run.summary, "vm-left") {
		t.Errorf("the step summary does not list the VM:\n%s", run.summary)
	}
	for _, s := range run.steps {
		if strings.Contains(s.log, "Adm1n-Passw0rd") {
			t.Errorf("step %q shows the VM's password", s.title)
		}
	}
}

// TestVerifyActionAgainstAzure runs actions/verify as a runner would for
// a pool with two recorded images, one of which does not boot: the
// healthy one is reported healthy, the other unhealthy with its serial
// log, the action fails, and nothing it started is left behind.
func TestVerifyActionAgainstAzure(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	az := newStandIn(t)
	ctx := context.Background()
	// gecko-t/win7-32-azure's images: win7-32's in each of its target groups.
	targets := azureTargets(t, root, "win7-32")
	if len(targets) < 2 || targets["rg-east-us-2-gecko-t"] != "eastus2" {
		t.Fatalf("win7-32's targets %v: the test needs rg-east-us-2-gecko-t among several", targets)
	}
	images := map[string]string{}
	groups, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, az.a.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	for group, region := range targets {
		az.a.OfferSizes(region, azuretest.StandardSizes...)
		if _, err := groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(region)}, nil); err != nil {
			t.Fatal(err)
		}
		id, err := az.a.Put(armcompute.Image{
			ID: to.Ptr(azuretest.ResourceID(group, "Microsoft.Compute", "images", "win7-32-"+region)), Name: to.Ptr("win7-32-" + region),
			Type: to.Ptr("Microsoft.Compute/images"), Location: to.Ptr(region),
			Properties: &armcompute.ImageProperties{StorageProfile: &armcompute.ImageStorageProfile{OSDisk: &armcompute.ImageOSDisk{
				OSType: to.Ptr(armcompute.OperatingSystemTypesWindows), OSState: to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
				DiskSizeGB: to.Ptr[int32](64),
			}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		images[group] = id
	}
	az.a.DefaultGuest = azuretest.Guest{Commands: func(script string) (string, error) { return verify.Answer + "\r\n", nil }}
	az.a.SetImageGuest(images["rg-east-us-2-gecko-t"], azuretest.Guest{FailProvisioning: true})

	msg := "verify\n"
	ws := newWorkspace(t, root, msg, recordsBranch(t, root))
	for group, id := range images {
		recordMachineImage(t, root, ws, "win7-32", group, id)
	}
	before := az.a.IDs()
	run := az.run(t, root, "verify", ws, msg, map[string]string{"environment": "staging", "pool": "gecko-t/win7-32-azure",
		"size": "Standard_DS2_v2", "timeout": "2m"})
	step := run.step(t, "verify (id: verify)", func(s actionStep) bool { return s.ID == "verify" })
	az.checkFederated(t)
	if !run.failed || step.exitCode != 1 {
		t.Errorf("failed %t, exit %d; want the action failed with exit 1 for the unhealthy image", run.failed, step.exitCode)
	}
	for _, want := range []string{
		"healthy " + images["rg-central-us-gecko-t"] + " (centralus)",
		"unhealthy " + images["rg-east-us-2-gecko-t"] + " (eastus2)",
		"VMStartTimedOut",
	} {
		if !strings.Contains(step.log, want) {
			t.Errorf("the verify step's log does not say %q:\n%s", want, step.log)
		}
	}
	if want := map[string]string{"images": fmt.Sprint(len(targets)), "healthy": fmt.Sprint(len(targets) - 1), "unhealthy": "1"}; !maps.Equal(run.outputs, want) {
		t.Errorf("outputs %v; want %v", run.outputs, want)
	}
	// Each VM's password is masked, and shown nowhere else.
	masked := 0
	for _, line := range strings.Split(step.log, "\n") {
		if pw, ok := strings.CutPrefix(line, "::add-mask::"); ok && !strings.HasPrefix(pw, "github-oidc-") {
			masked++
			if n := strings.Count(step.log, pw); n != 1 {
				t.Errorf("a masked password shows %d times in the log", n)
			}
		}
	}
	if masked != len(targets) {
		t.Errorf("%d passwords masked; want one per VM (%d)", masked, len(targets))
	}
	for _, id := range az.a.IDs() {
		if !slices.Contains(before, id) && !strings.Contains(id, "/Microsoft.Network/networkSecurityGroups/") &&
			!strings.Contains(id, "/Microsoft.Network/virtualNetworks/") {
			t.Errorf("verify left %s behind (only the shared network may stay)", id)
		}
	}
}

// azureTargets are a key's Azure target groups and their regions.
func azureTargets(t *testing.T, root, key string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "config", key+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Target []struct{ Platform, Group, Region string } `yaml:"target"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tg := range k.Target {
		if tg.Platform == "azure" {
			// "East US 2" → eastus2, as Azure normalizes a location.
			out[tg.Group] = strings.ToLower(strings.ReplaceAll(tg.Region, " ", ""))
		}
	}
	return out
}

// recordMachineImage records a machine image of key in group on the
// workspace's records branch, with the cib the actions built, as a
// machine-image job would.
func recordMachineImage(t *testing.T, root string, ws workspace, key, group, id string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(runnerTemp, "cib")); err != nil {
		build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(runnerTemp, "cib"), "./cmd/cib")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	name := id[strings.LastIndex(id, "/")+1:]
	cib := exec.Command(filepath.Join(runnerTemp, "cib"), "record", "machine-image", "--environment", "staging", "--key", key,
		"--group", group, "--image-name", name, "--image-location", id)
	cib.Dir = ws.dir
	cib.Env = runnerEnv("GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
	if out, err := cib.CombinedOutput(); err != nil {
		t.Fatalf("cib record machine-image: %v\n%s", err, out)
	}
}

// TestPrepareActionAgainstAzure runs actions/prepare twice, as two
// pipeline runs would, for the groups and keys of a prepare matrix entry:
// the first creates the infrastructure, the second changes nothing and
// says so.
func TestPrepareActionAgainstAzure(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	az := newStandIn(t)
	msg := "prepare\n"
	ws := newWorkspace(t, root, msg, "")
	inputs := map[string]string{"environment": "staging", "keys": "win10-64", "groups": "rg-central-us-gecko-t,rg-east-us-gecko-t", "gallery": "cib_images"}

	run := az.run(t, root, "prepare", ws, msg, inputs)
	if run.failed {
		t.Fatalf("the first run failed:\n%s", run.steps[len(run.steps)-1].log)
	}
	az.checkFederated(t)
	if run.outputs["changed"] != "true" || run.outputs["created"] == "0" || run.outputs["unchanged"] != "0" {
		t.Errorf("first run outputs %v; want everything created", run.outputs)
	}
	for _, id := range []string{
		azuretest.GroupID("rg-central-us-gecko-t"),
		azuretest.GalleryID("rg-east-us-gecko-t", "cib_images"),
		azuretest.ImageDefinitionID("rg-east-us-gecko-t", "cib_images", "win10-64"),
	} {
		if !slices.ContainsFunc(az.a.IDs(), func(have string) bool { return strings.EqualFold(have, id) }) {
			t.Errorf("%s was not created", id)
		}
	}
	created := run.outputs["created"]

	before := len(az.a.Calls())
	run = az.run(t, root, "prepare", ws, msg, inputs)
	if run.failed {
		t.Fatalf("the second run failed:\n%s", run.steps[len(run.steps)-1].log)
	}
	if run.outputs["changed"] != "false" || run.outputs["unchanged"] != created || run.outputs["created"] != "0" || run.outputs["updated"] != "0" {
		t.Errorf("second run outputs %v; want all %s unchanged", run.outputs, created)
	}
	step := run.step(t, "prepare (id: prepare)", func(s actionStep) bool { return s.ID == "prepare" })
	if !strings.Contains(step.log, "everything already matches the configuration; nothing changed") {
		t.Errorf("the second run does not say that nothing changed:\n%s", step.log)
	}
	for _, c := range az.a.Calls()[before:] {
		if c.Method != "GET" {
			t.Errorf("the second run wrote: %s %s", c.Method, c.Path)
		}
	}
}

// TestTagActionAgainstAzure runs actions/tag for a recorded machine image
// whose tags someone removed: the action puts the tags of the record's
// commit back, says what changed, and a second run changes nothing.
func TestTagActionAgainstAzure(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	az := newStandIn(t)
	const group, region, name = "rg-central-us-gecko-t", "centralus", "win7-32-centralus-abc1234"
	groups, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, az.a.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(context.Background(), group, armresources.ResourceGroup{Location: to.Ptr(region)}, nil); err != nil {
		t.Fatal(err)
	}
	id, err := az.a.Put(armcompute.Image{
		ID: to.Ptr(azuretest.ResourceID(group, "Microsoft.Compute", "images", name)), Name: to.Ptr(name),
		Type: to.Ptr("Microsoft.Compute/images"), Location: to.Ptr(region),
		Tags: map[string]*string{"owner": to.Ptr("someone")},
	})
	if err != nil {
		t.Fatal(err)
	}
	msg := "tag\n"
	ws := newWorkspace(t, root, msg, recordsBranch(t, root))
	recordMachineImage(t, root, ws, "win7-32", group, id)

	inputs := map[string]string{"environment": "staging", "keys": "win7-32", "groups": group}
	run := az.run(t, root, "tag", ws, msg, inputs)
	if run.failed {
		t.Fatalf("the action failed:\n%s", run.step(t, "tag (id: tag)", func(s actionStep) bool { return s.ID == "tag" }).log)
	}
	az.checkFederated(t)
	if run.outputs["changed"] != "1" || run.outputs["failed"] != "0" || run.outputs["exit"] != "0" {
		t.Errorf("outputs %v; want the image changed", run.outputs)
	}
	c, err := armcompute.NewImagesClient(azuretest.Subscription, &fake.TokenCredential{}, az.a.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	img, err := c.Get(context.Background(), group, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Tags["imageKey"] == nil || *img.Tags["imageKey"] != "win7-32" || img.Tags["owner"] == nil {
		t.Errorf("tags after the action: %v; want imageKey win7-32 set and owner kept", img.Tags)
	}

	run = az.run(t, root, "tag", ws, msg, inputs)
	if run.failed || run.outputs["changed"] != "0" || run.outputs["unchanged"] != "1" {
		t.Errorf("second run: failed %t, outputs %v; want nothing changed", run.failed, run.outputs)
	}
}
