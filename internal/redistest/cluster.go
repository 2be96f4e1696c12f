package redistest

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTimeout bounds forming a cluster: meeting, slot assignment and
// waiting for every node to report cluster_state:ok.
const clusterTimeout = 30 * time.Second

// slotCount is the number of hash slots of a Redis Cluster.
const slotCount = 16384

// Cluster is a Redis Cluster of masters only, each a [Server].
type Cluster struct {
	// Servers are the cluster's nodes; Servers[i] serves the i-th equal
	// share of the hash slots.
	Servers []*Server
}

// StartCluster starts masters redis-server processes with cluster mode on,
// joins them, spreads the 16384 hash slots evenly over them and waits until
// every node reports cluster_state:ok. The nodes stop when the test ends.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 1 {
		t.Fatalf("redistest.StartCluster: masters must be >= 1, got %d", masters)
	}
	bin := lookPath(t)
	root := t.TempDir()
	c := &Cluster{}
	busPorts := make([]int, masters)
	for i := range masters {
		s := &Server{t: t, bin: bin, dir: filepath.Join(root, "node"+strconv.Itoa(i))}
		if err := mkdir(s.dir); err != nil {
			t.Fatalf("cannot create node directory: %v", err)
		}
		s.args = []string{
			"--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
		}
		t.Cleanup(s.Stop)
		if err := s.startOnFreePort(&busPorts[i]); err != nil {
			t.Fatalf("cannot start cluster node %d: %v", i, err)
		}
		c.Servers = append(c.Servers, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.form(ctx, busPorts); err != nil {
		t.Fatalf("cannot form redis cluster: %v", err)
	}
	return c
}

// Addrs returns the host:port of every node.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

func (c *Cluster) form(ctx context.Context, busPorts []int) error {
	clients := make([]*redis.Client, len(c.Servers))
	for i, s := range c.Servers {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
		defer clients[i].Close()
	}
	n := len(clients)
	for i, cl := range clients {
		lo := i * slotCount / n
		hi := (i+1)*slotCount/n - 1
		if err := cl.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			return fmt.Errorf("node %d: CLUSTER ADDSLOTSRANGE %d %d: %w", i, lo, hi, err)
		}
	}
	for i := 1; i < n; i++ {
		err := clients[i].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", c.Servers[0].Port(), busPorts[0]).Err()
		if err != nil {
			return fmt.Errorf("node %d: CLUSTER MEET: %w", i, err)
		}
	}
	for {
		ready := 0
		var last string
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("node %d: CLUSTER INFO: %w", i, err)
			}
			if strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				ready++
			} else {
				last = info
			}
		}
		if ready == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ok: %w; last CLUSTER INFO: %s", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
