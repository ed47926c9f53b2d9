package diskimage_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/diskimage"
)

// updateGolden rewrites testdata/dism/*.ps1 from the generator. Another test
// file of the package may register -update too; sharing it keeps both
// working.
var updateGolden = func() *bool {
	if f := flag.Lookup("update"); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if b, ok := g.Get().(bool); ok {
				return &b
			}
		}
	}
	return flag.Bool("update", false, "rewrite golden files")
}()

// dismInputs are the fixed runner paths of the golden scripts, for key on
// azure.
func dismInputs(t *testing.T, cfg *config.Config, key string) diskimage.DismInputs {
	t.Helper()
	k := cfg.Key(key)
	require.NotNil(t, k, key)
	return diskimage.DismInputs{
		Key:        k,
		Selected:   cfg.Select(k, "azure"),
		WIMPath:    `C:\cib\work\install.wim`,
		Index:      3,
		PayloadDir: `C:\cib\work\payload\tree`,
		TempDir:    `C:\cib\work\dism-temp`,
		VHDPath:    `C:\cib\work\disk.vhd`,
	}
}

func loadDismConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("../../config")
	require.NoError(t, err)
	return cfg
}

func TestDismScriptGolden(t *testing.T) {
	cases := []struct {
		golden, key  string
		gpt, drivers bool
	}{
		{"win7-32", "win7-32", false, false},
		{"win10-64", "win10-64", false, false},
		{"win10-64-gpt", "win10-64", true, false},
		// No ported key selects a driver for azure.
		{"win10-64-drivers", "win10-64", false, true},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			// a fresh load per case: the GPT case edits the key
			cfg := loadDismConfig(t)
			in := dismInputs(t, cfg, c.key)
			if c.gpt {
				img := *in.Key.Image
				img.Partition = "GPT"
				key := *in.Key
				key.Image = &img
				in.Key = &key
			}
			if c.drivers {
				in.Selected.Drivers = []config.Driver{
					{Name: "netkvm", InfPath: `NetKVM\w10\amd64`, Extract: true},
					{Name: "viostor", InfPath: `viostor\w10\amd64`, Extract: true},
				}
			}
			got, err := diskimage.DismScript(in)
			require.NoError(t, err)
			path := filepath.Join("testdata", "dism", c.golden+".ps1")
			if *updateGolden {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -run Dism -update ./internal/diskimage/ to create it")
			assert.Equal(t, string(want), got)

			checkDismScript(t, in, got)
		})
	}
}

