package unattend

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	// testPassword is recognisable in the golden files and contains no
	// character that would need escaping.
	testPassword = "Test-Passw0rd.NotSecret"
)

type fixedPassword string

func (p fixedPassword) Password() (string, error) { return string(p), nil }

// cases are the golden documents: one of each Windows family on azure,
// and win10-64 on amazon, whose selection (drivers aside) differs.
var cases = []struct{ key, platform string }{
	{"win7-32", "azure"},
	{"win10-64", "azure"},
	{"win2012", "azure"},
	{"win2019", "azure"},
	{"win10-64", "amazon"},
}

func loadConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("../../config")
	require.NoError(t, err)
	return cfg
}

func render(t *testing.T, cfg *config.Config, key, platform string) (*config.Key, *Document) {
	t.Helper()
	k := cfg.Key(key)
	require.NotNil(t, k, key)
	doc, err := Render(cfg, k, Options{Platform: platform, Revision: testRevision, Password: fixedPassword(testPassword)})
	require.NoError(t, err)
	return k, doc
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/unattend/ -update to create it")
	assert.Equal(t, string(want), string(got), "%s differs; rerun with -update if the change is intended", path)
}

func TestGolden(t *testing.T) {
	cfg := loadConfig(t)
	for _, c := range cases {
		t.Run(c.key+"-"+c.platform, func(t *testing.T) {
			_, doc := render(t, cfg, c.key, c.platform)
			golden(t, c.key+"-"+c.platform+".xml", doc.XML)
			golden(t, c.key+"-"+c.platform+".redacted.xml", doc.Redacted)
		})
	}
}

func TestDeterministic(t *testing.T) {
	cfg := loadConfig(t)
	_, a := render(t, cfg, "win10-64", "azure")
	_, b := render(t, cfg, "win10-64", "azure")
	assert.Equal(t, a.XML, b.XML)
	assert.Equal(t, a.Redacted, b.Redacted)
}

// elem is a generic parse of the document, to check its structure without
// repeating the renderer's types.
type elem struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []elem     `xml:",any"`
}

