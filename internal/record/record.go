// Package record keeps build records on a git branch of the project's own
// repository, one JSON file per record.
//
// A git branch rather than a cloud table is the store because the plan must
// run with no network and no credentials (a pull request from a fork is
// planned too), and because the branch's history is an audit log of every
// build for free. Records are read from objects already in the local
// repository and written as commits built directly in the object store, so
// neither side ever touches the work tree, the index or HEAD.
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind says which stage produced a record; it decides which identity fields
// the record needs and where it lives on the branch.
type Kind string

// The kinds of build record, one per stage whose output later stages or
// later plans depend on.
const (
	Disk    Kind = "disk"
	Machine Kind = "machine"
	Pool    Kind = "pool"
)

// Image is what a build left behind, so that a later stage or a later plan
// can find it without asking the cloud.
type Image struct {
	Name     string `json:"name,omitempty"`
	Location string `json:"location,omitempty"` // blob URL, image resource ID or local path
}

// Record is one successful build: its identity (kind, environment, platform
// and key/group/pool), the fingerprint the plan compares against to decide
// whether to build again, and enough provenance to audit it.
type Record struct {
	Kind        Kind            `json:"kind"`
	Environment string          `json:"environment"`
	Platform    string          `json:"platform"`
	Key         string          `json:"key,omitempty"`   // disk, machine
	Group       string          `json:"group,omitempty"` // machine: target resource group
	Pool        string          `json:"pool,omitempty"`  // pool: "domain/variant"
	Fingerprint string          `json:"fingerprint"`     // "sha256:<hex>"
	Inputs      json.RawMessage `json:"inputs"`          // canonical inputs (JSON object) the fingerprint was computed over
	Revision    string          `json:"revision"`        // full commit SHA of the source repository
	Image       Image           `json:"image"`
	Time        time.Time       `json:"time"` // UTC, RFC 3339
	RunURL      string          `json:"run_url,omitempty"`
}

// recordsDir is the top directory of every record on the branch; anything
// else on the branch (a README, say) is left alone by Read.
const recordsDir = "records"

// Path is where the record lives on the branch, so that one record per
// identity exists and a rewrite replaces it:
//
//	records/<environment>/<platform>/disk/<key>.json
//	records/<environment>/<platform>/machine/<key>/<group>.json
//	records/<environment>/<platform>/pool/<domain>/<variant>.json
//
// The path is built verbatim from the identity fields (no cleaning), so that
// Validate, not a silent rewrite, deals with a field such as "../x".
func (r Record) Path() string {
	return recordsDir + "/" + r.Environment + "/" + r.Platform + "/" + string(r.Kind) + "/" + r.name() + ".json"
}

// name is the kind-specific part of the path, also used in commit messages.
func (r Record) name() string {
	switch r.Kind {
	case Machine:
		return r.Key + "/" + r.Group
	case Pool:
		return r.Pool
	default:
		return r.Key
	}
}

// identity names the record in commit messages and errors.
func (r Record) identity() string {
	return r.Environment + "/" + r.Platform + "/" + r.name()
}

// Validate reports the first missing or malformed identity field, naming it,
// because a bad identity would put the record at the wrong path (or outside
// records/ altogether) and the plan would never find it again.
func (r Record) Validate() error {
	if err := r.validate(); err != nil {
		if r.Kind == Disk || r.Kind == Machine || r.Kind == Pool {
			return fmt.Errorf("invalid %s record: %w", r.Kind, err)
		}
		return fmt.Errorf("invalid record: %w", err)
	}
	return nil
}

