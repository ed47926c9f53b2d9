package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/stretchr/testify/require"
)

func TestPath(t *testing.T) {
	tests := []struct {
		rec  Record
		want string
	}{
		{Record{Kind: Disk, Environment: "prod", Platform: "azure", Key: "win10-64"}, "records/prod/azure/disk/win10-64.json"},
		{Record{Kind: Machine, Environment: "prod", Platform: "azure", Key: "win10-64", Group: "rg-images"}, "records/prod/azure/machine/win10-64/rg-images.json"},
		{Record{Kind: Pool, Environment: "staging", Platform: "gcp", Pool: "proj-releng/win2022"}, "records/staging/gcp/pool/proj-releng/win2022.json"},
		// Path does not clean: Validate is what refuses these.
		{Record{Kind: Disk, Environment: "prod", Platform: "azure", Key: "../../x"}, "records/prod/azure/disk/../../x.json"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, tt.rec.Path())
		})
	}
}

func TestValidate(t *testing.T) {
	ok := disk("win10-64", "v1")
	tests := []struct {
		name   string
		edit   func(*Record)
		field  string // "" means valid
		noKind bool
	}{
		{"disk", func(*Record) {}, "", false},
		{"machine", func(r *Record) { *r = machine("win10-64", "rg", "v1") }, "", false},
		{"pool", func(r *Record) { *r = pool("releng/win2022", "v1") }, "", false},
		{"no kind", func(r *Record) { r.Kind = "" }, "kind", true},
		{"unknown kind", func(r *Record) { r.Kind = "vm" }, "kind", true},
		{"no environment", func(r *Record) { r.Environment = "" }, "environment", false},
		{"environment traversal", func(r *Record) { r.Environment = ".." }, "environment", false},
		{"platform slash", func(r *Record) { r.Platform = "azure/x" }, "platform", false},
		{"disk no key", func(r *Record) { r.Key = "" }, "key", false},
		{"key traversal", func(r *Record) { r.Key = "../../../etc/passwd" }, "key", false},
		{"key dot dot", func(r *Record) { r.Key = ".." }, "key", false},
		{"key dot", func(r *Record) { r.Key = "." }, "key", false},
		{"key backslash", func(r *Record) { r.Key = `..\x` }, "key", false},
		{"key newline", func(r *Record) { r.Key = "a\nb" }, "key", false},
		{"disk with group", func(r *Record) { r.Group = "rg" }, "group", false},
		{"disk with pool", func(r *Record) { r.Pool = "a/b" }, "pool", false},
		{"machine no group", func(r *Record) { *r = machine("k", "", "v1") }, "group", false},
		{"group traversal", func(r *Record) { *r = machine("k", "../../disk/k", "v1") }, "group", false},
		{"group dot dot", func(r *Record) { *r = machine("k", "..", "v1") }, "group", false},
		{"machine key traversal", func(r *Record) { *r = machine("../k", "rg", "v1") }, "key", false},
		{"pool no pool", func(r *Record) { *r = pool("", "v1") }, "pool", false},
		{"pool one part", func(r *Record) { *r = pool("releng", "v1") }, "pool", false},
		{"pool three parts", func(r *Record) { *r = pool("a/b/c", "v1") }, "pool variant", false},
		{"pool traversal", func(r *Record) { *r = pool("../b", "v1") }, "pool domain", false},
		{"pool empty variant", func(r *Record) { *r = pool("a/", "v1") }, "pool variant", false},
		{"pool with key", func(r *Record) { *r = pool("a/b", "v1"); r.Key = "k" }, "key", false},
		{"no fingerprint", func(r *Record) { r.Fingerprint = "" }, "fingerprint", false},
		{"fingerprint no prefix", func(r *Record) { r.Fingerprint = strings.Repeat("a", 64) }, "fingerprint", false},
		{"fingerprint short", func(r *Record) { r.Fingerprint = "sha256:abc" }, "fingerprint", false},
		{"fingerprint upper case", func(r *Record) { r.Fingerprint = "sha256:" + strings.Repeat("A", 64) }, "fingerprint", false},
		{"fingerprint not hex", func(r *Record) { r.Fingerprint = "sha256:" + strings.Repeat("g", 64) }, "fingerprint", false},
		{"no revision", func(r *Record) { r.Revision = "" }, "revision", false},
		{"blank revision", func(r *Record) { r.Revision = "  " }, "revision", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			err := r.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.field+":")
			if !tt.noKind {
				require.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf("invalid %s record: ", r.Kind)), err.Error())
			}
		})
	}
}

func TestCheckInputs(t *testing.T) {
	for _, inputs := range []string{"", "null", "[]", `"x"`, `{"a":`} {
		r := disk("k", "v1")
		r.Inputs = json.RawMessage(inputs)
		require.ErrorContains(t, r.check(), "inputs: want a JSON object", "inputs %q", inputs)
	}
	require.NoError(t, disk("k", "v1").check())
}

