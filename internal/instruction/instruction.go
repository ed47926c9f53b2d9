package instruction

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Flag is a canonical flag name. It is a distinct type so that the plan cannot
// confuse a flag with a key or a pool name, and so that the JSON output shows
// the very string a user writes in a commit message.
type Flag string

// The flags a commit message may carry, one per line. The names are those of
// the seed project, kept so that habits and old commit messages keep working;
// decision.md §1 gives what each one means here.
const (
	// NoCI runs nothing; every other instruction is still checked and reported.
	NoCI Flag = "no-ci"
	// NoActionsCI is NoCI under the name of the CI this project runs on.
	NoActionsCI Flag = "no-actions-ci"
	// NoTaskclusterCI is the seed's name for stopping image builds: it skips every
	// image-build, pool and verify job, while prepare and purge still run.
	NoTaskclusterCI Flag = "no-taskcluster-ci"
	// NoTravisCI is the seed's name for skipping the job that ensures the build
	// infrastructure exists (here: the prepare job).
	NoTravisCI Flag = "no-travis-ci"
	// PoolDeploy redeploys worker pools from the most recently built images
	// without building any image, for configuration-only changes.
	PoolDeploy Flag = "pool-deploy"
	// OverwriteDiskImage rebuilds disk images whose inputs did not change, for
	// when the inputs are the same but the world (an ISO mirror, a driver) is not.
	OverwriteDiskImage Flag = "overwrite-disk-image"
	// OverwriteMachineImage rebuilds machine images whose inputs did not change,
	// replacing the existing image of the same name.
	OverwriteMachineImage Flag = "overwrite-machine-image"
	// DisableCleanup keeps a failed build's cloud resources so a human can look
	// at them; they still expire and are purged later.
	DisableCleanup Flag = "disable-cleanup"
	// EnableSnapshotCopy distributes a machine image to other regions by copying
	// it rather than rebuilding it in each region.
	EnableSnapshotCopy Flag = "enable-snapshot-copy"
	// PurgeTaskclusterResources extends the purge to the worker manager's own
	// resource groups, which leak resources the worker manager fails to clean.
	PurgeTaskclusterResources Flag = "purge-taskcluster-resources"
	// NoVerify skips the verification jobs.
	NoVerify Flag = "no-verify"
)

// AllFlags lists every flag in the order of the spec's table, so that help
// text, dispatch inputs and tests enumerate flags the same way. The parser
// keeps its own copy: changing this slice does not change what is parsed.
var AllFlags = []Flag{
	NoCI, NoActionsCI, NoTaskclusterCI, NoTravisCI, PoolDeploy,
	OverwriteDiskImage, OverwriteMachineImage, DisableCleanup,
	EnableSnapshotCopy, PurgeTaskclusterResources, NoVerify,
}

// knownFlags is the parser's private copy of AllFlags.
var knownFlags = [...]Flag{
	NoCI, NoActionsCI, NoTaskclusterCI, NoTravisCI, PoolDeploy,
	OverwriteDiskImage, OverwriteMachineImage, DisableCleanup,
	EnableSnapshotCopy, PurgeTaskclusterResources, NoVerify,
}

// FilterType names what a filter narrows. Its values are the words written in
// the instruction line ("include keys: ..."), so they double as JSON keys.
type FilterType string

// The four filter types of the spec; each narrows one dimension of the plan.
const (
	// Keys narrows the image keys (one per image configuration in config/).
	Keys FilterType = "keys"
	// Pools narrows worker pools; a key is selected when one of its pools is.
	Pools FilterType = "pools"
	// Regions narrows the regional targets.
	Regions FilterType = "regions"
	// Environments narrows the deployment environments.
	Environments FilterType = "environments"
)

// FilterTypes lists the filter types in the order the spec names them, which
// is also the order dispatch inputs are read in.
var FilterTypes = []FilterType{Keys, Pools, Regions, Environments}

// knownTypes is the parser's private copy of FilterTypes.
var knownTypes = [...]FilterType{Keys, Pools, Regions, Environments}

// singular names one item of a filter type in messages ("unknown key").
func (t FilterType) singular() string { return strings.TrimSuffix(string(t), "s") }

// Mode says whether a filter keeps or drops the values it lists.
type Mode string

