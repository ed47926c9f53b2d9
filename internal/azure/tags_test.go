package azure_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
)

func TestTagsReadsWhatTagWrote(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	spec := r.vm(t, "vm-tags")
	spec.Tags = map[string]string{"cib:managed": "true", "workerType": "gecko-t"}
	vmID, err := r.m.CreateVM(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, r.m.Deallocate(ctx, vmID))
	require.NoError(t, r.m.Generalize(ctx, vmID))
	imgID, err := r.m.CreateImage(ctx, machineimage.Image{Resource: res("img-tags"), SourceVMID: vmID, HyperVGeneration: "V2"})
	require.NoError(t, err)
	r.a.AddGalleryImage(cgroup, "gal_cib", "win11-64", cregion, "V2")
	verID, err := r.m.CreateImageVersion(ctx, machineimage.ImageVersion{
		Resource: res("2026.1127.1"), Gallery: "gal_cib", Definition: "win11-64",
		SourceImageID: imgID, Regions: []string{cregion},
	})
	require.NoError(t, err)

	for _, id := range []string{imgID, verID} {
		got, err := r.m.Tags(ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, map[string]string{"cib:managed": "true"}, got, id)
		require.NoError(t, r.m.Tag(ctx, id, map[string]string{"imageKey": "win11-64", "os": "Windows 11"}))
		got, err = r.m.Tags(ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, map[string]string{"cib:managed": "true", "imageKey": "win11-64", "os": "Windows 11"}, got, id)
	}

	// The other kinds of resource a run makes.
	got, err := r.m.Tags(ctx, vmID)
	require.NoError(t, err)
	assert.Equal(t, "gecko-t", got["workerType"])
	for _, id := range []string{spec.OSDiskID, spec.NICID} {
		got, err := r.m.Tags(ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, "true", got["cib:managed"], id)
	}

	// Reading tags writes nothing.
	calls := len(r.a.Calls())
	_, err = r.m.Tags(ctx, imgID)
	require.NoError(t, err)
	for _, c := range r.a.Calls()[calls:] {
		assert.Equal(t, "GET", c.Method, "a read made a write: %+v", c)
	}
}

func TestTagsOfWhatIsNotThere(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	for _, id := range []string{
		azuretest.ResourceID(cgroup, "Microsoft.Compute", "images", "img-gone"),
		azuretest.ResourceID("rg-no-such-group", "Microsoft.Compute", "images", "img-gone"),
		azuretest.ResourceID(cgroup, "Microsoft.Compute", "galleries", "gal_none") + "/images/win11-64/versions/1.2.3",
	} {
		_, err := r.m.Tags(ctx, id)
		require.Error(t, err, id)
		assert.True(t, errors.Is(err, azure.ErrResourceNotFound), "%s: %v", id, err)
		assert.False(t, machineimage.IsRetryable(err), id)
	}
	_, err := r.m.Tags(ctx, "/subscriptions/"+azuretest.Subscription+"/resourceGroups/"+cgroup+"/providers/Microsoft.Storage/storageAccounts/x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cib does not tag")
	assert.False(t, errors.Is(err, azure.ErrResourceNotFound))
	_, err = r.m.Tags(ctx, "not an ID")
	assert.Error(t, err)
}