func (r Record) validate() error {
	switch r.Kind {
	case Disk, Machine, Pool:
	case "":
		return errors.New("kind: missing (want disk, machine or pool)")
	default:
		return fmt.Errorf("kind: unknown kind %q (want disk, machine or pool)", r.Kind)
	}
	if err := component("environment", r.Environment); err != nil {
		return err
	}
	if err := component("platform", r.Platform); err != nil {
		return err
	}
	// A field the kind does not use is rejected rather than ignored: it would
	// not be part of the path, so two records differing only there would
	// silently overwrite each other.
	switch r.Kind {
	case Disk:
		if err := component("key", r.Key); err != nil {
			return err
		}
		if err := unused("group", r.Group); err != nil {
			return err
		}
		if err := unused("pool", r.Pool); err != nil {
			return err
		}
	case Machine:
		if err := component("key", r.Key); err != nil {
			return err
		}
		if err := component("group", r.Group); err != nil {
			return err
		}
		if err := unused("pool", r.Pool); err != nil {
			return err
		}
	case Pool:
		if err := unused("key", r.Key); err != nil {
			return err
		}
		if err := unused("group", r.Group); err != nil {
			return err
		}
		domain, variant, ok := strings.Cut(r.Pool, "/")
		if !ok {
			if r.Pool == "" {
				return errors.New(`pool: missing (want "domain/variant")`)
			}
			return fmt.Errorf(`pool: %q is not "domain/variant"`, r.Pool)
		}
		if err := component("pool domain", domain); err != nil {
			return err
		}
		if err := component("pool variant", variant); err != nil {
			return err
		}
	}
	if err := fingerprint(r.Fingerprint); err != nil {
		return err
	}
	if strings.TrimSpace(r.Revision) == "" {
		return errors.New("revision: missing (want the full commit SHA of the source repository)")
	}
	return nil
}

// component checks one path component. Besides "/" and "..", which would
// move the record elsewhere on the branch, it refuses names git cannot hold
// in a tree or that mean something else on Windows runners.
func component(field, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s: missing", field)
	case v == "." || v == "..":
		return fmt.Errorf("%s: %q is not a valid path component", field, v)
	case strings.ContainsAny(v, `/\`):
		return fmt.Errorf("%s: %q must not contain a slash or backslash", field, v)
	case strings.ContainsFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		return fmt.Errorf("%s: %q must not contain control characters", field, v)
	}
	return nil
}

func unused(field, v string) error {
	if v != "" {
		return fmt.Errorf("%s: must be empty for this kind, got %q", field, v)
	}
	return nil
}

func fingerprint(v string) error {
	hex, ok := strings.CutPrefix(v, "sha256:")
	if !ok {
		if v == "" {
			return errors.New(`fingerprint: missing (want "sha256:" and 64 hex digits)`)
		}
		return fmt.Errorf(`fingerprint: %q does not start with "sha256:"`, v)
	}
	if len(hex) != 64 || strings.ContainsFunc(hex, func(c rune) bool {
		return !('0' <= c && c <= '9' || 'a' <= c && c <= 'f')
	}) {
		return fmt.Errorf(`fingerprint: %q is not "sha256:" and 64 lower-case hex digits`, v)
	}
	return nil
}

// check is Validate plus what Write needs to store the record and Read needs
// to trust it: the plan diffs Inputs to explain a rebuild, so they must be an
// object.
func (r Record) check() error {
	if err := r.Validate(); err != nil {
		return err
	}
	trimmed := bytes.TrimSpace(r.Inputs)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return fmt.Errorf("invalid %s record %s: inputs: want a JSON object", r.Kind, r.identity())
	}
	return nil
}

// encode renders the file stored on the branch. Indented, and without
// HTML escaping, because people read the branch as an audit log and run URLs
// contain "&".
func (r Record) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.Path(), err)
	}
	return buf.Bytes(), nil
}

// decode parses a file from the branch. Inputs come back compact, so that
// canonical (compact) inputs given to Write are read back byte for byte
// despite the indentation on the branch.
func decode(data []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, err
	}
	if len(r.Inputs) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, r.Inputs); err != nil {
			return Record{}, err
		}
		r.Inputs = buf.Bytes()
	}
	return r, nil
}
