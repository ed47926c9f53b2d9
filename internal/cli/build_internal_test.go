package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
)

func TestChooseBuilder(t *testing.T) {
	plain := &config.Key{Name: "win10-64", Image: &config.Image{}}
	forced := &config.Key{Name: "win2019", Image: &config.Image{Builder: "dism"}}
	for _, tc := range []struct {
		flag string
		key  *config.Key
		goos string
		want string
	}{
		{"auto", plain, "linux", "wimlib"},
		{"auto", plain, "windows", "dism"},
		{"auto", forced, "windows", "dism"},
		{"wimlib", plain, "linux", "wimlib"},
		{"dism", plain, "windows", "dism"},
	} {
		got, err := chooseBuilder(tc.flag, tc.key, tc.goos)
		require.NoError(t, err, "%+v", tc)
		assert.Equal(t, tc.want, got, "%+v", tc)
	}
	for _, tc := range []struct {
		flag string
		key  *config.Key
		goos string
		want string
	}{
		{"auto", forced, "linux", "key win2019's image.builder: dism: the dism builder needs a Windows runner"},
		{"dism", plain, "linux", "--builder dism: the dism builder needs a Windows runner"},
		{"wimlib", plain, "windows", "--builder wimlib: the wimlib builder needs a Linux runner"},
		{"auto", plain, "windows", ""},
	} {
		_, err := chooseBuilder(tc.flag, tc.key, tc.goos)
		if tc.want == "" {
			assert.NoError(t, err)
			continue
		}
		assert.ErrorContains(t, err, tc.want)
	}
}

func TestBlobURLDropsTheSAS(t *testing.T) {
	assert.Equal(t, "https://cibimages.blob.core.windows.net/images/vhd/2025-01-01/abc-fixed.vhd",
		blobURL("https://cibimages.blob.core.windows.net/images?sv=2024&sig=secret", "vhd/2025-01-01/abc-fixed.vhd"))
	assert.Equal(t, "http://127.0.0.1:10000/devstoreaccount1/images/a.vhd",
		blobURL("http://127.0.0.1:10000/devstoreaccount1/images/", "a.vhd"))
}
