#!/usr/bin/env bash
# gen-proto.sh regenerates the Go code of tollgate's protobuf API (proto/)
# with protoc and protoc-gen-go. The generated files are committed, so only
# someone changing a .proto needs this. protoc-gen-go is installed at the
# version of google.golang.org/protobuf in go.mod, so that regenerating
# changes nothing but what the .proto changed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/need.sh protoc protobuf-compiler

want=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
gobin=$(go env GOPATH)/bin
gen=$gobin/protoc-gen-go
if ! [ -x "$gen" ] || [ "$("$gen" --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  echo "gen-proto.sh: installing protoc-gen-go $want" >&2
  GOFLAGS= go install "google.golang.org/protobuf/cmd/protoc-gen-go@$want"
fi

# protoc finds google/protobuf/*.proto beside itself (Debian ships them in
# /usr/include with protobuf-compiler).
mapfile -t protos < <(find proto -name '*.proto' | sort)
protoc --plugin=protoc-gen-go="$gen" -I proto \
  --go_out=. --go_opt=module=github.com/tollgate-ai/tollgate \
  "${protos[@]}"
echo "gen-proto.sh: generated Go code for ${#protos[@]} file(s)" >&2
