package diskimage

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cib-project/cib/internal/vhd"
)

// StepPutFiles is the wimlib builder's step that puts the edited hives and
// the BCD store on the applied volume.
const StepPutFiles = "put-files"

// wimlibSteps are the wimlib builder's steps (spec/disk-image.md §3, on
// Linux, no hypervisor, nothing mounted):
//
//   - layout: a raw disk of image.size GiB, MBR or GPT (image.partition);
//   - add-files: take the hives, the BCD-Template and the boot manager out
//     of the WIM image, and add the payload (plus, for BIOS boot, \bootmgr
//     and a \Boot\BCD to be replaced) to it (Tools.AddTree);
//   - format-ntfs, apply-image: the Windows volume. While wimlib applies
//     the image (it uses one core), the registry edits (EditHives) and the
//     boot files (BuildBCDStore, then InstallUEFIBoot or WriteBIOSBootCode
//     on the raw disk) are made alongside, on the files taken out;
//   - put-files: the edited hives and, for BIOS boot, the BCD store onto
//     the volume;
//   - splice, vhd: the disk built around the volume, and its footer.
func (b *build) wimlibSteps() []buildStep {
	in, k := b.in, b.in.Key
	style := strings.ToLower(k.Image.Partition)
	uefi := style == StyleGPT
	volume := filepath.Join(b.work, "windows.ntfs")
	// The files taken out of the image, edited while it is applied.
	boot := filepath.Join(b.work, "boot")
	edits := EditsFor(k, b.sel)
	hives := HiveFiles{System: filepath.Join(boot, "SYSTEM"), DefaultUser: filepath.Join(boot, "NTUSER.DAT")}
	template, bcd := filepath.Join(boot, "BCD-Template"), filepath.Join(boot, "BCD")
	bootMgrSrc := pcatBootMgrPath
	if uefi {
		bootMgrSrc = efiBootMgrPath
	}
	bootMgr := filepath.Join(boot, path.Base(strings.ReplaceAll(bootMgrSrc, `\`, "/")))
	var disk Disk
	return []buildStep{
		{name: StepLayout, run: func(ctx context.Context) (err error) {
			if disk, err = Layout(ctx, filepath.Join(b.work, "disk.raw"), int64(k.Image.Size)<<30, style); err != nil {
				return err
			}
			// Said now rather than after minutes of applying: the files
			// alone do not fit (NTFS needs more still).
			if need := b.image.TotalBytes; need > disk.Windows.Size {
				return fmt.Errorf("image %s holds %.1f GiB of files, more than the %.1f GiB Windows partition of a %d GiB disk: raise image.size in %s",
					b.image, float64(need)/(1<<30), float64(disk.Windows.Size)/(1<<30), k.Image.Size, keyFile(k))
			}
			return nil
		}},
		{name: StepAddFiles, run: func(ctx context.Context) error {
			if err := os.Mkdir(boot, 0o755); err != nil {
				return err
			}
			take := []string{bcdTemplatePath, bootMgrSrc}
			if edits.NeedsSystem() {
				take = append(take, systemHivePath)
			}
			if edits.NeedsDefaultUser() {
				take = append(take, defaultUserHivePath)
			}
			if err := in.Tools.ExtractFiles(ctx, b.wimPath, b.image.Index, boot, take...); err != nil {
				return err
			}
			if !uefi {
				// The BIOS boot manager reads \bootmgr and \Boot\BCD on
				// the active partition; the store is replaced by the real
				// one after the apply (no tool makes the folder then).
				for src, dst := range map[string]string{bootMgr: "bootmgr", template: biosBCDPath} {
					p := filepath.Join(b.payload.Dir, filepath.FromSlash(strings.ReplaceAll(dst, `\`, "/")))
					if _, err := os.Lstat(p); err == nil {
						return fmt.Errorf("a package writes %s, where the boot files go", dst)
					}
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						return err
					}
					if err := copyFile(src, p); err != nil {
						return err
					}
				}
			}
			if err := in.Tools.AddTree(ctx, b.wimPath, b.image.Index, b.payload.Dir); err != nil {
				return err
			}
			// The image holds them now; the copies would only take space.
			return os.RemoveAll(filepath.Dir(b.payload.Dir))
		}},
		{name: StepFormatNTFS, run: func(ctx context.Context) error { return FormatNTFS(ctx, volume, disk.Windows, "Windows") }},
		{name: StepApplyImage, run: func(ctx context.Context) error {
			if err := in.Tools.ApplyImage(ctx, b.wimPath, b.image.Index, volume); err != nil {
				return err
			}
			// The WIM can be several GiB; free the space before the disk
			// grows.
			return os.Remove(b.wimPath)
		}, alongside: []buildStep{
			{name: StepRegistry, run: func(ctx context.Context) error {
				skipped, err := EditHives(ctx, hives, edits)
				if len(skipped) > 0 {
					b.logf("disk image: services not in the image, not disabled: %s", strings.Join(skipped, ", "))
				}
				return err
			}},
			{name: StepBoot, run: func(ctx context.Context) error {
				if _, err := BuildBCDStore(ctx, template, bcd, disk, uefi); err != nil {
					return err
				}
				if uefi {
					return InstallUEFIBoot(ctx, disk, bootMgr, bcd)
				}
				return WriteBIOSBootCode(ctx, disk.Path, disk)
			}},
		}},
		{name: StepPutFiles, run: func(ctx context.Context) error {
			puts := map[string]string{}
			if edits.NeedsSystem() {
				puts[hives.System] = systemHivePath
			}
			if edits.NeedsDefaultUser() {
				puts[hives.DefaultUser] = defaultUserHivePath
			}
			if !uefi {
				puts[bcd] = biosBCDPath
			}
			for src, dst := range puts {
				if err := PutFile(ctx, volume, src, dst); err != nil {
					return err
				}
			}
			return nil
		}},
		{name: StepSplice, run: func(ctx context.Context) error {
			// Consumes the volume: the disk is built around it where the
			// file system allows, instead of copying it in.
			return MoveVolumeIntoDisk(ctx, volume, disk.Path, disk.Windows)
		}},
		{name: StepVHD, run: func(ctx context.Context) error {
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
