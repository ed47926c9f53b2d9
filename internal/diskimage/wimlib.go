package diskimage

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cib-project/cib/internal/vhd"
)

// wimlibSteps are the wimlib builder's steps (spec/disk-image.md §3, on
// Linux, no hypervisor, nothing mounted): add the payload to the WIM
// image (Tools.AddTree), lay out a disk of image.size GiB (MBR or GPT
// from image.partition), format and apply the Windows volume, make the
// offline registry edits, write the boot manager and BCD store (UEFI for
// GPT; for MBR also the BIOS boot code, WriteBIOSBootCode), build the disk
// around the volume and turn it into a fixed VHD.
func (b *build) wimlibSteps() []buildStep {
	ctx, in, k := b.ctx, b.in, b.in.Key
	style := strings.ToLower(k.Image.Partition)
	uefi := style == StyleGPT
	volume := filepath.Join(b.work, "windows.ntfs")
	var disk Disk
	return []buildStep{
		{StepAddFiles, func() error {
			if err := in.Tools.AddTree(ctx, b.wimPath, b.image.Index, b.payload.Dir); err != nil {
				return err
			}
			// The image holds them now; the copies would only take space.
			return os.RemoveAll(filepath.Dir(b.payload.Dir))
		}},
		{StepLayout, func() (err error) {
			disk, err = Layout(ctx, filepath.Join(b.work, "disk.raw"), int64(k.Image.Size)<<30, style)
			return err
		}},
		{StepFormatNTFS, func() error { return FormatNTFS(ctx, volume, disk.Windows, "Windows") }},
		{StepApplyImage, func() error {
			if err := in.Tools.ApplyImage(ctx, b.wimPath, b.image.Index, volume); err != nil {
				return err
			}
			// The WIM can be several GiB; free the space before the disk
			// grows.
			return os.Remove(b.wimPath)
		}},
		{StepRegistry, func() error {
			skipped, err := ApplyRegistryEdits(ctx, volume, EditsFor(k, b.sel))
			if len(skipped) > 0 {
				b.logf("disk image: services not in the image, not disabled: %s", strings.Join(skipped, ", "))
			}
			return err
		}},
		{StepBoot, func() error {
			if _, err := BuildBCD(ctx, volume, disk, uefi); err != nil {
				return err
			}
			if err := CopyBootManager(ctx, volume, disk.Path, disk, uefi); err != nil {
				return err
			}
			if uefi {
				// UEFI firmware reads the EFI system partition itself.
				return nil
			}
			return WriteBIOSBootCode(ctx, disk.Path, disk)
		}},
		{StepSplice, func() error {
			// Consumes the volume: the disk is built around it where the
			// file system allows, instead of copying it in.
			return MoveVolumeIntoDisk(ctx, volume, disk.Path, disk.Windows)
		}},
		{StepVHD, func() error {
			var id [16]byte
			if _, err := rand.Read(id[:]); err != nil {
				return err
			}
			if err := vhd.WriteFixed(disk.Path, id, b.built); err != nil {
				return err
			}
			// Read it back: the store step must never publish a disk
			// whose footer does not check out.
			_, size, err := vhd.ReadFixed(disk.Path)
			if err != nil {
				return err
			}
			if size != disk.Size {
				return fmt.Errorf("vhd %s has virtual size %d, want %d", disk.Path, size, disk.Size)
			}
			b.vhdPath, b.size = disk.Path, size+vhd.FooterSize
			return nil
		}},
	}
}