func TestEncodeDecode(t *testing.T) {
	r := disk("k", "v1")
	r.Inputs = json.RawMessage(`{"b":[1,2],"a":{"z":"<&>"}}`)
	data, err := r.encode()
	require.NoError(t, err)
	// Indented for people reading the branch, and URLs stay readable.
	require.Contains(t, string(data), "\n  \"kind\": \"disk\",\n")
	require.Contains(t, string(data), "runs/1?a=1&b=2")
	require.True(t, strings.HasSuffix(string(data), "}\n"))
	got, err := decode(data)
	require.NoError(t, err)
	require.Equal(t, r, got)
	require.Equal(t, `{"b":[1,2],"a":{"z":"<&>"}}`, string(got.Inputs))
}

func TestSet(t *testing.T) {
	d := disk("win10", "v1")
	m := machine("win10", "rg", "v1")
	p := pool("releng/win2022", "v1")
	other := disk("win11", "v1")
	other.Environment = "staging"
	s := NewSet(p, m, d, other, disk("win10", "v2"))

	require.Equal(t, 4, s.Len())
	got, ok := s.Disk("prod", "azure", "win10")
	require.True(t, ok)
	require.Equal(t, fp("v2"), got.Fingerprint, "a later record with the same identity wins")
	got, ok = s.Machine("prod", "azure", "win10", "rg")
	require.True(t, ok)
	require.Equal(t, m, got)
	got, ok = s.Pool("prod", "azure", "releng/win2022")
	require.True(t, ok)
	require.Equal(t, p, got)
	_, ok = s.Disk("staging", "azure", "win10")
	require.False(t, ok)
	_, ok = s.Machine("prod", "azure", "win10", "other")
	require.False(t, ok)
	_, ok = s.Disk("prod", "azure", "win10/../win10")
	require.False(t, ok)

	var paths []string
	for _, r := range s.All() {
		paths = append(paths, r.Path())
	}
	require.Equal(t, []string{
		"records/prod/azure/disk/win10.json",
		"records/prod/azure/machine/win10/rg.json",
		"records/prod/azure/pool/releng/win2022.json",
		"records/staging/azure/disk/win11.json",
	}, paths)

	// Immutable: changing what was handed in or out changes nothing inside.
	got, _ = s.Machine("prod", "azure", "win10", "rg")
	got.Inputs[0] = 'X'
	m.Inputs[1] = 'X'
	again, _ := s.Machine("prod", "azure", "win10", "rg")
	require.Equal(t, machine("win10", "rg", "v1").Inputs, again.Inputs)
}

func TestEmptySet(t *testing.T) {
	for name, s := range map[string]*Set{"nil": nil, "zero": {}, "new": NewSet()} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, 0, s.Len())
			require.Empty(t, s.All())
			_, ok := s.Disk("prod", "azure", "k")
			require.False(t, ok)
			_, ok = s.Machine("prod", "azure", "k", "g")
			require.False(t, ok)
			_, ok = s.Pool("prod", "azure", "a/b")
			require.False(t, ok)
		})
	}
}

func TestCommitMessage(t *testing.T) {
	one := machine("win10-64", "rg-images", "v1")
	require.Equal(t, "record machine prod/azure/win10-64/rg-images ("+fp("v1")[:19]+")\n", commitMessage([]Record{one}))

	msg := commitMessage([]Record{pool("releng/w", "v1"), disk("b", "v2"), disk("a", "v3")})
	require.Equal(t, "record 3 builds\n\n"+
		"disk prod/azure/a ("+fp("v3")[:19]+")\n"+
		"disk prod/azure/b ("+fp("v2")[:19]+")\n"+
		"pool prod/azure/releng/w ("+fp("v1")[:19]+")\n", msg)
}

func TestRejected(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{git.ErrNonFastForwardUpdate, true},
		{fmt.Errorf("push: %w", git.ErrNonFastForwardUpdate), true},
		// What go-git itself returns when the advertised tip is not an ancestor.
		{errors.New("non-fast-forward update: refs/heads/cib-records"), true},
		// What git-receive-pack reports when the ref moved after it was advertised.
		{errors.New("command error on refs/heads/cib-records: failed to update ref"), true},
		{errors.New("! [rejected] cib-records -> cib-records (fetch first)"), true},
		{errors.New("command error on refs/heads/cib-records: stale info"), true},
		{errors.New("cannot lock ref 'refs/heads/cib-records': is at 1 but expected 2"), true},
		{errors.New("authentication required"), false},
		{errors.New("repository not found"), false},
		{errors.New("command error on refs/heads/cib-records: pre-receive hook declined"), false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, rejected(tt.err), "%v", tt.err)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for attempt, upper := range map[int]time.Duration{
		1: 200 * time.Millisecond, 2: 400 * time.Millisecond, 3: 800 * time.Millisecond,
		5: 3200 * time.Millisecond, 6: 5 * time.Second, 7: 5 * time.Second, 100: 5 * time.Second,
	} {
		for range 50 {
			d := defaultBackoff(attempt)
			require.GreaterOrEqual(t, d, upper/2, "attempt %d", attempt)
			require.LessOrEqual(t, d, upper, "attempt %d", attempt)
		}
	}
}
