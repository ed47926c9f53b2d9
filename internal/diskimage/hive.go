package diskimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cib-project/cib/internal/config"
)

// Where the hives edited offline live in an applied image. The default
// user's hive is the template every new profile is copied from, so a
// setting written there reaches the accounts Windows Setup creates.
const (
	systemHivePath      = `Windows\System32\config\SYSTEM`
	defaultUserHivePath = `Users\Default\NTUSER.DAT`
)

// RegistryEdits are the offline changes made to an applied image's hives:
// what the seed did with `reg load` on its Windows worker, done here with
// hivex because no Windows host is available.
type RegistryEdits struct {
	// EnableRDP sets fDenyTSConnections=0 (image.rdp). When false the
	// image's own setting is left alone.
	EnableRDP bool
	// DisabledServices get Start=4 (disabled): the names from
	// disable-windows-service.yaml that apply to the build.
	DisabledServices []string
	// DisableNotificationCenter sets the Explorer policy
	// DisableNotificationCenter=1 for new users (Windows 10).
	DisableNotificationCenter bool
}

// EditsFor derives the registry edits from key k and the shared entries
// selected for its build. The notification centre policy is a Windows 10
// setting (the seed applied it only there). Service names are kept in
// file order without case-insensitive duplicates, since registry key names
// ignore case.
func EditsFor(k *config.Key, sel config.Selected) RegistryEdits {
	var e RegistryEdits
	if k == nil || k.Image == nil {
		return e
	}
	e.EnableRDP = k.Image.RDP
	e.DisableNotificationCenter = k.Image.OS == "Windows 10"
	for _, d := range sel.DisabledServices {
		if !slices.ContainsFunc(e.DisabledServices, func(s string) bool { return strings.EqualFold(s, d.Name) }) {
			e.DisabledServices = append(e.DisabledServices, d.Name)
		}
	}
	return e
}

// regSection is one [key] section of a .reg file: a key path relative to
// the hive root and the REG_DWORD values to set in it.
type regSection struct {
	key    string
	dwords []regValue
}

type regValue struct {
	name string
	data uint32
}

// HiveFiles are local copies of an image's hives, edited in place by
// EditHives: System is Windows\System32\config\SYSTEM, DefaultUser is
// Users\Default\NTUSER.DAT. The wimlib builder takes them out of the WIM
// before the image is applied, edits them while it is applied, and puts
// them on the volume after.
type HiveFiles struct {
	System, DefaultUser string
}

// NeedsSystem and NeedsDefaultUser say which hives e edits, so that only
// those are taken out of the image.
func (e RegistryEdits) NeedsSystem() bool      { return e.EnableRDP || len(e.DisabledServices) > 0 }
func (e RegistryEdits) NeedsDefaultUser() bool { return e.DisableNotificationCenter }

