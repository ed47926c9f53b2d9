package diskimage

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dismWimInfo is `dism /English /Get-WimInfo` of a two-image WIM, in the
// layout Microsoft documents (Deployment Image Servicing and Management
// Command-Line Options: Get-WimInfo).
const dismWimInfo = "\r\nDeployment Image Servicing and Management tool\r\nVersion: 10.0.20348.681\r\n\r\n" +
	"Details for image : D:\\a\\_temp\\install.wim\r\n\r\n" +
	"Index : 1\r\nName : Windows Server 2019 SERVERSTANDARDCORE\r\nDescription : Windows Server 2019 Standard: core\r\nSize : 8,045,951,502 bytes\r\n\r\n" +
	"Index : 2\r\nName : Windows 10 Pro\r\nDescription : Windows 10 Pro\r\nSize : 15,305,539,033 bytes\r\n\r\n" +
	"The operation completed successfully.\r\n"

func TestParseDismWimInfo(t *testing.T) {
	images, err := parseDismWimInfo(dismWimInfo)
	require.NoError(t, err)
	assert.Equal(t, []WIMImage{
		{Index: 1, Name: "Windows Server 2019 SERVERSTANDARDCORE", Description: "Windows Server 2019 Standard: core", TotalBytes: 8045951502},
		{Index: 2, Name: "Windows 10 Pro", Description: "Windows 10 Pro", TotalBytes: 15305539033},
	}, images)
	im, err := ChooseImage(images, 0, "Pro")
	require.NoError(t, err)
	assert.Equal(t, 2, im.Index)

	_, err = parseDismWimInfo("Index : one\r\n")
	assert.ErrorContains(t, err, `unexpected image index "one"`)
	_, err = parseDismWimInfo("Index : 1\r\nSize : lots\r\n")
	assert.ErrorContains(t, err, `image 1: unexpected size "lots"`)
}

// Tools.Dism lists the images through dism's own output, as on a Windows
// runner without wimlib-imagex; a failing dism says so with its output.
func TestImagesThroughDism(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	require.NoError(t, os.WriteFile(out, []byte(dismWimInfo), 0o644))
	dism := filepath.Join(dir, "dism")
	require.NoError(t, os.WriteFile(dism, []byte("#!/bin/sh\n"+
		"[ \"$1 $2\" = \"/English /Get-WimInfo\" ] && [ \"$3\" = \"/WimFile:"+dir+"/install.wim\" ] || { echo \"Error: 87 bad arguments $*\"; exit 87; }\n"+
		"cat "+out+"\n"), 0o755))
	images, err := Tools{Dism: dism}.Images(context.Background(), filepath.Join(dir, "install.wim"))
	require.NoError(t, err)
	assert.Len(t, images, 2)

	_, err = Tools{Dism: dism}.Images(context.Background(), filepath.Join(dir, "other.wim"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dism /Get-WimInfo failed")
	assert.Contains(t, err.Error(), "Error: 87 bad arguments")
}
