package plan

import (
	"encoding/json"
	"fmt"
	"strings"
)

// MaxMatrix is GitHub Actions' limit of jobs per matrix.
const MaxMatrix = 256

// Matrix is a stage's needed jobs in the form strategy.matrix takes with
// fromJSON: {"include": [...]}. Each entry carries a short name for the
// job's title and the fields the stage needs. A stage with more needed jobs
// than GitHub allows in one matrix is an error that says so.
func (p *Plan) Matrix(s Stage) (map[string]any, error) {
	include := []map[string]any{}
	for _, j := range p.Jobs {
		if j.Stage != s || !j.Needed {
			continue
		}
		include = append(include, entry(j, p.DryRun))
	}
	if len(include) > MaxMatrix {
		return nil, fmt.Errorf("the %s stage has %d jobs, over GitHub Actions' limit of %d per matrix; narrow the plan with an include keys, include pools or include environments line", s, len(include), MaxMatrix)
	}
	return map[string]any{"include": include}, nil
}

// MatrixJSON is Matrix encoded as compact JSON.
func (p *Plan) MatrixJSON(s Stage) (string, error) {
	m, err := p.Matrix(s)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(m)
	return string(data), err
}

func entry(j Job, dryRun bool) map[string]any {
	e := map[string]any{"environment": j.Environment, "id": j.ID}
	name := []string{j.Environment}
	set := func(k, v string) {
		if v != "" {
			e[k] = v
		}
	}
	set("platform", j.Platform)
	set("key", j.Key)
	set("group", j.Group)
	set("pool", j.Pool)
	set("region", j.Region)
	set("fingerprint", j.Fingerprint)
	if len(j.Locations) > 0 {
		e["locations"] = j.Locations
	}
	switch j.Stage {
	case Prepare:
		e["groups"] = j.Groups
		e["keys"] = j.Keys
	case Purge:
		e["dry_run"] = dryRun
		e["extra"] = j.Extra
		name = append(name, j.Group)
	case DiskImage:
		name = append(name, j.Key)
	case MachineImage:
		name = append(name, j.Key, j.Region)
	case PoolConfig, Verify:
		e["dry_run"] = dryRun
		name = append(name, j.Pool)
	}
	e["name"] = strings.Join(name, " ")
	return e
}
