package unattend

import (
	"strconv"
	"strings"

	"github.com/cib-project/cib/internal/config"
)

// DriverRoot is the folder of the Windows volume (no drive letter) under
// which the disk-image builders place the selected drivers, each in a
// folder of its own name. The builders and the document must agree on it,
// so both take it from here.
const DriverRoot = `Windows\Temp\drivers`

// DriverFolder is the volume path the builders put driver d in: the
// driver's file, or the contents of its archive when extract is set.
func DriverFolder(d config.Driver) string { return DriverRoot + `\` + d.Name }

// DriverPath is the folder unattend.xml names for driver d: its folder on
// the running system plus the configured infpath, where the .inf is.
func DriverPath(d config.Driver) string {
	p := `C:\` + DriverFolder(d)
	if inf := strings.Trim(strings.ReplaceAll(d.InfPath, "/", `\`), `\`); inf != "" {
		p += `\` + inf
	}
	return p
}

// driverPaths is the PnP customisation that makes Windows install the
// placed drivers. An image applied to a disk (rather than installed by
// setup.exe) first processes unattend.xml in the specialize pass, where
// Microsoft-Windows-PnpCustomizationsNonWinPE is valid; the
// offlineServicing pass does not run on such an image. nil when no driver
// is selected.
func (r renderer) driverPaths() *node {
	if len(r.sel.Drivers) == 0 {
		return nil
	}
	paths := el("DriverPaths")
	for i, d := range r.sel.Drivers {
		paths.add(listItem(el("PathAndCredentials", leaf("Path", DriverPath(d)))).
			attr("wcm:keyValue", strconv.Itoa(i+1)))
	}
	return r.component("Microsoft-Windows-PnpCustomizationsNonWinPE", paths)
}
