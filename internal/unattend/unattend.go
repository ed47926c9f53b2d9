// Package unattend renders the answer file (unattend.xml) that drives a
// Windows disk image's first boots, as disk-image.md §2 describes. It is a
// pure function of the configuration plus a password source, so that
// `cib unattend` and the builders agree and golden files can test it.
package unattend

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cib-project/cib/internal/config"
)

// Namespaces of the document.
const (
	Namespace    = "urn:schemas-microsoft-com:unattend"
	WCMNamespace = "http://schemas.microsoft.com/WMIConfig/2002/State"
)

// Redacted replaces every password value in Document.Redacted.
const Redacted = "REDACTED"

// Passes in document order.
var Passes = []string{"windowsPE", "offlineServicing", "generalize", "specialize", "oobeSystem", "auditSystem", "auditUser"}

// Options are the inputs of Render that are not configuration.
type Options struct {
	// Platform is the cloud being built for (e.g. "azure"); it selects the
	// shared entries by the target rule.
	Platform string
	// Revision is the commit sha; hostname "cib-sha" becomes "cib-" plus
	// its first 7 characters, so that a VM names the commit it came from.
	Revision string
	// Password gives the Administrator password.
	Password PasswordSource
}

// Document is a rendered answer file.
type Document struct {
	// XML is the real document; it holds the password (obfuscated or not)
	// and must never be published.
	XML []byte
	// Redacted is the same document with every password value replaced by
	// "REDACTED", safe for artifacts.
	Redacted []byte
	// Password is the plain password, for masking in logs; never print it.
	Password string
}

// Render builds unattend.xml for the ISO-based key k on o.Platform.
func Render(cfg *config.Config, k *config.Key, o Options) (*Document, error) {
	if k == nil || k.Image == nil {
		name := ""
		if k != nil {
			name = k.Name
		}
		return nil, fmt.Errorf("key %q starts from a marketplace image and has no unattend.xml; only ISO-based keys (with image:) have one", name)
	}
	if o.Password == nil {
		return nil, errors.New("unattend: no password source")
	}
	im := k.Image
	hostname, err := computerName(im.Hostname, o.Revision)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", k.Name, err)
	}
	sel := cfg.Select(k, o.Platform)
	cmds := allCommands(sel)
	if err := checkPlaces(cmds); err != nil {
		return nil, fmt.Errorf("key %q on %s: %w", k.Name, o.Platform, err)
	}
	pw, err := o.Password.Password()
	if err != nil {
		return nil, fmt.Errorf("unattend: administrator password: %w", err)
	}
	r := renderer{im: im, sel: sel, cmds: cmds, hostname: hostname}
	actual := func(suffix string) (string, bool) {
		if im.Obfuscate {
			return Obfuscate(pw, suffix), false
		}
		return pw, true
	}
	redacted := func(string) (string, bool) { return Redacted, !im.Obfuscate }
	return &Document{
		XML:      marshal(r.document(actual)),
		Redacted: marshal(r.document(redacted)),
		Password: pw,
	}, nil
}

// computerName expands the "cib-sha" hostname placeholder.
func computerName(hostname, revision string) (string, error) {
	if hostname != "cib-sha" {
		return hostname, nil
	}
	if len(revision) < 7 {
		return "", fmt.Errorf("hostname cib-sha needs the commit sha (at least 7 characters), got %q", revision)
	}
	return "cib-" + revision[:7], nil
}

// passwordValue gives the Value and PlainText of a password element whose
// obfuscation suffix is suffix; Render calls the document builder once with
// the real values and once with redacted ones.
type passwordValue func(suffix string) (value string, plainText bool)

type renderer struct {
	im       *config.Image
	sel      config.Selected
	cmds     []Command
	hostname string
}

