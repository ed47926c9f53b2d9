// Package plan decides, before any cloud resource is touched, which jobs
// of every stage run and why: from the configuration, the commit's
// instructions and the records of earlier builds. It is pure: it reads no
// files, calls no cloud and keeps no state.
package plan

import (
	"encoding/json"
	"time"

	"github.com/cib-project/cib/internal/instruction"
)

// Stage is one stage of the pipeline.
type Stage string

// The stages, in pipeline order.
const (
	Prepare      Stage = "prepare"
	Purge        Stage = "purge"
	DiskImage    Stage = "disk-image"
	MachineImage Stage = "machine-image"
	PoolConfig   Stage = "pool-config"
	Verify       Stage = "verify"
)

// Stages lists every stage in pipeline order.
var Stages = []Stage{Prepare, Purge, DiskImage, MachineImage, PoolConfig, Verify}

// Plan is everything the pipeline will do for one commit, and why.
type Plan struct {
	// Revision is the commit being built.
	Revision string `json:"revision"`
	// Event is the GitHub event that asked for the plan, when there is one.
	Event string `json:"event,omitempty"`
	// DryRun is true for pull requests: nothing is built or deployed, and
	// purges only list what they would delete.
	DryRun       bool                     `json:"dry_run"`
	Records      RecordSource             `json:"records"`
	Instructions instruction.Instructions `json:"instructions"`
	Selection    Selection                `json:"selection"`
	Jobs         []Job                    `json:"jobs"`
}

// RecordSource says which build records the plan compared against.
type RecordSource struct {
	Ref    string `json:"ref"`
	Commit string `json:"commit"`
}

// Selection is what the plan covers after the instructions' filters, each
// list sorted.
type Selection struct {
	Keys         []string `json:"keys"`
	Pools        []string `json:"pools"`
	Regions      []string `json:"regions"`
	Environments []string `json:"environments"`
}

// Job is one matrix entry of one stage, with whether it runs and why.
type Job struct {
	ID          string `json:"id"`
	Stage       Stage  `json:"stage"`
	Environment string `json:"environment"`
	Platform    string `json:"platform,omitempty"`
	Key         string `json:"key,omitempty"`
	Group       string `json:"group,omitempty"`
	Pool        string `json:"pool,omitempty"`
	Region      string `json:"region,omitempty"`
	// Locations are the selected regions a machine image is distributed to.
	Locations []string `json:"locations,omitempty"`
	// Groups and Keys are the scope of a prepare job.
	Groups []string `json:"groups,omitempty"`
	Keys   []string `json:"keys,omitempty"`
	// Extra marks a purge of a worker manager's own group.
	Extra       bool   `json:"extra,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Needed      bool   `json:"needed"`
	Reason      string `json:"reason"`
	// Needs are the IDs of the needed jobs this one runs after.
	Needs []string `json:"needs,omitempty"`
}

// Record is what the plan needs to know of an earlier build.
type Record struct {
	Fingerprint string
	// Inputs are the canonical inputs recorded with the build, used to
	// explain what changed.
	Inputs   json.RawMessage
	Revision string
	Time     time.Time
}

// Records looks up earlier builds. Defined here, where it is used, so that
// the plan does not depend on how records are stored.
type Records interface {
	Disk(environment, platform, key string) (Record, bool)
	Machine(environment, platform, key, group string) (Record, bool)
	Pool(environment, platform, pool string) (Record, bool)
}

// NoRecords is a Records with nothing in it: the first run.
type NoRecords struct{}

// Disk finds nothing.
func (NoRecords) Disk(string, string, string) (Record, bool) { return Record{}, false }

// Machine finds nothing.
func (NoRecords) Machine(string, string, string, string) (Record, bool) { return Record{}, false }

// Pool finds nothing.
func (NoRecords) Pool(string, string, string) (Record, bool) { return Record{}, false }

// Count returns how many jobs of a stage run.
func (p *Plan) Count(s Stage) int {
	n := 0
	for _, j := range p.Jobs {
		if j.Stage == s && j.Needed {
			n++
		}
	}
	return n
}

// ExitInstructions is the exit code of a plan whose instructions have
// errors: nothing runs.
const ExitInstructions = 2

// Exit is the exit code the plan asks for: ExitInstructions when the
// instructions have errors and were going to run something, else 0.
func (p *Plan) Exit() int {
	if p.Instructions.HasErrors() && p.Instructions.Skip == "" {
		return ExitInstructions
	}
	return 0
}
