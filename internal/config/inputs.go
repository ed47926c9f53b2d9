package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

// DiskBuilderFormat is the version of what the disk-image builder does
// with its inputs. Bumping it rebuilds every disk image.
const DiskBuilderFormat = 1

// Inputs are the canonical inputs of one build: a JSON-like tree of
// map[string]any, []any, string, json.Number and bool, with field names as
// the YAML writes them and unset values left out, so that adding an optional
// field to cib does not change existing fingerprints.
type Inputs map[string]any

// Canonical is the canonical JSON encoding: object keys sorted, no HTML
// escaping, no insignificant white space.
func (in Inputs) Canonical() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any(in)); err != nil {
		// Inputs only ever hold JSON-safe values built by tree().
		panic(fmt.Sprintf("config: canonical inputs: %v", err))
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// Fingerprint is "sha256:" and the hex SHA-256 of the canonical encoding.
func (in Inputs) Fingerprint() string {
	sum := sha256.Sum256(in.Canonical())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseInputs reads canonical inputs back, as stored in a build record.
func ParseInputs(data []byte) (Inputs, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("read canonical inputs: %w", err)
	}
	return Inputs(m), nil
}

// DiskInputs are the inputs of key k's disk image for platform: the image
// and iso sections, every shared entry that applies (by the target rule),
// the product key for the os/edition, and the builder format version.
func (c *Config) DiskInputs(k *Key, platform string) Inputs {
	s := c.Select(k, platform)
	in := Inputs{
		"format":   json.Number(fmt.Sprint(DiskBuilderFormat)),
		"platform": platform,
		"image":    tree(reflect.ValueOf(k.Image)),
		"iso":      tree(reflect.ValueOf(k.ISO)),
	}
	put := func(name string, v any) {
		if t := tree(reflect.ValueOf(v)); t != nil {
			in[name] = t
		}
	}
	put("drivers", s.Drivers)
	put("packages", s.Packages)
	put("unattend-commands", s.UnattendCommands)
	put("disable-windows-service", s.DisabledServices)
	if s.ProductKey != "" {
		// Only a digest: inputs are stored on the records branch, and a
		// product key other than a public KMS client key is a secret.
		sum := sha256.Sum256([]byte(s.ProductKey))
		in["product-key"] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return in
}

// MachineInputs are the inputs of key k's machine image in target t: the
// disk image fingerprint (or the marketplace source), the target's
// bootstrap and tag sections, and the machine settings baked into the image
// (Hyper-V generation and the OS disk). diskFingerprint is the fingerprint
// of DiskInputs(k, t.Platform), passed in because the caller computes it
// once per key, not once per target; it is ignored for marketplace keys.
func (c *Config) MachineInputs(k *Key, t *Target, diskFingerprint string) Inputs {
	in := Inputs{}
	if k.Source != nil {
		in["source"] = tree(reflect.ValueOf(k.Source))
	} else {
		in["disk-image"] = diskFingerprint
	}
	baked := map[string]any{}
	if t.Machine.HyperV != "" {
		baked["hyperv"] = t.Machine.HyperV
	}
	if len(t.Disk) > 0 {
		if d := tree(reflect.ValueOf(t.Disk[0])); d != nil {
			baked["os-disk"] = d
		}
	}
	if len(baked) > 0 {
		in["machine"] = baked
	}
	if v := tree(reflect.ValueOf(t.Tag)); v != nil {
		in["tag"] = v
	}
	if v := tree(reflect.ValueOf(t.Bootstrap)); v != nil {
		in["bootstrap"] = v
	}
	return in
}

// PoolInputs are the inputs of pool p's worker-manager configuration: the
// pool's own settings and, per target group of the pool on the platform,
// the machine image fingerprint (from machineFingerprint) and the settings a
// launch configuration takes from the target.
func (c *Config) PoolInputs(k *Key, p Pool, platform string, machineFingerprint func(*Target) string) Inputs {
	in := Inputs{"pool": tree(reflect.ValueOf(p))}
	targets := map[string]any{}
	for _, t := range k.PoolTargets(p) {
		if t.Platform != platform {
			continue
		}
		targets[t.Group] = map[string]any{
			"machine-image": machineFingerprint(t),
			"region":        t.RegionName(),
			"vm-size":       t.Machine.VMSize(),
		}
	}
	in["targets"] = targets
	return in
}

// tree turns a configuration value into its canonical tree, or nil when it
// is unset.
func tree(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Invalid:
		return nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return tree(v.Elem())
	case reflect.Struct:
		if c, ok := v.Interface().(Command); ok {
			if c.Format == "" {
				return nilIfEmpty(c.Text)
			}
		}
		m := map[string]any{}
		addFields(v, m)
		if len(m) == 0 {
			return nil
		}
		return m
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = tree(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return nil
		}
		m := map[string]any{}
		for _, k := range v.MapKeys() {
			if t := tree(v.MapIndex(k)); t != nil {
				m[k.String()] = t
			}
		}
		return m
	case reflect.String:
		return nilIfEmpty(v.String())
	case reflect.Bool:
		if !v.Bool() {
			return nil
		}
		return true
	case reflect.Int:
		if v.Int() == 0 {
			return nil
		}
		return json.Number(fmt.Sprint(v.Int()))
	}
	panic(fmt.Sprintf("config: no canonical form for %s", v.Type()))
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func addFields(v reflect.Value, m map[string]any) {
	for name, idx := range fieldsOf(v.Type()) {
		fv := v.FieldByIndex(idx)
		// A set pointer to false or zero is kept: it is "set", unlike nil.
		if fv.Kind() == reflect.Pointer && !fv.IsNil() && fv.Elem().Kind() != reflect.Struct {
			switch e := fv.Elem(); e.Kind() {
			case reflect.Bool:
				m[name] = e.Bool()
				continue
			case reflect.Int:
				m[name] = json.Number(fmt.Sprint(e.Int()))
				continue
			case reflect.String:
				m[name] = e.String()
				continue
			}
		}
		if tv := tree(fv); tv != nil {
			m[name] = tv
		}
	}
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
