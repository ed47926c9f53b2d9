package diskimage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// WIMImage is one image of a WIM, as `wimlib-imagex info` describes it.
// EditionID is the image's WINDOWS/EDITIONID property (for example
// "Professional"); it is empty when the WIM does not record one.
type WIMImage struct {
	Index                        int
	Name, Description, EditionID string
	TotalBytes                   int64
}

// String names the image the way error messages list it.
func (im WIMImage) String() string {
	s := fmt.Sprintf("%d: %q", im.Index, im.Name)
	if im.EditionID != "" {
		s += " (edition " + im.EditionID + ")"
	}
	return s
}

// Images lists the images of the WIM (or ESD) at wimPath, in index order.
func (t Tools) Images(ctx context.Context, wimPath string) ([]WIMImage, error) {
	if dism := t.dism(); dism != "" {
		return dismImages(ctx, dism, wimPath)
	}
	out, err := run(ctx, t.wimlib(), "info", wimPath)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading images of %s: %w", wimPath, ctx.Err())
		}
		if !isExitError(err) {
			return nil, fmt.Errorf("reading images of %s: running wimlib-imagex (Debian package wimtools): %w", wimPath, err)
		}
		// wimlib spreads one error over several indented lines; keep it on one.
		return nil, fmt.Errorf("reading images of %s: %v: %s", wimPath, err, strings.Join(strings.Fields(string(out)), " "))
	}
	images, err := parseInfo(string(out))
	if err != nil {
		return nil, fmt.Errorf("reading images of %s: %w", wimPath, err)
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("reading images of %s: wimlib-imagex lists no images", wimPath)
	}
	return images, nil
}

// parseInfo reads the "Available Images:" part of `wimlib-imagex info`,
// where each image is a block of "Key:   value" lines starting with "Index:".
// Only the first colon separates key from value: names may contain colons.
func parseInfo(out string) ([]WIMImage, error) {
	return parseImageList(out, imageListing{
		tool: "wimlib-imagex", from: "Available Images:", sep: ":",
		edition: "Edition ID", size: "Total Bytes",
		parseSize: func(v string) (int64, error) { return strconv.ParseInt(v, 10, 64) },
	})
}

// imageListing describes a tool's listing of a WIM's images: blocks of
// key/value lines, each block starting with "Index", after a line that
// starts with from (from the start when empty).
type imageListing struct {
	tool, from, sep string
	edition, size   string // the keys of the edition and of the size
	parseSize       func(string) (int64, error)
}

// parseImageList reads a listing l describes.
func parseImageList(out string, l imageListing) ([]WIMImage, error) {
	var images []WIMImage
	in := l.from == ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if !in {
			in = strings.HasPrefix(line, l.from)
			continue
		}
		key, value, ok := strings.Cut(line, l.sep)
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == "Index" {
			n, err := strconv.Atoi(value)
			if err != nil {
				return nil, fmt.Errorf("unexpected image index %q in %s's output", value, l.tool)
			}
			images = append(images, WIMImage{Index: n})
			continue
		}
		if len(images) == 0 {
			continue
		}
		im := &images[len(images)-1]
		switch key {
		case "Name":
			im.Name = value
		case "Description":
			im.Description = value
		case l.edition:
			im.EditionID = value
		case l.size:
			n, err := l.parseSize(value)
			if err != nil {
				return nil, fmt.Errorf("image %d: unexpected size %q in %s's output", im.Index, value, l.tool)
			}
			im.TotalBytes = n
		}
	}
	return images, nil
}

// ChooseImage applies the iso.wimindex rule of the configuration: when
// wimindex is set (> 0) that image, which must exist; otherwise the single
// image whose name ends with edition, compared case-insensitively. No match
// or several matches is an error, because guessing would silently build the
// wrong Windows edition; the error lists the images so the user can set
// iso.wimindex.
func ChooseImage(images []WIMImage, wimindex int, edition string) (WIMImage, error) {
	if wimindex < 0 {
		return WIMImage{}, fmt.Errorf("iso.wimindex %d is not a valid image index (indexes start at 1); images: %s", wimindex, listImages(images))
	}
	if wimindex > 0 {
		for _, im := range images {
			if im.Index == wimindex {
				return im, nil
			}
		}
		return WIMImage{}, fmt.Errorf("iso.wimindex %d does not exist; images: %s", wimindex, listImages(images))
	}
	suffix := strings.ToLower(strings.TrimSpace(edition))
	if suffix == "" {
		return WIMImage{}, fmt.Errorf("no iso.wimindex and no image.edition to choose an image by: set iso.wimindex; images: %s", listImages(images))
	}
	var matches []WIMImage
	for _, im := range images {
		if strings.HasSuffix(strings.ToLower(strings.TrimSpace(im.Name)), suffix) {
			matches = append(matches, im)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return WIMImage{}, fmt.Errorf("no image name ends with edition %q: set iso.wimindex; images: %s", edition, listImages(images))
	default:
		return WIMImage{}, fmt.Errorf("%d image names end with edition %q (%s): set iso.wimindex; images: %s", len(matches), edition, listImages(matches), listImages(images))
	}
}

// listImages formats images for error messages.
func listImages(images []WIMImage) string {
	if len(images) == 0 {
		return "none"
	}
	parts := make([]string, len(images))
	for i, im := range images {
		parts[i] = im.String()
	}
	return strings.Join(parts, ", ")
}
