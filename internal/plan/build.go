package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/instruction"
)

// Options are the plan's inputs.
type Options struct {
	Config       *config.Config
	Instructions instruction.Instructions
	// Records are the earlier builds; nil means none.
	Records Records
	// RecordSource says where Records came from, for the output.
	RecordSource RecordSource
	// Revision is the commit being built.
	Revision string
	// Event is the GitHub event name, if any; pull_request plans are dry runs.
	Event string
}

// Vocabulary is what the configuration knows, for parsing instructions:
// every key, every pool and region of the planned platforms, every
// environment.
func Vocabulary(cfg *config.Config) instruction.Vocabulary {
	var v instruction.Vocabulary
	pools, regions := map[string]bool{}, map[string]bool{}
	for _, k := range cfg.Keys {
		v.Keys = append(v.Keys, k.Name)
		for _, p := range k.Pools() {
			pools[p.ID()] = true
		}
		for i := range k.Targets {
			for _, r := range k.Targets[i].Regions() {
				regions[r] = true
			}
		}
	}
	v.Pools = sortedSet(pools)
	v.Regions = sortedSet(regions)
	for _, e := range cfg.Settings.Environments {
		v.Environments = append(v.Environments, e.Name)
	}
	return v
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// selectedTarget is a target the plan covers, with the regions of it that
// passed the region filter.
type selectedTarget struct {
	key     *config.Key
	target  *config.Target
	pools   []string
	regions []string
}

type builder struct {
	o       Options
	cfg     *config.Config
	in      instruction.Instructions
	rec     Records
	plan    *Plan
	targets []selectedTarget
	keys    []*config.Key
	pools   map[string]config.Pool // selected pools by id
	poolKey map[string]*config.Key
	envs    []string
	// fingerprints computed once per key/target
	diskFP    map[string]string
	machineFP map[*config.Target]string
}

// Build makes the plan. It never fails: problems with the instructions are
// diagnostics in the plan, and a plan with instruction errors has no jobs.
func Build(o Options) *Plan {
	b := &builder{o: o, cfg: o.Config, in: o.Instructions, rec: o.Records,
		pools: map[string]config.Pool{}, poolKey: map[string]*config.Key{},
		diskFP: map[string]string{}, machineFP: map[*config.Target]string{}}
	if b.rec == nil {
		b.rec = NoRecords{}
	}
	b.plan = &Plan{
		Revision:     o.Revision,
		Event:        o.Event,
		DryRun:       o.Event == "pull_request",
		Records:      o.RecordSource,
		Instructions: o.Instructions,
		Jobs:         []Job{},
	}
	b.selectAll()
	if b.in.HasErrors() && b.in.Skip == "" {
		return b.plan
	}
	b.jobs()
	return b.plan
}

func (b *builder) platformPlanned(p string) bool {
	return slices.Contains(b.cfg.Settings.Platforms, p)
}

func (b *builder) selectAll() {
	keyF, hasKeyF := b.in.Filter(instruction.Keys)
	poolF, hasPoolF := b.in.Filter(instruction.Pools)
	regionF, hasRegionF := b.in.Filter(instruction.Regions)
	envF, hasEnvF := b.in.Filter(instruction.Environments)

	for _, e := range b.cfg.Settings.Environments {
		if !hasEnvF || envF.Matches(e.Name) {
			b.envs = append(b.envs, e.Name)
		}
	}

	regions := map[string]bool{}
	for _, k := range b.cfg.Keys {
		if hasKeyF && !keyF.Matches(k.Name) {
			continue
		}
		poolOK := map[string]bool{}
		for _, p := range k.Pools() {
			if p.Platform != "" && !b.platformPlanned(p.Platform) {
				continue
			}
			poolOK[p.ID()] = !hasPoolF || poolF.Matches(p.ID())
		}
		keySelected := false
		for i := range k.Targets {
			t := &k.Targets[i]
			if !b.platformPlanned(t.Platform) {
				continue
			}
			var pools []string
			for _, p := range k.TargetPools(t) {
				if poolOK[p.ID()] {
					pools = append(pools, p.ID())
				}
			}
			if hasPoolF && len(pools) == 0 {
				continue
			}
			var rs []string
			for _, r := range t.Regions() {
				if !hasRegionF || regionF.Matches(r) {
					rs = append(rs, r)
				}
			}
			if len(rs) == 0 {
				continue
			}
			b.targets = append(b.targets, selectedTarget{key: k, target: t, pools: pools, regions: rs})
			keySelected = true
			for _, r := range rs {
				regions[r] = true
			}
			for _, id := range pools {
				for _, p := range k.Pools() {
					if p.ID() == id {
						b.pools[id] = p
						b.poolKey[id] = k
					}
				}
			}
		}
		if keySelected {
			b.keys = append(b.keys, k)
		}
	}

	sel := &b.plan.Selection
	sel.Keys = []string{}
	for _, k := range b.keys {
		sel.Keys = append(sel.Keys, k.Name)
	}
	sort.Strings(sel.Keys)
	sel.Pools = sortedSet(mapKeys(b.pools))
	sel.Regions = sortedSet(regions)
	sel.Environments = append([]string{}, b.envs...)
	sort.Strings(sel.Environments)
}

func mapKeys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// flagNote is "flag (line N)" for reasons.
func (b *builder) flagNote(f instruction.Flag) string {
	if n := b.in.FlagLines[f]; n > 0 {
		return fmt.Sprintf("%s (line %d)", f, n)
	}
	return string(f)
}

// stopper returns the reason every job of the stage is skipped, if one is.
func (b *builder) stopper(s Stage) string {
	if b.in.Skip != "" {
		return "skip: " + b.flagNote(b.in.Skip) + ": nothing runs"
	}
	switch s {
	case DiskImage, MachineImage:
		if b.in.Has(instruction.NoTaskclusterCI) {
			return "skip: " + b.flagNote(instruction.NoTaskclusterCI) + " skips image builds"
		}
		if b.in.Has(instruction.PoolDeploy) {
			return "skip: " + b.flagNote(instruction.PoolDeploy) + " deploys existing images"
		}
	case PoolConfig, Verify:
		if b.in.Has(instruction.NoTaskclusterCI) {
			return "skip: " + b.flagNote(instruction.NoTaskclusterCI) + " skips pool deployment"
		}
		if s == Verify && b.in.Has(instruction.NoVerify) {
			return "skip: " + b.flagNote(instruction.NoVerify)
		}
	case Prepare:
		if b.in.Has(instruction.NoTravisCI) {
			return "skip: " + b.flagNote(instruction.NoTravisCI) + " skips preparing the build infrastructure"
		}
	}
	return ""
}

func (b *builder) add(j Job) *Job {
	b.plan.Jobs = append(b.plan.Jobs, j)
	return &b.plan.Jobs[len(b.plan.Jobs)-1]
}

func (b *builder) jobs() {
	for _, env := range b.envs {
		b.envJobs(env)
	}
	// Needs may only name jobs that run.
	needed := map[string]bool{}
	for _, j := range b.plan.Jobs {
		if j.Needed {
			needed[j.ID] = true
		}
	}
	for i := range b.plan.Jobs {
		j := &b.plan.Jobs[i]
		var keep []string
		for _, id := range j.Needs {
			if needed[id] && j.Needed {
				keep = append(keep, id)
			}
		}
		j.Needs = keep
	}
	order := map[Stage]int{}
	for i, s := range Stages {
		order[s] = i
	}
	sort.SliceStable(b.plan.Jobs, func(i, k int) bool {
		return order[b.plan.Jobs[i].Stage] < order[b.plan.Jobs[k].Stage]
	})
}

func (b *builder) envJobs(env string) {
	if len(b.targets) == 0 {
		return
	}
	// prepare
	groups := map[string]bool{}
	for _, st := range b.targets {
		groups[st.target.Group] = true
	}
	prep := Job{ID: "prepare/" + env, Stage: Prepare, Environment: env,
		Groups: sortedSet(groups), Keys: append([]string{}, b.plan.Selection.Keys...)}
	if r := b.stopper(Prepare); r != "" {
		prep.Reason = r
	} else {
		prep.Needed = true
		prep.Reason = fmt.Sprintf("prepare: make sure the build infrastructure of the selected targets exists and matches the configuration (%s)", plural(len(groups), "resource group"))
	}
	b.add(prep)

	// purge
	dry := ""
	if b.plan.DryRun {
		dry = " (dry run: list only)"
	}
	purgeSkip := ""
	if b.in.Skip != "" {
		purgeSkip = b.stopper(Purge)
	}
	for _, g := range sortedSet(groups) {
		j := Job{ID: "purge/" + env + "/" + g, Stage: Purge, Environment: env, Group: g}
		if purgeSkip != "" {
			j.Reason = purgeSkip
		} else {
			j.Needed = true
			j.Reason = "purge: orphaned and expired resources in a group of the selected targets" + dry
		}
		b.add(j)
	}
	if b.in.Has(instruction.PurgeTaskclusterResources) {
		for _, e := range b.cfg.Settings.Environments {
			if e.Name != env || e.Purge == nil {
				continue
			}
			for _, g := range e.Purge.Groups {
				if groups[g] {
					continue
				}
				j := Job{ID: "purge/" + env + "/" + g, Stage: Purge, Environment: env, Group: g, Extra: true}
				if purgeSkip != "" {
					j.Reason = purgeSkip
				} else {
					j.Needed = true
					j.Reason = "purge: worker manager group, asked by " + b.flagNote(instruction.PurgeTaskclusterResources) + dry
				}
				b.add(j)
			}
		}
	}

	// disk images
	diskJobs := map[string]*Job{} // key/platform → job
	diskNeeded := map[string]bool{}
	for _, k := range b.keys {
		if k.Marketplace() {
			continue
		}
		for _, platform := range b.keyPlatforms(k) {
			fp := b.diskFingerprint(k, platform)
			j := Job{ID: fmt.Sprintf("disk-image/%s/%s/%s", env, platform, k.Name), Stage: DiskImage,
				Environment: env, Platform: platform, Key: k.Name, Fingerprint: fp}
			j.Needs = b.pathNeeds(env)
			if r := b.stopper(DiskImage); r != "" {
				j.Reason = r
			} else {
				rec, ok := b.rec.Disk(env, platform, k.Name)
				j.Needed, j.Reason = b.decide(rec, ok, fp, instruction.OverwriteDiskImage, func() map[string]any { return b.cfg.DiskInputs(k, platform) })
			}
			diskNeeded[k.Name+"/"+platform] = j.Needed
			diskJobs[k.Name+"/"+platform] = b.add(j)
		}
	}

	// machine images
	poolMachines := map[string][]string{} // pool → needed machine job IDs
	poolMachineNeeded := map[string]bool{}
	for _, st := range b.targets {
		k, t := st.key, st.target
		fp := b.machineFingerprint(k, t)
		j := Job{ID: fmt.Sprintf("machine-image/%s/%s/%s/%s", env, t.Platform, k.Name, t.Group), Stage: MachineImage,
			Environment: env, Platform: t.Platform, Key: k.Name, Group: t.Group, Pool: strings.Join(st.pools, ","),
			Region: t.RegionName(), Fingerprint: fp}
		if len(t.Locations) > 0 {
			j.Locations = st.regions
		}
		j.Needs = b.pathNeeds(env)
		if d := diskJobs[k.Name+"/"+t.Platform]; d != nil {
			j.Needs = append(j.Needs, d.ID)
		}
		if r := b.stopper(MachineImage); r != "" {
			j.Reason = r
		} else {
			rec, ok := b.rec.Machine(env, t.Platform, k.Name, t.Group)
			j.Needed, j.Reason = b.decide(rec, ok, fp, instruction.OverwriteMachineImage, func() map[string]any { return b.cfg.MachineInputs(k, t, b.diskFingerprint(k, t.Platform)) })
			if !j.Needed && diskNeeded[k.Name+"/"+t.Platform] {
				j.Needed = true
				j.Reason = "rebuild: its disk image is rebuilt"
			}
		}
		b.add(j)
		for _, p := range st.pools {
			if j.Needed {
				poolMachines[p] = append(poolMachines[p], j.ID)
				poolMachineNeeded[p] = true
			}
		}
	}

	// pools
	for _, id := range sortedSet(mapKeys(b.pools)) {
		p, k := b.pools[id], b.poolKey[id]
		platform := p.Platform
		if platform == "" {
			platform = b.cfg.Settings.Platforms[0]
		}
		fp := config.Inputs(b.cfg.PoolInputs(k, p, platform, func(t *config.Target) string { return b.machineFingerprint(k, t) })).Fingerprint()
		pc := Job{ID: fmt.Sprintf("pool-config/%s/%s", env, id), Stage: PoolConfig, Environment: env,
			Platform: platform, Key: k.Name, Pool: id, Fingerprint: fp, Needs: poolMachines[id]}
		switch r := b.stopper(PoolConfig); {
		case r != "":
			pc.Reason = r
		case b.in.Has(instruction.PoolDeploy):
			pc.Needed = true
			pc.Reason = "deploy: " + b.flagNote(instruction.PoolDeploy) + " deploys the newest images"
		case poolMachineNeeded[id]:
			pc.Needed = true
			pc.Reason = "deploy: machine images of this pool are rebuilt"
		default:
			rec, ok := b.rec.Pool(env, platform, id)
			pc.Needed, pc.Reason = b.decide(rec, ok, fp, "", func() map[string]any {
				return b.cfg.PoolInputs(k, p, platform, func(t *config.Target) string { return b.machineFingerprint(k, t) })
			})
			pc.Reason = strings.Replace(strings.Replace(pc.Reason, "rebuild:", "deploy:", 1), "build: no earlier build recorded", "deploy: never deployed", 1)
		}
		b.add(pc)

		v := Job{ID: fmt.Sprintf("verify/%s/%s", env, id), Stage: Verify, Environment: env,
			Platform: platform, Pool: id, Needs: []string{pc.ID}}
		switch r := b.stopper(Verify); {
		case r != "":
			v.Reason = r
		case pc.Needed:
			v.Needed = true
			v.Reason = "verify: a worker starts from the deployed images"
		default:
			v.Reason = "skip: the pool's configuration is not deployed"
		}
		b.add(v)
	}
}

// pathNeeds are the jobs every build job of an environment waits for.
func (b *builder) pathNeeds(env string) []string {
	if b.stopper(Prepare) != "" {
		return nil
	}
	return []string{"prepare/" + env}
}

// keyPlatforms are the planned platforms a key has selected targets on.
func (b *builder) keyPlatforms(k *config.Key) []string {
	seen := map[string]bool{}
	for _, st := range b.targets {
		if st.key == k {
			seen[st.target.Platform] = true
		}
	}
	return sortedSet(seen)
}

func (b *builder) diskFingerprint(k *config.Key, platform string) string {
	id := k.Name + "/" + platform
	if fp, ok := b.diskFP[id]; ok {
		return fp
	}
	fp := b.cfg.DiskInputs(k, platform).Fingerprint()
	b.diskFP[id] = fp
	return fp
}

func (b *builder) machineFingerprint(k *config.Key, t *config.Target) string {
	if fp, ok := b.machineFP[t]; ok {
		return fp
	}
	fp := b.cfg.MachineInputs(k, t, b.diskFingerprint(k, t.Platform)).Fingerprint()
	b.machineFP[t] = fp
	return fp
}

// maxReasons bounds how many changes a reason lists.
const maxReasons = 3

// decide compares a build's fingerprint with its record and says in words
// why it is needed or not.
func (b *builder) decide(rec Record, found bool, fp string, overwrite instruction.Flag, current func() map[string]any) (bool, string) {
	if overwrite != "" && b.in.Has(overwrite) {
		return true, "rebuild: " + b.flagNote(overwrite)
	}
	if !found {
		return true, "build: no earlier build recorded"
	}
	if rec.Fingerprint == fp {
		return false, "skip: inputs unchanged since " + since(rec)
	}
	old, err := config.ParseInputs(rec.Inputs)
	if err != nil || len(rec.Inputs) == 0 {
		return true, fmt.Sprintf("rebuild: inputs changed since %s (the record holds no readable inputs to compare)", since(rec))
	}
	changes := config.Explain(config.Diff(old, current()))
	if len(changes) == 0 {
		return true, fmt.Sprintf("rebuild: fingerprint differs from the build of %s", since(rec))
	}
	if len(changes) > maxReasons {
		changes = append(changes[:maxReasons], fmt.Sprintf("and %d more changes", len(changes)-maxReasons))
	}
	return true, "rebuild: " + strings.Join(changes, "; ")
}

func since(rec Record) string {
	rev := rec.Revision
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if rev == "" {
		rev = "an unknown revision"
	}
	if rec.Time.IsZero() {
		return rev
	}
	return fmt.Sprintf("%s (built %s)", rev, rec.Time.UTC().Format("2006-01-02"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