// The two filter modes, spelled as in the instruction line.
const (
	// Include keeps only the listed values.
	Include Mode = "include"
	// Exclude keeps everything but the listed values.
	Exclude Mode = "exclude"
)

// Filter is one include or exclude line. Unknown pools and regions stay in
// Values on purpose: they match nothing, which is what a user who wrote
// "include pools: none" wanted.
type Filter struct {
	Mode   Mode     `json:"mode"`
	Values []string `json:"values"` // normalized, in the order written, duplicates removed
	Line   int      `json:"-"`      // 1-based line in the message (0 when from dispatch inputs)
}

// Matches reports whether a value passes the filter. The value must already be
// normalized the way Values are (lower case; regions through NormalizeRegion),
// because the filter does not know which dimension it is applied to.
func (f Filter) Matches(value string) bool {
	in := slices.Contains(f.Values, value)
	if f.Mode == Exclude {
		return !in
	}
	return in
}

// Severity separates what stops the plan (Error) from what only deserves a
// look (Warning).
type Severity string

// The two severities. An error means nothing runs; a warning never changes
// what runs.
const (
	// Error: the instructions cannot be followed as written; nothing runs.
	Error Severity = "error"
	// Warning: the instructions can be followed, but probably not as meant.
	Warning Severity = "warning"
)

// Diagnostic is one problem with one line, worded for the person who wrote
// the commit message: what is wrong and what to write instead.
type Diagnostic struct {
	Line     int      `json:"line"`            // 1-based line of the message; for dispatch inputs the synthetic line number
	Severity Severity `json:"severity"`        // error or warning
	Message  string   `json:"message"`         // says what is wrong AND what to do; no line number of its own inside
	Text     string   `json:"text"`            // the offending line, trimmed
	Input    string   `json:"input,omitempty"` // dispatch input name (e.g. "keys", "pool-deploy") when from workflow_dispatch
}

// String renders the diagnostic on one line for logs and terminals, pointing
// at the message line or, for a manual run, at the input that was wrong.
func (d Diagnostic) String() string {
	where := fmt.Sprintf("line %d", d.Line)
	if d.Input != "" {
		where = "input " + d.Input
	}
	return fmt.Sprintf("%s: %s: %s (%q)", where, d.Severity, d.Message, d.Text)
}

// Instructions is everything a commit message asks of the plan. The slices and
// maps are never nil so that JSON consumers see [] and {} rather than null.
type Instructions struct {
	Flags       []Flag                `json:"flags"`       // sorted (by string), unique; never nil (empty slice)
	Filters     map[FilterType]Filter `json:"filters"`     // only the types given; never nil
	Diagnostics []Diagnostic          `json:"diagnostics"` // sorted by line, then errors before warnings; never nil
	Skip        Flag                  `json:"skip"`        // "" or the no-ci/no-actions-ci flag that stopped everything (first written)
	FlagLines   map[Flag]int          `json:"-"`           // line where each flag was first written (0 when from dispatch inputs)
}

// Has reports whether the flag was given, so callers need not search Flags.
func (i Instructions) Has(f Flag) bool { return slices.Contains(i.Flags, f) }

// HasErrors reports whether any diagnostic is an error: the plan must then run
// nothing and say why.
func (i Instructions) HasErrors() bool {
	return slices.ContainsFunc(i.Diagnostics, func(d Diagnostic) bool { return d.Severity == Error })
}

// Filter returns the filter of a type and whether one was given; an absent
// filter means "everything the configuration defines".
func (i Instructions) Filter(t FilterType) (Filter, bool) {
	f, ok := i.Filters[t]
	return f, ok
}

// Vocabulary is what the configuration knows, so that the parser can tell a
// typo from a real name. Values must already be normalized: keys, pools and
// environments lower-case, regions through NormalizeRegion.
type Vocabulary struct {
	Keys, Pools, Regions, Environments []string
}

// of returns the known values of a filter type.
func (v Vocabulary) of(t FilterType) []string {
	switch t {
	case Keys:
		return v.Keys
	case Pools:
		return v.Pools
	case Regions:
		return v.Regions
	default:
		return v.Environments
	}
}

// NormalizeRegion removes all white space and lower-cases, because Azure
// accepts both display names ("North Central US") and names ("northcentralus")
// and users write either.
func NormalizeRegion(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c == ' ' || (c >= '\t' && c <= '\r') || (c >= 'A' && c <= 'Z') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if !unicode.IsSpace(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