func TestDismCleanupScriptGolden(t *testing.T) {
	in := dismInputs(t, loadDismConfig(t), "win10-64")
	got, err := diskimage.DismCleanupScript(in)
	require.NoError(t, err)
	path := filepath.Join("testdata", "dism", "cleanup.ps1")
	if *updateGolden {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run Dism -update ./internal/diskimage/ to create it")
	assert.Equal(t, string(want), got)

	// it undoes what the build script does, and nothing fails it
	assert.Contains(t, got, "$Vhd = "+quotePS(in.VHDPath)+"\n")
	assert.Contains(t, got, "'detach vdisk'")
	assert.Contains(t, got, "& reg.exe unload $hive")
	build, err := diskimage.DismScript(in)
	require.NoError(t, err)
	for _, hive := range regexp.MustCompile(`& reg\.exe load ('[^']+')`).FindAllStringSubmatch(build, -1) {
		assert.Contains(t, got, hive[1], "the cleanup does not unload %s", hive[1])
	}
	assert.NotContains(t, got, "throw")
	assert.True(t, strings.HasSuffix(got, "exit 0\n"))
	parsePowerShell(t, got)

	in.VHDPath = "C:\\out\"x.vhd"
	_, err = diskimage.DismCleanupScript(in)
	assert.ErrorContains(t, err, "VHD path")
}

// checkDismScript asserts what must hold of any generated script, whatever
// the golden files say.
func checkDismScript(t *testing.T, in diskimage.DismInputs, script string) {
	t.Helper()
	im := in.Key.Image
	lines := strings.Split(script, "\n")

	assert.Contains(t, script, "$ErrorActionPreference = 'Stop'\n")

	// every native command is followed by a check of its exit code
	native := regexp.MustCompile(`^\s*& (dism|bcdboot|reg|diskpart)\.exe `)
	nNative := 0
	for i, l := range lines {
		if native.MatchString(l) {
			nNative++
			require.Less(t, i+1, len(lines))
			assert.Contains(t, lines[i+1], "$LASTEXITCODE -ne 0", "line %d %q is not checked", i+1, l)
		}
	}
	assert.Greater(t, nNative, 3)

	// the payload tree (unattend.xml, packages, drivers) is copied whole
	// onto the applied volume, after the image and before anything reads it
	assert.Contains(t, script, "$Payload = "+quotePS(in.PayloadDir)+"\n")
	copyAt := strings.Index(script, "    & robocopy.exe $Payload \"${W}:\\\" /E ")
	require.GreaterOrEqual(t, copyAt, 0, "no robocopy of the payload")
	assert.Contains(t, script[copyAt:], "\n    if ($LASTEXITCODE -ge 8) { throw ")
	assert.Less(t, strings.Index(script, "/Apply-Image"), copyAt)
	assert.Less(t, copyAt, strings.Index(script, "& bcdboot.exe"))
	assert.Equal(t, 1, strings.Count(script, "& robocopy.exe "))
	assert.NotContains(t, script, "Copy-Item")
	assert.Contains(t, script, "Join-Path $Payload 'unattend.xml'")

	// scratch files stay in TempDir
	assert.Contains(t, script, "$Temp = "+quotePS(in.TempDir)+"\n")
	assert.Contains(t, script, "$env:TEMP = $Temp\n")
	assert.NotContains(t, script, "GetTempPath")

	// each disabled service is disabled by exactly one reg add Start=4
	for _, s := range in.Selected.DisabledServices {
		re := regexp.MustCompile(`^\s*& reg\.exe add ` + regexp.QuoteMeta(quotePS(`HKLM\CIB_SYSTEM\ControlSet001\Services\`+s.Name)) + ` /v Start /t REG_DWORD /d 4 /f$`)
		n := 0
		for _, l := range lines {
			if re.MatchString(l) {
				n++
			}
		}
		assert.Equal(t, 1, n, "service %s", s.Name)
	}
	assert.Equal(t, len(in.Selected.DisabledServices), strings.Count(script, "/v Start /t REG_DWORD /d 4 /f"))

	assert.Equal(t, im.RDP, strings.Contains(script, "/v fDenyTSConnections /t REG_DWORD /d 0 /f"))
	assert.Equal(t, im.OS == "Windows 10", strings.Contains(script, "/v DisableNotificationCenter /t REG_DWORD /d 1 /f"))

	for _, d := range in.Selected.Drivers {
		assert.Contains(t, script, "$driver = Join-Path \"${W}:\\\" "+quotePS(`Windows\Temp\drivers\`+d.Name)+"\n")
	}
	assert.Equal(t, len(in.Selected.Drivers), strings.Count(script, "/Add-Driver \"/Driver:$driver\" /Recurse\n"))

	// the firmware and layout follow image.partition
	if strings.EqualFold(im.Partition, "GPT") {
		assert.Contains(t, script, "/f UEFI\n")
		assert.Contains(t, script, "'create partition efi size=100'")
		assert.Contains(t, script, "'create partition msr size=16'")
		assert.NotContains(t, script, "'active'")
	} else {
		assert.Contains(t, script, "/f BIOS\n")
		assert.Contains(t, script, "'create partition primary align=1024'")
		assert.Contains(t, script, "'active'")
		assert.NotContains(t, script, "efi")
	}
	assert.Contains(t, script, `/Apply-Image "/ImageFile:$Wim" "/Index:$Index" "/ApplyDir:${W}:\"`)
	assert.Contains(t, script, "$Index = 3\n")
	if len(in.Selected.Drivers) > 0 {
		assert.Less(t, copyAt, strings.Index(script, "/Add-Driver"))
	}

	// detach and hive unload happen in the outermost finally, after every step
	fin := regexp.MustCompile(`(?m)^} finally \{$`).FindStringIndex(script)
	require.NotNil(t, fin, "no top-level finally")
	assert.Regexp(t, `(?m)^try \{$`, script[:fin[0]])
	tail := script[fin[1]:]
	assert.Contains(t, tail, "'detach vdisk'")
	assert.Contains(t, tail, "& reg.exe unload $hive")
	assert.NotContains(t, script[:fin[0]], "detach vdisk")
	assert.Less(t, strings.Index(script, "$attached = $true"), strings.Index(script, "'attach vdisk'"))

	// loads and unloads pair up inside the try
	assert.Equal(t, strings.Count(script, "& reg.exe load "), strings.Count(script[:fin[0]], "& reg.exe unload "))

	parsePowerShell(t, script)
}

// quotePS is PowerShell's single-quoted literal of s: every quote
// character, ASCII or typographic, doubled.
func quotePS(s string) string {
	r := strings.NewReplacer("'", "''", "\u2018", "\u2018\u2018", "\u2019", "\u2019\u2019", "\u201a", "\u201a\u201a", "\u201b", "\u201b\u201b")
	return "'" + r.Replace(s) + "'"
}

// parsePowerShell checks the script's syntax with pwsh when it is installed;
// the development container has none, so it is optional.
func parsePowerShell(t *testing.T, script string) {
	t.Helper()
	pwsh, err := exec.LookPath("pwsh")
	if err != nil {
		return
	}
	file := filepath.Join(t.TempDir(), "script.ps1")
	require.NoError(t, os.WriteFile(file, []byte(script), 0o644))
	check := `$errs = $null; [void][System.Management.Automation.Language.Parser]::ParseFile($args[0], [ref]$null, [ref]$errs); if ($errs) { $errs | ForEach-Object { Write-Output $_.ToString() }; exit 1 }`
	out, err := exec.Command(pwsh, "-NoProfile", "-NonInteractive", "-Command", check, file).CombinedOutput()
	assert.NoError(t, err, "pwsh parse: %s", out)
}

func TestDismScriptQuotesConfigurationValues(t *testing.T) {
	cfg := loadDismConfig(t)
	in := dismInputs(t, cfg, "win10-64")
	evil := `it's $(Remove-Item -Recurse -Force D) ‘x’ ${HOME}; & calc ` + "`"
	in.Selected.Drivers = []config.Driver{{Name: evil, InfPath: evil}}
	in.Selected.DisabledServices = []config.DisabledService{{Name: evil}}
	in.PayloadDir = `C:\it's $(x)`
	script, err := diskimage.DismScript(in)
	require.NoError(t, err)

	// Every occurrence of the payload must sit inside a single-quoted
	// literal: scan the script with PowerShell's quoting rules and check that
	// no `$(` or `${env` appears outside one.
	outside := unquotedText(t, script)
	assert.NotContains(t, outside, "Remove-Item -Recurse")
	assert.NotContains(t, outside, "${HOME}")
	assert.NotContains(t, outside, "calc")
	assert.NotContains(t, outside, "$(x)")
	assert.Contains(t, script, `'Windows\Temp\drivers\it''s $(Remove-Item -Recurse -Force D) ‘‘x’’ ${HOME}; & calc `+"`'\n")
	assert.Contains(t, script, `\Services\it''s $(Remove-Item -Recurse -Force D) ‘‘x’’ ${HOME}; & calc `+"`' /v Start")
	assert.Contains(t, script, `$Payload = 'C:\it''s $(x)'`)
	checkDismScript(t, in, script)
}

// unquotedText returns the script with the contents of its single-quoted
// literals removed, following PowerShell's rule that any single-quote
// character (ASCII or U+2018..U+201B) opens and closes one and a doubled
// one stands for itself. It fails if a literal is left open.
func unquotedText(t *testing.T, script string) string {
	t.Helper()
	isQuote := func(r rune) bool { return r == '\'' || (r >= '\u2018' && r <= '\u201b') }
	var out strings.Builder
	rs := []rune(script)
	inQuote, inComment := false, false
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case inComment:
			if r == '\n' {
				inComment = false
				out.WriteRune(r)
			}
		case inQuote:
			if isQuote(r) {
				if i+1 < len(rs) && isQuote(rs[i+1]) {
					i++
					continue
				}
				inQuote = false
				out.WriteRune(r)
			}
		case r == '#':
			inComment = true
		case isQuote(r):
			inQuote = true
			out.WriteRune(r)
		default:
			out.WriteRune(r)
		}
	}
	require.False(t, inQuote, "a single-quoted literal is left open")
	return out.String()
}

func TestDismScriptErrors(t *testing.T) {
	cfg := loadDismConfig(t)
	base := dismInputs(t, cfg, "win10-64")

	var market *config.Key
	for _, k := range cfg.Keys {
		if k.Marketplace() {
			market = k
			break
		}
	}
	require.NotNil(t, market, "the configuration has a marketplace key")
	in := base
	in.Key = market
	_, err := diskimage.DismScript(in)
	assert.ErrorContains(t, err, "marketplace")
	assert.ErrorContains(t, err, market.Name)

	for _, name := range []string{`..`, `a\b`, `x/y`, `c:d`, "tab\tname", ``} {
		in := base
		in.Selected.Drivers = []config.Driver{{Name: name, InfPath: `x64`}}
		_, err := diskimage.DismScript(in)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), `driver `+strconv.Quote(name), name)
		}
	}

	for _, p := range []struct{ what, path string }{{"payload folder", `C:\"evil`}, {"scratch folder", "C:\\tmp\n"}, {"WIM path", ``}} {
		in := base
		switch p.what {
		case "payload folder":
			in.PayloadDir = p.path
		case "scratch folder":
			in.TempDir = p.path
		default:
			in.WIMPath = p.path
		}
		_, err := diskimage.DismScript(in)
		assert.ErrorContains(t, err, p.what)
	}

	in = base
	in.Selected.DisabledServices = []config.DisabledService{{Name: `Sense\..\Other`}}
	_, err = diskimage.DismScript(in)
	assert.ErrorContains(t, err, `disabled service "Sense\\..\\Other"`)

	in = base
	in.VHDPath = `C:\out\"evil.vhd`
	_, err = diskimage.DismScript(in)
	assert.ErrorContains(t, err, "VHD path")

	in = base
	in.Index = 0
	_, err = diskimage.DismScript(in)
	assert.ErrorContains(t, err, "index")

	img := *base.Key.Image
	img.Partition = "APM"
	key := *base.Key
	key.Image = &img
	in = base
	in.Key = &key
	_, err = diskimage.DismScript(in)
	assert.ErrorContains(t, err, "APM")
}
