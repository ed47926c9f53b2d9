package actions_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
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
