package processor

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Codec is the gRPC codec of the ext_proc server: protobuf, with two
// shortcuts for the hot path. Most answers are "go on unchanged" to a
// response chunk — one fixed message sent as bytes encoded once. Requests
// are decoded straight from gRPC's buffer when it is in one piece.
func Codec() encoding.CodecV2 { return codec{} }

type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if v == continueChunk {
		// A SliceBuffer has nothing to free, so the slice can be shared.
		return continueChunkWire, nil
	}
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return encoding.GetCodecV2("proto").Unmarshal(data, v)
	}
	// proto.Unmarshal copies what it keeps, so gRPC may free data after.
	if len(data) == 1 {
		return proto.Unmarshal(data[0].ReadOnlyData(), m)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// continueChunk is the answer to a response chunk that goes on unchanged:
// the same message every time, shared and never modified, sent as bytes
// encoded once.
var continueChunk = &extprocv3.ProcessingResponse{
	Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}},
}

// continueChunkWire cannot fail to encode (a fixed, valid message); the
// codec's test decodes it back.
var continueChunkWire = func() mem.BufferSlice {
	b, _ := proto.Marshal(continueChunk)
	return mem.BufferSlice{mem.SliceBuffer(b)}
}()