// EditHives makes the edits e in the hive files h (only the hives e
// needs: see NeedsSystem, NeedsDefaultUser): a generated .reg file is
// merged into each with `hivexregedit --merge`. The .reg files are written
// beside the hives and removed.
//
// The control set edited is the one SYSTEM\Select\Current names, since
// that is the one Windows boots with and it need not be ControlSet001.
//
// A service in e.DisabledServices that the image does not have is not
// created (a Start value under a key with no service definition would do
// nothing but hide a typo in the config): its name is returned in
// skipped, for the caller to report.
func EditHives(ctx context.Context, h HiveFiles, e RegistryEdits) (skipped []string, err error) {
	for _, s := range e.DisabledServices {
		// The name becomes part of a .reg section header, where these
		// characters would change its meaning.
		if s == "" || strings.ContainsAny(s, "\\[]\"\r\n") {
			return nil, fmt.Errorf("editing registry hive %s: service name %q is not a valid registry key name", h.System, s)
		}
	}
	if !e.NeedsSystem() && !e.NeedsDefaultUser() {
		return nil, nil
	}
	var t hiveTools
	if err := t.find(); err != nil {
		return nil, fmt.Errorf("editing registry hives: %w", err)
	}

	if e.NeedsSystem() {
		cs, err := t.currentControlSet(ctx, h.System)
		if err != nil {
			return nil, err
		}
		var sections []regSection
		if e.EnableRDP {
			sections = append(sections, regSection{
				key:    cs + `\Control\Terminal Server`,
				dwords: []regValue{{"fDenyTSConnections", 0}},
			})
		}
		if len(e.DisabledServices) > 0 {
			present, err := t.subkeys(ctx, h.System, cs+`\Services`)
			if err != nil {
				return nil, err
			}
			var done []string
			for _, s := range e.DisabledServices {
				i := slices.IndexFunc(present, func(p string) bool { return strings.EqualFold(p, s) })
				switch {
				case i < 0:
					skipped = append(skipped, s)
				case !slices.Contains(done, present[i]):
					done = append(done, present[i])
					sections = append(sections, regSection{
						key:    cs + `\Services\` + present[i],
						dwords: []regValue{{"Start", 4}},
					})
				}
			}
		}
		if len(sections) > 0 {
			if err := t.merge(ctx, h.System, systemHivePath, `HKEY_LOCAL_MACHINE\SYSTEM`, sections); err != nil {
				return skipped, err
			}
		}
	}

	if e.NeedsDefaultUser() {
		sections := []regSection{{
			key:    `Software\Policies\Microsoft\Windows\Explorer`,
			dwords: []regValue{{"DisableNotificationCenter", 1}},
		}}
		if err := t.merge(ctx, h.DefaultUser, defaultUserHivePath, `HKEY_USERS\.DEFAULT`, sections); err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

// hiveTools are the programs that read and edit hives.
type hiveTools struct {
	hivexget, hivexsh, hivexregedit string
}

func (t *hiveTools) find() error {
	for _, x := range []struct {
		dst       *string
		name, pkg string
	}{
		{&t.hivexget, "hivexget", "libhivex-bin"},
		{&t.hivexsh, "hivexsh", "libhivex-bin"},
		// hivexregedit is a Perl script shipped with the Perl bindings.
		{&t.hivexregedit, "hivexregedit", "libwin-hivex-perl"},
	} {
		p, err := lookTool(x.name, x.pkg)
		if err != nil {
			return err
		}
		*x.dst = p
	}
	return nil
}

// currentControlSet returns the name of the control set SYSTEM\Select\
// Current names, such as ControlSet001.
func (t hiveTools) currentControlSet(ctx context.Context, hive string) (string, error) {
	doing := fmt.Sprintf(`reading Select\Current from registry hive %s`, systemHivePath)
	var out bytes.Buffer
	stderr, err := runIO(ctx, t.hivexget, nil, &out, hive, `\Select`, "Current")
	if err != nil {
		return "", toolError(ctx, "hivexget", doing, stderr, err,
			"the SYSTEM hive is damaged or not a Windows SYSTEM hive")
	}
	n, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil || n < 1 || n > 999 {
		return "", fmt.Errorf("%s: value %q is not a control set number", doing, strings.TrimSpace(out.String()))
	}
	return fmt.Sprintf("ControlSet%03d", n), nil
}

// subkeys lists the names of the subkeys of key in the hive, with one
// hivexsh run rather than one hivexget per name.
func (t hiveTools) subkeys(ctx context.Context, hive, key string) ([]string, error) {
	doing := fmt.Sprintf(`listing %s in registry hive %s`, key, systemHivePath)
	var out bytes.Buffer
	script := "cd \\" + key + "\nls\n"
	stderr, err := runIO(ctx, t.hivexsh, strings.NewReader(script), &out, hive)
	if err != nil {
		return nil, toolError(ctx, "hivexsh", doing, stderr, err,
			"the SYSTEM hive is damaged or not a Windows SYSTEM hive")
	}
	var names []string
	for l := range strings.Lines(out.String()) {
		if l = strings.TrimRight(l, "\r\n"); l != "" {
			names = append(names, l)
		}
	}
	return names, nil
}

// merge writes sections to a .reg file beside the hive file and merges it
// into the hive with hivexregedit; name is the hive's path in the image,
// for messages.
func (t hiveTools) merge(ctx context.Context, hive, name, prefix string, sections []regSection) error {
	doing := fmt.Sprintf("editing registry hive %s", name)
	regFile := hive + ".reg"
	if err := os.WriteFile(regFile, regFileContent(prefix, sections), 0o600); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	defer os.Remove(regFile)
	stderr, err := runIO(ctx, t.hivexregedit, nil, io.Discard, "--merge", "--prefix", prefix, hive, regFile)
	if err != nil {
		return toolError(ctx, "hivexregedit --merge", doing, stderr, err,
			"check that libwin-hivex-perl is installed and the hive is not damaged")
	}
	return nil
}

// regFileContent renders sections as a regedit file (the format
// hivexregedit reads: UTF-8, LF line ends). hivexregedit creates a missing
// key only when its parent exists, so a section is written for every
// ancestor of each key first; a section without values changes nothing in
// a key that exists.
func regFileContent(prefix string, sections []regSection) []byte {
	var b strings.Builder
	b.WriteString("Windows Registry Editor Version 5.00\n\n")
	var written []string
	for _, s := range sections {
		parts := strings.Split(s.key, `\`)
		for i := 1; i < len(parts); i++ {
			anc := strings.Join(parts[:i], `\`)
			if !slices.ContainsFunc(written, func(w string) bool { return strings.EqualFold(w, anc) }) {
				written = append(written, anc)
				fmt.Fprintf(&b, "[%s\\%s]\n\n", prefix, anc)
			}
		}
		written = append(written, s.key)
		fmt.Fprintf(&b, "[%s\\%s]\n", prefix, s.key)
		for _, v := range s.dwords {
			fmt.Fprintf(&b, "%q=dword:%08x\n", v.name, v.data)
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// runIO runs a tool with the given stdin and stdout and returns its
// stderr, kept apart from stdout because stdout is data (a hive, a value).
func runIO(ctx context.Context, name string, stdin io.Reader, stdout io.Writer, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return stderr.Bytes(), err
}