func (e elem) attr(local string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func (e elem) child(local string) *elem {
	for i := range e.Children {
		if e.Children[i].XMLName.Local == local {
			return &e.Children[i]
		}
	}
	return nil
}

// find follows a path of element names, first match at each step.
func (e elem) find(path ...string) *elem {
	cur := &e
	for _, p := range path {
		if cur = cur.child(p); cur == nil {
			return nil
		}
	}
	return cur
}

// all collects every descendant named local.
func (e elem) all(local string) []elem {
	var out []elem
	for _, c := range e.Children {
		if c.XMLName.Local == local {
			out = append(out, c)
		}
		out = append(out, c.all(local)...)
	}
	return out
}

func parse(t *testing.T, b []byte) elem {
	t.Helper()
	require.True(t, bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="utf-8"?>`)))
	var root elem
	require.NoError(t, xml.Unmarshal(b, &root))
	require.Equal(t, xml.Name{Space: Namespace, Local: "unattend"}, root.XMLName)
	return root
}

// components maps pass → component names, in order.
func components(t *testing.T, root elem) map[string][]string {
	out := map[string][]string{}
	for _, s := range root.Children {
		require.Equal(t, "settings", s.XMLName.Local)
		for _, c := range s.Children {
			out[s.attr("pass")] = append(out[s.attr("pass")], c.attr("name"))
		}
	}
	return out
}

func component(root elem, pass, name string) *elem {
	for _, s := range root.Children {
		if s.attr("pass") != pass {
			continue
		}
		for i := range s.Children {
			if s.Children[i].attr("name") == name {
				return &s.Children[i]
			}
		}
	}
	return nil
}

func TestStructure(t *testing.T) {
	cfg := loadConfig(t)
	for _, c := range cases {
		t.Run(c.key+"-"+c.platform, func(t *testing.T) {
			k, doc := render(t, cfg, c.key, c.platform)
			win7 := k.Image.OS == "Windows 7"
			for _, b := range [][]byte{doc.XML, doc.Redacted} {
				root := parse(t, b)

				var passes []string
				for _, s := range root.Children {
					passes = append(passes, s.attr("pass"))
				}
				assert.Equal(t, Passes, passes)

				specialize := 5 // locales, SPP-UX, SQMApi, Shell-Setup, DNS-Client
				if win7 {
					specialize += 3 // RDP
				}
				if len(Commands(cfg, k, c.platform, "specialize", "synchronous")) > 0 {
					specialize++
				}
				// Each selected driver is named, in file order, by the
				// folder the builders place it in.
				var wantPaths, gotPaths []string
				for _, d := range cfg.Select(k, c.platform).Drivers {
					wantPaths = append(wantPaths, DriverPath(d))
				}
				if len(wantPaths) > 0 {
					specialize++
				}
				for _, p := range root.all("Path") {
					if strings.HasPrefix(p.Text, `C:\Windows\Temp\drivers\`) {
						gotPaths = append(gotPaths, p.Text)
					}
				}
				assert.Equal(t, wantPaths, gotPaths)
				counts := map[string]int{}
				for p, names := range components(t, root) {
					counts[p] = len(names)
				}
				assert.Equal(t, map[string]int{
					"windowsPE": 2, "offlineServicing": 1, "generalize": 1, "specialize": specialize,
					"oobeSystem": 2, "auditSystem": 2, "auditUser": 1,
				}, counts)

				arch := "amd64"
				if k.Image.Architecture == "x86" {
					arch = "x86"
				}
				for _, comp := range root.all("component") {
					assert.Equal(t, arch, comp.attr("processorArchitecture"))
					assert.Equal(t, "31bf3856ad364e35", comp.attr("publicKeyToken"))
					assert.Equal(t, "neutral", comp.attr("language"))
					assert.Equal(t, "nonSxS", comp.attr("versionScope"))
				}

				rdp := component(root, "specialize", "Microsoft-Windows-TerminalServices-LocalSessionManager")
				assert.Equal(t, c.key == "win7-32", rdp != nil, "RDP component only for win7-32")

				oobe := component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup").find("OOBE")
				require.NotNil(t, oobe)
				assert.Equal(t, win7, oobe.child("HideOnlineAccountScreens") == nil)
				assert.Equal(t, "3", oobe.child("ProtectYourPC").Text)

				dns := component(root, "specialize", "Microsoft-Windows-DNS-Client")
				require.NotNil(t, dns)
				assert.Equal(t, "false", dns.child("UseDomainNameDevolution").Text, "devolution: false stays false")
				assert.Equal(t, c.key+".mozilla.com", dns.child("DNSDomain").Text)
				assert.Nil(t, dns.child("DNSSuffixSearchOrder"), "suffixes: null is not written")

				setup := component(root, "windowsPE", "Microsoft-Windows-Setup")
				mod := setup.find("DiskConfiguration", "Disk", "ModifyPartitions", "ModifyPartition")
				require.NotNil(t, mod)
				assert.Equal(t, "0x27", mod.child("TypeID").Text)
				assert.Equal(t, "2", setup.find("ImageInstall", "OSImage", "InstallTo", "PartitionID").Text)
				assert.Equal(t, "false", setup.find("DynamicUpdate", "Enable").Text)

				shell := component(root, "specialize", "Microsoft-Windows-Shell-Setup")
				assert.Equal(t, "cib-0123456", shell.child("ComputerName").Text)
				auto := component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup").find("AutoLogon")
				assert.Equal(t, k.Image.Reboot, atoi(t, auto.child("LogonCount").Text))

				reseal := component(root, "oobeSystem", "Microsoft-Windows-Deployment").find("Reseal", "Mode")
				assert.Equal(t, k.Image.Reseal.Mode, reseal.Text)
				gen := component(root, "auditUser", "Microsoft-Windows-Deployment").find("Generalize", "Mode")
				assert.Equal(t, k.Image.Generalize.Mode, gen.Text)

				// Every command list in the document is numbered 1..n.
				for _, list := range []string{"RunSynchronous", "RunAsynchronous", "FirstLogonCommands", "LogonCommands"} {
					for _, l := range root.all(list) {
						for i, item := range l.Children {
							assert.Equal(t, i+1, atoi(t, item.child("Order").Text), "%s item %d", list, i)
						}
					}
				}
			}
		})
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, r := range s {
		require.True(t, r >= '0' && r <= '9', s)
		n = n*10 + int(r-'0')
	}
	return n
}

// TestCommandsMatchSelection checks that every selected command lands in
// the document exactly once, in its list.
func TestCommandsMatchSelection(t *testing.T) {
	cfg := loadConfig(t)
	k, doc := render(t, cfg, "win7-32", "azure")
	root := parse(t, doc.XML)
	sel := cfg.Select(k, "azure")
	total := len(sel.UnattendCommands)
	for _, p := range sel.Packages {
		total += len(p.Unattend)
	}
	n := 0
	for _, l := range []string{"RunSynchronousCommand", "RunAsynchronousCommand", "SynchronousCommand", "AsynchronousCommand"} {
		n += len(root.all(l))
	}
	assert.Equal(t, total, n)
	assert.Positive(t, total)

	sync := Commands(cfg, k, "azure", "auditUser", "synchronous")
	require.NotEmpty(t, sync)
	items := component(root, "auditUser", "Microsoft-Windows-Deployment").find("RunSynchronous").Children
	require.Len(t, items, len(sync))
	for i, c := range sync {
		assert.Equal(t, c.Command, items[i].child("Path").Text)
		if c.Reboot != "" {
			assert.Equal(t, c.Reboot, items[i].child("WillReboot").Text)
		}
	}
}

func intp(i int) *int { return &i }

// testConfig is a small configuration built in code, so that tests can set
// up priorities and places the real configuration does not have.
func testConfig(items ...config.UnattendItem) (*config.Config, *config.Key) {
	rule := config.TargetRule{Cloud: []string{"azure"}, OS: []string{"Windows 10"}, Architecture: []string{"x86-64"}, GPU: []bool{false}}
	cfg := &config.Config{}
	for _, it := range items {
		cfg.Shared.UnattendCommands = append(cfg.Shared.UnattendCommands, config.UnattendCommand{UnattendItem: it, Target: rule})
	}
	k := &config.Key{Name: "test", Image: &config.Image{
		OS: "Windows 10", Architecture: "x86-64", Language: "en-US", Hostname: "test-host", Reboot: 3,
	}}
	return cfg, k
}

func TestCommandOrderIsStable(t *testing.T) {
	cfg, k := testConfig(
		config.UnattendItem{Description: "a", Command: "a", Pass: "auditUser"},
		config.UnattendItem{Description: "b", Command: "b", Pass: "auditUser", Priority: intp(100)},
		config.UnattendItem{Description: "c", Command: "c", Pass: "auditUser"},
		config.UnattendItem{Description: "d", Command: "d", Pass: "auditUser", Priority: intp(100)},
		config.UnattendItem{Description: "e", Command: "e", Pass: "auditUser", Priority: intp(500)},
		config.UnattendItem{Description: "f", Command: "f", Pass: "auditUser", Synchronicity: "asynchronous"},
		config.UnattendItem{Description: "g", Command: "g"},
		config.UnattendItem{Description: "h", Command: "h", Priority: intp(1)},
	)
	cfg.Shared.Packages = []config.Package{{
		Name:     "pkg",
		Unattend: []config.UnattendItem{{Description: "p", Command: "p", Pass: "auditUser", Priority: intp(100)}},
		Target:   cfg.Shared.UnattendCommands[0].Target,
	}}

	got := Commands(cfg, k, "azure", "auditUser", "synchronous")
	var desc []string
	for i, c := range got {
		desc = append(desc, c.Description)
		assert.Equal(t, i+1, c.Order)
	}
	// Priority 100 first in selection order (commands, then packages),
	// then the 500s (default or explicit) in selection order.
	assert.Equal(t, []string{"b", "d", "p", "a", "c", "e"}, desc)

	async := Commands(cfg, k, "azure", "auditUser", "asynchronous")
	require.Len(t, async, 1)
	assert.Equal(t, Command{Order: 1, Description: "f", Command: "f", Pass: "auditUser", Synchronicity: "asynchronous", Priority: 500}, async[0])

	// Defaults: pass oobeSystem, synchronous.
	first := Commands(cfg, k, "azure", "oobeSystem", "synchronous")
	require.Len(t, first, 2)
	assert.Equal(t, "h", first[0].Description)
	assert.Equal(t, "g", first[1].Description)
	assert.Equal(t, 2, first[1].Order)

	doc, err := Render(cfg, k, Options{Platform: "azure", Password: fixedPassword(testPassword)})
	require.NoError(t, err)
	root := parse(t, doc.XML)
	var paths []string
	for _, c := range component(root, "auditUser", "Microsoft-Windows-Deployment").find("RunSynchronous").Children {
		paths = append(paths, c.child("Path").Text)
	}
	assert.Equal(t, []string{"b", "d", "p", "a", "c", "e"}, paths)
	assert.Nil(t, component(root, "specialize", "Microsoft-Windows-Deployment"), "no specialize commands, no component")
	assert.Nil(t, component(root, "specialize", "Microsoft-Windows-DNS-Client"), "no network, no DNS settings")
}

func TestPlacelessCommandIsAnError(t *testing.T) {
	for _, it := range []config.UnattendItem{
		{Description: "format the cache disk", Command: "x", Pass: "windowsPE"},
		{Description: "async specialize", Command: "x", Pass: "specialize", Synchronicity: "asynchronous"},
	} {
		cfg, k := testConfig(it)
		_, err := Render(cfg, k, Options{Platform: "azure", Password: fixedPassword(testPassword)})
		require.Error(t, err)
		assert.Contains(t, err.Error(), `"`+it.Description+`"`)
		assert.Contains(t, err.Error(), "oobeSystem or auditUser")
	}
}

func TestMarketplaceKeyIsAnError(t *testing.T) {
	k := &config.Key{Name: "market", Source: &config.MarketplaceSource{Platform: "azure"}}
	_, err := Render(&config.Config{}, k, Options{Platform: "azure", Password: fixedPassword(testPassword)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "marketplace")
}

func TestHostnameNeedsRevision(t *testing.T) {
	cfg, k := testConfig()
	k.Image.Hostname = "cib-sha"
	_, err := Render(cfg, k, Options{Platform: "azure", Password: fixedPassword(testPassword)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cib-sha")
}

func decodeObfuscated(t *testing.T, v string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(v)
	require.NoError(t, err)
	require.Zero(t, len(b)%2)
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

func TestObfuscation(t *testing.T) {
	cfg := loadConfig(t)
	k, doc := render(t, cfg, "win10-64", "azure")
	require.True(t, k.Image.Obfuscate)
	assert.Equal(t, testPassword, doc.Password)
	root := parse(t, doc.XML)

	admins := root.all("AdministratorPassword")
	require.Len(t, admins, 2) // oobeSystem and auditSystem
	for _, a := range admins {
		assert.Equal(t, "false", a.child("PlainText").Text)
		assert.Equal(t, testPassword+"AdministratorPassword", decodeObfuscated(t, a.child("Value").Text))
	}
	autos := root.all("AutoLogon")
	require.Len(t, autos, 2)
	for _, a := range autos {
		p := a.child("Password")
		assert.Equal(t, "false", p.child("PlainText").Text)
		assert.Equal(t, testPassword+"Password", decodeObfuscated(t, p.child("Value").Text))
	}
	assert.NotContains(t, string(doc.XML), testPassword, "obfuscated document holds no plain password")

	red := string(doc.Redacted)
	for _, secret := range []string{testPassword, Obfuscate(testPassword, "AdministratorPassword"), Obfuscate(testPassword, "Password")} {
		assert.NotContains(t, red, secret)
	}
	redRoot := parse(t, doc.Redacted)
	for _, a := range redRoot.all("Value") {
		assert.Equal(t, Redacted, a.Text)
	}
	assert.Len(t, redRoot.all("Value"), 4)
	// Apart from the password values, the two documents are the same.
	assert.Equal(t, strings.Count(string(doc.XML), "\n"), strings.Count(red, "\n"))
}

func TestPlainPassword(t *testing.T) {
	cfg, k := testConfig()
	k.Image.Obfuscate = false
	doc, err := Render(cfg, k, Options{Platform: "azure", Password: fixedPassword(testPassword)})
	require.NoError(t, err)
	root := parse(t, doc.XML)
	for _, v := range root.all("Password") {
		assert.Equal(t, testPassword, v.child("Value").Text)
		assert.Equal(t, "true", v.child("PlainText").Text)
	}
	for _, v := range root.all("AdministratorPassword") {
		assert.Equal(t, testPassword, v.child("Value").Text)
		assert.Equal(t, "true", v.child("PlainText").Text)
	}
	assert.NotContains(t, string(doc.Redacted), testPassword)
}

func TestObfuscateKnownValue(t *testing.T) {
	// "a" + "Password" in UTF-16LE, base64: computed independently.
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("a\x00P\x00a\x00s\x00s\x00w\x00o\x00r\x00d\x00")), Obfuscate("a", "Password"))
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		p, err := RandomPassword{}.Password()
		require.NoError(t, err)
		assert.Len(t, p, PasswordLength)
		assert.False(t, seen[p], "passwords repeat")
		seen[p] = true
		assert.True(t, strings.ContainsAny(p, lowers), p)
		assert.True(t, strings.ContainsAny(p, uppers), p)
		assert.True(t, strings.ContainsAny(p, digits), p)
		assert.True(t, strings.ContainsAny(p, symbols), p)
		for _, r := range p {
			assert.True(t, strings.ContainsRune(alphabet, r), p)
		}
		// XML-safe: escaping changes nothing.
		var b bytes.Buffer
		require.NoError(t, xml.EscapeText(&b, []byte(p)))
		assert.Equal(t, p, b.String())
		assert.False(t, strings.ContainsAny(p, `&<>"'%^|!()`), p)
	}
}
