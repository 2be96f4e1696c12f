package accounts

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tollgate-ai/tollgate/internal/redistest"
)

// TestConcurrentChangesOnTwoReplicas: changes racing on two replicas are
// each validated against the records they commit onto; none is lost.
func TestConcurrentChangesOnTwoReplicas(t *testing.T) {
	srv := redistest.Start(t)
	quiet := (&logBuffer{}).logger()
	cfg := Config{EncryptionKeyEnv: testKeyEnv}
	replicas := []*Store{
		openStore(t, cfg, Options{Client: newRedisClient(t, srv.Addr()), Logger: quiet}, true),
		openStore(t, cfg, Options{Client: newRedisClient(t, srv.Addr()), Logger: quiet}, true),
	}
	ctx := t.Context()
	base := testBase()

	var created, exists atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := replicas[i%2].CreateConsumer(ctx, base, ConsumerInfo{Name: "acme"})
			switch {
			case err == nil:
				created.Add(1)
			case errors.Is(err, ErrExists):
				exists.Add(1)
			default:
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 || exists.Load() != 7 {
		t.Fatalf("8 racing creates of one name: %d created, %d refused as existing; want 1 and 7", created.Load(), exists.Load())
	}

	var issued, busy atomic.Int64
	for i := range 6 {
		wg.Go(func() {
			for range 5 {
				_, err := replicas[i%2].IssueKey(ctx, base, "acme", KeyRequest{})
				switch {
				case err == nil:
					issued.Add(1)
				case errors.Is(err, ErrBusy):
					busy.Add(1)
				default:
					t.Errorf("issue: %v", err)
				}
			}
		})
	}
	wg.Wait()
	keys, err := replicas[0].Keys(ctx, base, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(keys)) != issued.Load() || issued.Load() < 25 {
		t.Errorf("%d keys issued (%d refused as busy), %d stored", issued.Load(), busy.Load(), len(keys))
	}
	t.Logf("30 racing key issues on two replicas: %d committed, %d answered busy", issued.Load(), busy.Load())
}
