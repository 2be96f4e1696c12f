package processor

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestCodecRoundTrip: what the codec writes reads back as the same
// message, for the answers tollgate sends, small and large.
func TestCodecRoundTrip(t *testing.T) {
	md, _ := structpb.NewStruct(map[string]any{"tollgate": map[string]any{"consumer": "team-a", "total_tokens": 42.0}})
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	var m mutation
	m.setHeader("x-tollgate-consumer", "team-a")
	m.removeHeader("authorization")
	msgs := []*extprocv3.ProcessingResponse{
		continueChunk,
		{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}},
		{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: headersResponse(&m)}, DynamicMetadata: md},
		{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: big}}}}}},
		(&apiError{status: 429, kind: "tokens", code: "rate_limit_exceeded", message: "slow down"}).response(0),
	}
	c := Codec()
	for i, want := range msgs {
		data, err := c.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got := &extprocv3.ProcessingResponse{}
		if err := c.Unmarshal(data, got); err != nil {
			t.Fatal(err)
		}
		data.Free()
		if !proto.Equal(got, want) {
			t.Errorf("message %d did not survive the codec:\n got %v\nwant %v", i, got, want)
		}
	}
	// Requests arrive in several buffers too.
	req := responseBody(big, true)
	b, _ := proto.Marshal(req)
	split := mem.BufferSlice{mem.SliceBuffer(b[:100]), mem.SliceBuffer(b[100:])}
	got := &extprocv3.ProcessingRequest{}
	if err := c.Unmarshal(split, got); err != nil || !proto.Equal(got, req) {
		t.Fatalf("split request: %v", err)
	}
}

func BenchmarkCodecMarshalChunkAnswer(b *testing.B) {
	msg := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	b.Run("continue", func(b *testing.B) {
		c := Codec()
		b.ReportAllocs()
		for b.Loop() {
			d, _ := c.Marshal(continueChunk)
			d.Free()
		}
	})
	b.Run("grpc-default", func(b *testing.B) {
		c := encoding.GetCodecV2("proto")
		b.ReportAllocs()
		for b.Loop() {
			d, _ := c.Marshal(msg)
			d.Free()
		}
	})
}
