package app

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestRuntimeAccountsReachTheRequestPath: a consumer created and given a
// key through the admin API authenticates on the ext_proc port; once the
// key is revoked it is refused.
func TestRuntimeAccountsReachTheRequestPath(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := startServe(t, "../../envoy/tollgate.yaml", nil)
	a := [2]string{s.grpcAddr, s.adminAddr}
	admin := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, "http://"+a[1]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admin-demo-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	if code, v := admin("POST", "/v1/consumers", `{"name":"runtime-team"}`); code != 201 {
		t.Fatalf("create consumer: %d %v", code, v)
	}
	code, key := admin("POST", "/v1/consumers/runtime-team/keys", `{"label":"ci"}`)
	if code != 201 || !strings.HasPrefix(key["key"].(string), "sk-tg-") {
		t.Fatalf("issue key: %d %v", code, key)
	}

	conn, err := grpc.NewClient(a[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := extprocv3.NewExternalProcessorClient(conn)
	authenticates := func() bool {
		st, err := client.Process(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = st.CloseSend() }()
		hs := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("POST")}, {Key: ":path", RawValue: []byte("/v1/chat/completions")},
			{Key: "authorization", RawValue: []byte("Bearer " + key["key"].(string))},
		}}
		if err := st.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hs}}}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetImmediateResponse() == nil
	}
	// Changes reach the request path through the accounts' watch.
	eventually := func(want bool) {
		t.Helper()
		for range 100 {
			if authenticates() == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("authenticates never became %v", want)
	}
	eventually(true)
	if code, _ := admin("DELETE", "/v1/consumers/runtime-team/keys/"+key["id"].(string), ""); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	eventually(false)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}
