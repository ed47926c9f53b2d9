package record

import (
	"bytes"
	"sort"
)

// Set is an immutable collection of records, looked up by identity. It is
// immutable so that the plan can share one Set between goroutines and
// reports without copying; the zero value and a nil *Set are empty and
// usable, so a first run (no branch yet) needs no special case.
type Set struct {
	byPath map[string]Record
}

// NewSet builds a Set. Records are keyed by Path, so a later record with the
// same identity replaces an earlier one, as a later write on the branch does.
func NewSet(recs ...Record) *Set {
	s := &Set{byPath: make(map[string]Record, len(recs))}
	for _, r := range recs {
		s.byPath[r.Path()] = clone(r)
	}
	return s
}

// Disk returns the disk-image record for key in environment and platform.
func (s *Set) Disk(environment, platform, key string) (Record, bool) {
	return s.lookup(Record{Kind: Disk, Environment: environment, Platform: platform, Key: key})
}

// Machine returns the machine-image record for key built into resource
// group group in environment and platform.
func (s *Set) Machine(environment, platform, key, group string) (Record, bool) {
	return s.lookup(Record{Kind: Machine, Environment: environment, Platform: platform, Key: key, Group: group})
}

// Pool returns the pool-configuration record for pool ("domain/variant") in
// environment and platform.
func (s *Set) Pool(environment, platform, pool string) (Record, bool) {
	return s.lookup(Record{Kind: Pool, Environment: environment, Platform: platform, Pool: pool})
}

func (s *Set) lookup(id Record) (Record, bool) {
	if s == nil {
		return Record{}, false
	}
	r, ok := s.byPath[id.Path()]
	if !ok {
		return Record{}, false
	}
	return clone(r), true
}

// All returns every record sorted by Path, so that output built from it is
// stable from run to run.
func (s *Set) All() []Record {
	if s == nil {
		return nil
	}
	paths := make([]string, 0, len(s.byPath))
	for p := range s.byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out := make([]Record, len(paths))
	for i, p := range paths {
		out[i] = clone(s.byPath[p])
	}
	return out
}

// Len returns the number of records in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byPath)
}

// clone copies the one reference field, Inputs, so that no caller can change
// a record inside the Set through a slice it was handed.
func clone(r Record) Record {
	if r.Inputs != nil {
		r.Inputs = bytes.Clone(r.Inputs)
	}
	return r
}

// Source says where a Set was read from, so that the plan's output can show
// which state of the records branch it was decided on. Both fields are empty
// when the branch does not exist yet.
type Source struct {
	Ref    string `json:"ref"`
	Commit string `json:"commit"`
}
