package tollgatev1

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestRecordJSONRoundTrip(t *testing.T) {
	r := &UsageRecord{RequestId: "tg-1", Consumer: "alice", InputTokens: 1 << 40, Estimated: true, StartTime: timestamppb.New(timestamppb.Now().AsTime())}
	b, err := MarshalRecordJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalRecordJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(r, back) {
		t.Errorf("round trip: %v != %v", back, r)
	}
}

// TestRecordJSONForwardCompatible checks a reader of this version accepts
// records written by a later one with fields it does not know.
func TestRecordJSONForwardCompatible(t *testing.T) {
	r, err := UnmarshalRecordJSON([]byte(`{"request_id":"tg-1","input_tokens":"12","cost_usd":0.5,"labels":{"team":"a"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.GetRequestId() != "tg-1" || r.GetInputTokens() != 12 {
		t.Errorf("read %v", r)
	}
	if _, err := UnmarshalRecordJSON([]byte(`{"input_tokens":"twelve"}`)); err == nil {
		t.Error("a malformed record was accepted")
	}
}

// TestGeneratedCodeMatchesProto checks usage.pb.go was regenerated after the
// last change to usage.proto (scripts/gen-proto.sh): every field declared
// in the .proto is in the compiled descriptor with the same number, and no
// other.
func TestGeneratedCodeMatchesProto(t *testing.T) {
	src, err := os.ReadFile("usage.proto")
	if err != nil {
		t.Fatal(err)
	}
	fieldRE := regexp.MustCompile(`(?m)^\s+(?:repeated\s+|optional\s+)?[\w.]+\s+(\w+)\s*=\s*(\d+)\s*;`)
	declared := map[string]int{}
	for _, m := range fieldRE.FindAllStringSubmatch(string(src), -1) {
		n, _ := strconv.Atoi(m[2])
		declared[m[1]] = n
	}
	fields := (&UsageRecord{}).ProtoReflect().Descriptor().Fields()
	if fields.Len() != len(declared) {
		t.Errorf("usage.proto declares %d fields, usage.pb.go has %d: run scripts/gen-proto.sh", len(declared), fields.Len())
	}
	for name, num := range declared {
		f := fields.ByName(protoreflect.Name(name))
		if f == nil || int(f.Number()) != num {
			t.Errorf("field %s = %d is not in usage.pb.go: run scripts/gen-proto.sh", name, num)
		}
	}
}
