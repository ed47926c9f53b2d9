package config

import "slices"

// Applies is the target rule of shared entries: the entry applies to a
// build when its target lists the image's os, architecture and gpu and the
// platform being built for. withGPU is false for disable-windows-service,
// whose entries do not depend on the GPU.
func (r TargetRule) Applies(im *Image, platform string, withGPU bool) bool {
	return slices.Contains(r.OS, im.OS) &&
		slices.Contains(r.Architecture, im.Architecture) &&
		slices.Contains(r.Cloud, platform) &&
		(!withGPU || slices.Contains(r.GPU, im.GPU))
}

// Selected are the shared entries that apply to one disk image build, in
// file order.
type Selected struct {
	Drivers          []Driver
	Packages         []Package
	UnattendCommands []UnattendCommand
	DisabledServices []DisabledService
	// ProductKey is empty when product-keys.yaml has none for the image.
	ProductKey string
}

// Select applies the target rule to every shared entry for key k's image on
// platform. It returns an empty selection for a marketplace key.
func (c *Config) Select(k *Key, platform string) Selected {
	var s Selected
	im := k.Image
	if im == nil {
		return s
	}
	for _, d := range c.Shared.Drivers {
		if d.Target.Applies(im, platform, true) {
			s.Drivers = append(s.Drivers, d)
		}
	}
	for _, p := range c.Shared.Packages {
		if p.Target.Applies(im, platform, true) {
			s.Packages = append(s.Packages, p)
		}
	}
	for _, u := range c.Shared.UnattendCommands {
		if u.Target.Applies(im, platform, true) {
			s.UnattendCommands = append(s.UnattendCommands, u)
		}
	}
	for _, d := range c.Shared.DisabledServices {
		if d.Target.Applies(im, platform, false) {
			s.DisabledServices = append(s.DisabledServices, d)
		}
	}
	s.ProductKey = c.Shared.ProductKeys[im.OS][im.Edition]
	return s
}
