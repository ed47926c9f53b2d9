package secret_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cib-project/cib/internal/secret"
)

func TestRedact(t *testing.T) {
	err := fmt.Errorf("create VM: password %q rejected: %w", "hunter2-hunter2", context.DeadlineExceeded)
	got := secret.Redact(err, "hunter2-hunter2")
	assert.Equal(t, `create VM: password "[REDACTED]" rejected: context deadline exceeded`, got.Error())
	assert.True(t, errors.Is(got, context.DeadlineExceeded), "still classified as what it wraps")

	plain := errors.New("no secret here")
	assert.Same(t, plain, secret.Redact(plain, "hunter2-hunter2"))
	assert.Same(t, err, secret.Redact(err, ""))
	assert.NoError(t, secret.Redact(nil, "x"))
}
