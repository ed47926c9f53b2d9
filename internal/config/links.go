package config

import (
	"strconv"
	"strings"
)

// TargetPools returns the pools of k that target t belongs to: the pools it
// names explicitly, or else, by the seed's rule, the pools of its platform
// whose domain ends its group name ("rg-east-us-gecko-t" → gecko-t/*).
func (k *Key) TargetPools(t *Target) []Pool {
	var out []Pool
	for _, p := range k.Pools() {
		if len(t.Pools) > 0 {
			for _, id := range t.Pools {
				if id == p.ID() {
					out = append(out, p)
				}
			}
			continue
		}
		if p.Platform != "" && p.Platform != t.Platform {
			continue
		}
		if strings.HasSuffix(t.Group, "-"+p.Domain) {
			out = append(out, p)
		}
	}
	return out
}

// PoolTargets returns the targets of k that belong to pool p.
func (k *Key) PoolTargets(p Pool) []*Target {
	var out []*Target
	for i := range k.Targets {
		t := &k.Targets[i]
		for _, tp := range k.TargetPools(t) {
			if tp.ID() == p.ID() {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// VMSize is the Azure VM size of the build machine: Size when given, else
// Format with {0} replaced by CPU (Standard_DS{0}_v2 with 3 → Standard_DS3_v2).
func (m Machine) VMSize() string {
	if m.Size != "" {
		return m.Size
	}
	return strings.ReplaceAll(m.Format, "{0}", strconv.Itoa(m.CPU))
}

// RegionName is the target's region normalized ("East US 2" → eastus2).
func (t *Target) RegionName() string { return NormalizeRegion(t.Region) }

// Regions are the target's build region followed by the other regions its
// image is distributed to, normalized, without repeats.
func (t *Target) Regions() []string {
	out := []string{t.RegionName()}
	seen := map[string]bool{out[0]: true}
	for _, l := range t.Locations {
		r := NormalizeRegion(l)
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}