func (r renderer) document(pv passwordValue) *node {
	root := el("unattend").attr("xmlns", Namespace).attr("xmlns:wcm", WCMNamespace)
	passes := map[string][]*node{
		"windowsPE":        r.windowsPE(),
		"offlineServicing": {r.component("Microsoft-Windows-LUA-Settings", leaf("EnableLUA", "false"))},
		"generalize":       {r.component("Microsoft-Windows-Security-SPP", leaf("SkipRearm", "1"))},
		"specialize":       r.specialize(),
		"oobeSystem":       r.oobeSystem(pv),
		"auditSystem":      r.auditSystem(pv),
		"auditUser":        r.auditUser(),
	}
	for _, p := range Passes {
		var comps []*node
		for _, c := range passes[p] {
			if c != nil {
				comps = append(comps, c)
			}
		}
		// An empty settings element is legal but says nothing; leaving it
		// out keeps the document to what actually happens.
		if len(comps) > 0 {
			root.add(el("settings", comps...).attr("pass", p))
		}
	}
	return root
}

// component wraps settings in a component element with the attributes
// every component carries.
func (r renderer) component(name string, children ...*node) *node {
	arch := "x86"
	if r.im.Architecture == "x86-64" {
		arch = "amd64"
	}
	return el("component").
		attr("name", name).
		attr("processorArchitecture", arch).
		attr("publicKeyToken", "31bf3856ad364e35").
		attr("language", "neutral").
		attr("versionScope", "nonSxS").
		add(children...)
}

func boolText(b bool) string { return strconv.FormatBool(b) }

// optLeaf is a leaf only when text is set.
func optLeaf(name, text string) *node {
	if text == "" {
		return nil
	}
	return leaf(name, text)
}

// locales are the International-Core settings, all from image.language
// with en-US as the fallback UI language.
func (r renderer) locales() []*node {
	l := r.im.Language
	return []*node{
		leaf("InputLocale", l),
		leaf("SystemLocale", l),
		leaf("UILanguage", l),
		leaf("UILanguageFallback", "en-US"),
		leaf("UserLocale", l),
	}
}

func (r renderer) windowsPE() []*node {
	intl := r.component("Microsoft-Windows-International-Core-WinPE",
		el("SetupUILanguage", leaf("UILanguage", r.im.Language)))
	intl.add(r.locales()...)

	setup := r.component("Microsoft-Windows-Setup", r.diskConfiguration(),
		el("DynamicUpdate", leaf("Enable", "false"), leaf("WillShowUI", "Never")),
		el("ImageInstall", el("OSImage",
			el("InstallTo", leaf("DiskID", "0"), leaf("PartitionID", "2")),
			leaf("WillShowUI", "OnError"))),
		el("UserData",
			leaf("AcceptEula", "true"),
			leaf("FullName", r.im.Owner),
			leaf("Organization", r.im.Organization),
			r.productKey()))
	return []*node{intl, setup}
}

func (r renderer) productKey() *node {
	if r.sel.ProductKey == "" {
		return nil
	}
	return el("ProductKey", leaf("Key", r.sel.ProductKey), leaf("WillShowUI", "Never"))
}

func (r renderer) diskConfiguration() *node {
	if len(r.im.Disks) == 0 {
		return nil
	}
	dc := el("DiskConfiguration", leaf("WillShowUI", "OnError"))
	for _, d := range r.im.Disks {
		creates, modifies := el("CreatePartitions"), el("ModifyPartitions")
		for _, p := range d.Partitions {
			order := strconv.Itoa(p.ID)
			cp := listItem(el("CreatePartition", leaf("Order", order), leaf("Type", p.Type.Name)))
			if p.Extend {
				cp.add(leaf("Extend", "true"))
			} else {
				cp.add(leaf("Size", strconv.Itoa(p.Size)))
			}
			creates.add(cp)
			mp := listItem(el("ModifyPartition", leaf("Order", order)))
			// TypeID stays the literal text of the configuration: setup
			// wants "0x27", and a number would print as 39.
			mp.add(optLeaf("TypeID", p.Type.ID), leaf("PartitionID", order),
				optLeaf("Format", p.Format), optLeaf("Label", p.Label), optLeaf("Letter", p.Letter))
			if p.Active {
				mp.add(leaf("Active", "true"))
			}
			modifies.add(mp)
		}
		disk := listItem(el("Disk", leaf("DiskID", strconv.Itoa(d.ID)), leaf("WillWipeDisk", boolText(d.Wipe))))
		if len(creates.children) > 0 {
			disk.add(creates, modifies)
		}
		dc.add(disk)
	}
	return dc
}

