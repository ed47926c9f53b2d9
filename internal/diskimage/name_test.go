package diskimage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/diskimage"
)

func TestBlobNameFollowsTheSeedsRule(t *testing.T) {
	cfg, err := config.Load("../../config")
	require.NoError(t, err)
	built := time.Date(2026, 11, 27, 23, 30, 0, 0, time.FixedZone("PST", -8*3600))
	cases := map[string]string{
		"win10-64":     "vhd/2026-11-28/0123456-azure-windows10-professional-en-us-x86-64-fixed.vhd",
		"win10-64-gpu": "vhd/2026-11-28/0123456-azure-windows10-professional-en-us-x86-64-gpu-fixed.vhd",
		"win7-32":      "vhd/2026-11-28/0123456-azure-windows7-professional-en-us-x86-fixed.vhd",
		"win2012":      "vhd/2026-11-28/0123456-azure-windowsserver2012r2-datacenter-en-us-x86-64-fixed.vhd",
	}
	for key, want := range cases {
		k := cfg.Key(key)
		got, err := diskimage.BlobName(k.Image, "azure", "0123456789abcdef", built)
		require.NoError(t, err)
		assert.Equal(t, want, got, key)
		// the target's OS disk names the same image as its source
		assert.True(t, strings.HasPrefix(diskimage.ImageSlug(k.Image), k.Targets[0].Disk[0].Source), "%s: %s", key, k.Targets[0].Disk[0].Source)
	}
	_, err = diskimage.BlobName(cfg.Key("win7-32").Image, "azure", "abc", built)
	assert.ErrorContains(t, err, "shorter than 7")
}
