package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"
)

// Client calls an environment's Taskcluster worker manager with permanent
// credentials. The access token only ever goes into Hawk MACs: it is never
// sent, logged or put in an error.
type Client struct {
	// RootURL is the Taskcluster deployment's root URL
	// (https://firefox-ci-tc.services.mozilla.com).
	RootURL     string
	ClientID    string
	AccessToken string
	// HTTP is the HTTP client; nil means http.DefaultClient.
	HTTP *http.Client
	// Now is the clock Hawk timestamps come from; nil means time.Now.
	Now func() time.Time
}

// Get returns the deployed definition of worker pool id; found is false
// when the worker manager has no such pool (404).
func (c *Client) Get(ctx context.Context, id string) (wp WorkerPool, found bool, err error) {
	status, body, err := c.do(ctx, http.MethodGet, id, nil)
	if err != nil {
		return WorkerPool{}, false, err
	}
	switch {
	case status == http.StatusNotFound:
		return WorkerPool{}, false, nil
	case status != http.StatusOK:
		return WorkerPool{}, false, apiError("get", id, status, body)
	}
	if err := json.Unmarshal(body, &wp); err != nil {
		return WorkerPool{}, false, fmt.Errorf("get worker pool %s: read the response: %w", id, err)
	}
	wp.ID = id
	return wp, true, nil
}

// Create creates worker pool wp.ID (createWorkerPool: PUT).
func (c *Client) Create(ctx context.Context, wp WorkerPool) error {
	return c.write(ctx, http.MethodPut, "create", wp)
}

// Update replaces the definition of worker pool wp.ID (updateWorkerPool:
// POST).
func (c *Client) Update(ctx context.Context, wp WorkerPool) error {
	return c.write(ctx, http.MethodPost, "update", wp)
}

func (c *Client) write(ctx context.Context, method, verb string, wp WorkerPool) error {
	body, err := json.Marshal(wp)
	if err != nil {
		return fmt.Errorf("%s worker pool %s: %w", verb, wp.ID, err)
	}
	status, resp, err := c.do(ctx, method, wp.ID, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return apiError(verb, wp.ID, status, resp)
	}
	return nil
}

// url is the worker-pool end point of id. The pool ID's slash stays a
// slash: the worker manager's route takes the rest of the path as the ID.
func (c *Client) url(id string) string {
	return strings.TrimRight(c.RootURL, "/") + "/api/worker-manager/v1/worker-pool/" + id
}

func (c *Client) do(ctx context.Context, method, id string, body []byte) (int, []byte, error) {
	if strings.ContainsAny(c.ClientID, "\"\\") {
		return 0, nil, errors.New("the Taskcluster client ID must not contain quotes or backslashes")
	}
	if c.ClientID == "" || c.AccessToken == "" {
		return 0, nil, fmt.Errorf("%s worker pool %s: no Taskcluster credentials (TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN)", strings.ToLower(method), id)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(id), rd)
	if err != nil {
		return 0, nil, fmt.Errorf("worker pool %s: %w", id, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if err := signHawk(req, c.ClientID, c.AccessToken, body, now()); err != nil {
		return 0, nil, fmt.Errorf("worker pool %s: %w", id, err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s (worker pool %s): %w", method, c.url(id), id, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s (worker pool %s): read the response: %w", method, c.url(id), id, err)
	}
	return resp.StatusCode, data, nil
}

// apiError names the pool, the status and the worker manager's message
// (Taskcluster errors are {"code", "message"}).
func apiError(verb, id string, status int, body []byte) error {
	var e struct{ Code, Message string }
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		msg = e.Message
		if e.Code != "" {
			msg = e.Code + ": " + msg
		}
	}
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	return fmt.Errorf("%s worker pool %s: HTTP %d %s: %s", verb, id, status, http.StatusText(status), msg)
}

// Change is what Deploy did.
type Change string

// The outcomes of Deploy.
const (
	Created   Change = "created"
	Updated   Change = "updated"
	Unchanged Change = "unchanged"
)

// Deploy makes the worker manager hold wp: it creates the pool when it is
// missing, updates it when its definition differs, and writes nothing when
// it is equal.
func Deploy(ctx context.Context, c *Client, wp WorkerPool) (Change, error) {
	deployed, found, err := c.Get(ctx, wp.ID)
	if err != nil {
		return "", err
	}
	switch {
	case !found:
		if err := c.Create(ctx, wp); err != nil {
			return "", err
		}
		return Created, nil
	case Equal(deployed, wp):
		return Unchanged, nil
	}
	if err := c.Update(ctx, wp); err != nil {
		return "", err
	}
	return Updated, nil
}

// Equal reports whether two definitions are the same once both are JSON
// trees (so that numbers compare by value whatever their Go type).
func Equal(a, b WorkerPool) bool {
	ta, errA := jsonTree(a)
	tb, errB := jsonTree(b)
	return errA == nil && errB == nil && reflect.DeepEqual(ta, tb)
}
