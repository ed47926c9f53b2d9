package diskimage

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// dism is the DISM that lists images: Tools.Dism, or on Windows dism.exe
// when wimlib-imagex is not installed; "" means wimlib-imagex does.
func (t Tools) dism() string {
	if t.Dism != "" {
		return t.Dism
	}
	if runtime.GOOS != "windows" || t.Wimlib != "" {
		return ""
	}
	if _, err := exec.LookPath("wimlib-imagex"); err == nil {
		return ""
	}
	return "dism.exe"
}

// dismImages lists the images of a WIM with `dism /Get-WimInfo`, in
// English whatever the runner's language, so that it can be parsed.
func dismImages(ctx context.Context, dism, wimPath string) ([]WIMImage, error) {
	out, err := run(ctx, dism, "/English", "/Get-WimInfo", "/WimFile:"+wimPath)
	if err != nil {
		return nil, toolError(ctx, "dism /Get-WimInfo", "reading images of "+wimPath, out, err,
			"dism needs an elevated prompt (GitHub's Windows runners are) and a readable WIM")
	}
	images, err := parseDismWimInfo(string(out))
	if err != nil {
		return nil, fmt.Errorf("reading images of %s: %w", wimPath, err)
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("reading images of %s: dism lists no images", wimPath)
	}
	return images, nil
}

// parseDismWimInfo reads the blocks of "Key : value" lines that
// `dism /English /Get-WimInfo` prints per image, each starting with
// "Index : n"; the size is "15,095,557,785 bytes". Only the first colon
// separates key from value: names may contain colons.
func parseDismWimInfo(out string) ([]WIMImage, error) {
	return parseImageList(out, imageListing{
		tool: "dism", sep: " : ", edition: "Edition", size: "Size",
		parseSize: func(v string) (int64, error) {
			digits := strings.NewReplacer(",", "", ".", "", " bytes", "").Replace(v)
			return strconv.ParseInt(digits, 10, 64)
		},
	})
}