func (r renderer) specialize() []*node {
	out := []*node{
		r.component("Microsoft-Windows-International-Core", r.locales()...),
		r.component("Microsoft-Windows-Security-SPP-UX", leaf("SkipAutoActivation", "true")),
		r.component("Microsoft-Windows-SQMApi", leaf("CEIPEnabled", "0")),
		r.component("Microsoft-Windows-Shell-Setup",
			leaf("ComputerName", r.hostname),
			optLeaf("ProductKey", r.sel.ProductKey),
			leaf("TimeZone", r.im.Timezone)),
		r.dnsClient(),
		r.driverPaths(),
	}
	if r.im.OS == "Windows 7" && r.im.RDP {
		out = append(out, r.rdp()...)
	}
	if cs := list(r.cmds, "specialize", "synchronous"); len(cs) > 0 {
		out = append(out, r.component("Microsoft-Windows-Deployment", runSynchronous(cs)))
	}
	return out
}

// dnsClient writes only the DNS settings the configuration sets: a nil
// pointer means "leave Windows' default", and false means false (the seed
// turned devolution false into true).
func (r renderer) dnsClient() *node {
	n := r.im.Network
	if n == nil {
		return nil
	}
	var settings []*node
	if d := n.DNS; d != nil {
		if d.Domain != nil {
			settings = append(settings, leaf("DNSDomain", *d.Domain))
		}
		if len(d.Suffixes) > 0 {
			order := el("DNSSuffixSearchOrder")
			for i, s := range d.Suffixes {
				order.add(listItem(leaf("DomainName", s)).attr("wcm:keyValue", strconv.Itoa(i+1)))
			}
			settings = append(settings, order)
		}
		if d.Devolution != nil {
			settings = append(settings, leaf("UseDomainNameDevolution", boolText(*d.Devolution)))
		}
	}
	ifaces := el("Interfaces")
	for _, it := range n.Interfaces {
		if it.DNS == nil {
			continue
		}
		d := it.DNS
		in := listItem(el("Interface", leaf("Identifier", it.Alias)))
		if d.Domain != nil {
			in.add(leaf("DNSDomain", *d.Domain))
		}
		if len(d.Search) > 0 {
			order := el("DNSServerSearchOrder")
			for i, s := range d.Search {
				order.add(listItem(leaf("IpAddress", s)).attr("wcm:keyValue", strconv.Itoa(i+1)))
			}
			in.add(order)
		}
		if d.Register != nil {
			in.add(leaf("EnableAdapterDomainNameRegistration", boolText(*d.Register)))
		}
		// dynamic says whether the adapter updates DNS dynamically; the
		// setting is its negation.
		if d.Dynamic != nil {
			in.add(leaf("DisableDynamicUpdate", boolText(!*d.Dynamic)))
		}
		if len(in.children) > 1 {
			ifaces.add(in)
		}
	}
	if len(ifaces.children) > 0 {
		settings = append(settings, ifaces)
	}
	if len(settings) == 0 {
		return nil
	}
	return r.component("Microsoft-Windows-DNS-Client", settings...)
}

// rdp enables Remote Desktop on Windows 7, whose images have it off and no
// other way in before the bootstrap runs.
func (r renderer) rdp() []*node {
	return []*node{
		r.component("Microsoft-Windows-TerminalServices-LocalSessionManager", leaf("fDenyTSConnections", "false")),
		r.component("Microsoft-Windows-TerminalServices-RDP-WinStationExtensions",
			leaf("SecurityLayer", "1"), leaf("UserAuthentication", "0")),
		r.component("Networking-MPSSVC-Svc", el("FirewallGroups",
			listItem(el("FirewallGroup",
				leaf("Active", "true"), leaf("Group", "Remote Desktop"), leaf("Profile", "all"))).
				attr("wcm:keyValue", "RemoteDesktop"))),
	}
}

func runSynchronous(cs []Command) *node {
	rs := el("RunSynchronous")
	for _, c := range cs {
		rs.add(listItem(el("RunSynchronousCommand",
			leaf("Order", strconv.Itoa(c.Order)),
			leaf("Path", c.Command),
			optLeaf("Description", c.Description),
			optLeaf("WillReboot", c.Reboot))))
	}
	return rs
}

