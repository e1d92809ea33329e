package sync

import (
	"context"
	"errors"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Jitter is the fraction by which Loop varies each interval, so that many
// mirrors started together do not all ask the upstream at once.
const Jitter = 0.1

// Loop runs Sync every interval (varied by up to Jitter either way) until
// ctx is done, handing each run's result to report. A failed run does not
// stop the loop; a rate-limited one waits at least until the upstream's
// Retry-After. Loop returns an interrupted error (exit 130) when ctx ends.
func (s *Syncer) Loop(ctx context.Context, interval time.Duration, report func(*Result, error)) error {
	if interval <= 0 {
		return failure.Usagef("interval %s: want a positive duration", interval)
	}
	for {
		res, err := s.Sync(ctx)
		if ctx.Err() != nil {
			return failure.Classify(failure.ErrInterrupted, ctx.Err())
		}
		report(res, err)
		wait := s.jitter(interval)
		var rl *RateLimitError
		if errors.As(err, &rl) && !rl.RetryAt.IsZero() {
			if d := rl.RetryAt.Sub(s.opts.Clock()); d > wait {
				wait = d
			}
		}
		if serr := s.opts.Sleep(ctx, wait); serr != nil || ctx.Err() != nil {
			if serr == nil {
				serr = ctx.Err()
			}
			return failure.Classify(failure.ErrInterrupted, serr)
		}
	}
}

// jitter returns d varied uniformly by up to Jitter either way.
func (s *Syncer) jitter(d time.Duration) time.Duration {
	f := 1 + Jitter*(2*s.opts.Rand()-1)
	return time.Duration(float64(d) * f)
}
