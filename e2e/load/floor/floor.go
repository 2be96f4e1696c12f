// Package floor is a do-nothing Envoy ext_proc server: it answers every
// message with an empty response of the matching kind (CONTINUE, no
// mutation) and keeps no state. Run under the load tool with default
// grpc-go settings, its CPU time and memory per request are the floor under
// which no Go ext_proc server can go for the same messages, and the
// yardstick tollgate is measured against.
package floor

import (
	"context"
	"errors"
	"fmt"
	"io"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Server implements [extprocv3.ExternalProcessorServer].
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
}

// NewGRPCServer returns a gRPC server with default settings and the floor
// registered on it.
func NewGRPCServer() *grpc.Server {
	s := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(s, &Server{})
	return s
}

// Process implements [extprocv3.ExternalProcessorServer]. Envoy ends a
// stream by half-closing it (io.EOF here) or by cancelling it; both are a
// normal end.
func (*Server) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := srv.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("cannot receive: %w", err)
		}
		if err := srv.Send(Answer(req)); err != nil {
			if status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("cannot send: %w", err)
		}
	}
}

// Answer returns the CONTINUE response of the kind Envoy expects for req:
// an answer of another kind would make Envoy fail the request.
func Answer(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	default:
		return &extprocv3.ProcessingResponse{}
	}
}