func runAsynchronous(cs []Command) *node {
	ra := el("RunAsynchronous")
	for _, c := range cs {
		ra.add(listItem(el("RunAsynchronousCommand",
			leaf("Order", strconv.Itoa(c.Order)),
			leaf("Path", c.Command),
			optLeaf("Description", c.Description))))
	}
	return ra
}

// sysprepStep is a Reseal or Generalize element, nil when omitted or
// absent.
func sysprepStep(name string, s *config.SysprepStep) *node {
	if s == nil || s.Omit {
		return nil
	}
	return el(name, leaf("ForceShutdownNow", boolText(s.Shutdown)), optLeaf("Mode", s.Mode))
}

func password(name, suffix string, pv passwordValue) *node {
	v, plain := pv(suffix)
	return el(name, leaf("Value", v), leaf("PlainText", boolText(plain)))
}

func (r renderer) autoLogon(pv passwordValue) *node {
	return el("AutoLogon",
		password("Password", AutoLogonSuffix, pv),
		leaf("Enabled", "true"),
		leaf("LogonCount", strconv.Itoa(r.im.Reboot)),
		leaf("Username", "Administrator"))
}

func userAccounts(pv passwordValue) *node {
	return el("UserAccounts", password("AdministratorPassword", AdministratorPasswordSuffix, pv))
}

func (r renderer) oobeSystem(pv passwordValue) []*node {
	deploy := r.component("Microsoft-Windows-Deployment",
		el("ExtendOSPartition", leaf("Extend", "true")),
		sysprepStep("Reseal", r.im.Reseal))

	oobe := el("OOBE", leaf("HideEULAPage", "true"), leaf("HideOEMRegistrationScreen", "true"))
	// Windows 7 setup has no online account screens and rejects the setting.
	if r.im.OS != "Windows 7" {
		oobe.add(leaf("HideOnlineAccountScreens", "true"))
	}
	oobe.add(leaf("HideWirelessSetupInOOBE", "true"))
	if r.im.Network != nil {
		oobe.add(optLeaf("NetworkLocation", r.im.Network.Location))
	}
	oobe.add(leaf("SkipUserOOBE", "true"), leaf("SkipMachineOOBE", "true"), leaf("ProtectYourPC", "3"))

	shell := r.component("Microsoft-Windows-Shell-Setup", r.autoLogon(pv), oobe, userAccounts(pv),
		optLeaf("RegisteredOwner", r.im.Owner),
		optLeaf("RegisteredOrganization", r.im.Organization))
	if cs := list(r.cmds, "oobeSystem", "synchronous"); len(cs) > 0 {
		flc := el("FirstLogonCommands")
		for _, c := range cs {
			flc.add(listItem(el("SynchronousCommand",
				leaf("Order", strconv.Itoa(c.Order)),
				leaf("CommandLine", c.Command),
				optLeaf("Description", c.Description),
				leaf("RequiresUserInput", "false"))))
		}
		shell.add(flc)
	}
	if cs := list(r.cmds, "oobeSystem", "asynchronous"); len(cs) > 0 {
		lc := el("LogonCommands")
		for _, c := range cs {
			lc.add(listItem(el("AsynchronousCommand",
				leaf("Order", strconv.Itoa(c.Order)),
				leaf("CommandLine", c.Command),
				optLeaf("Description", c.Description))))
		}
		shell.add(lc)
	}
	return []*node{deploy, shell}
}

func (r renderer) auditSystem(pv passwordValue) []*node {
	return []*node{
		r.component("Microsoft-Windows-Shell-Setup", r.autoLogon(pv), userAccounts(pv)),
		r.component("Microsoft-Windows-Deployment",
			el("AuditComputerName", leaf("Name", r.hostname), leaf("MustReboot", "false")),
			el("ExtendOSPartition", leaf("Extend", "true"))),
	}
}

func (r renderer) auditUser() []*node {
	d := r.component("Microsoft-Windows-Deployment", sysprepStep("Generalize", r.im.Generalize))
	if cs := list(r.cmds, "auditUser", "synchronous"); len(cs) > 0 {
		d.add(runSynchronous(cs))
	}
	if cs := list(r.cmds, "auditUser", "asynchronous"); len(cs) > 0 {
		d.add(runAsynchronous(cs))
	}
	if len(d.children) == 0 {
		return nil
	}
	return []*node{d}
}
