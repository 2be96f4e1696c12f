package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Shape is what one request looks like: a streamed OpenAI chat completion
// as Envoy hands it to an ext_proc server.
type Shape struct {
	// Key is sent as `authorization: Bearer <Key>`.
	Key string
	// MessageBytes is the length of the user message in the request body.
	MessageBytes int
	// Chunks is the number of response body messages; the usage event and
	// [DONE] arrive in the last one. At least 2.
	Chunks int
	// IncludeUsage sets stream_options.include_usage in the request, as a
	// client that wants usage does; without it a metering server adds it
	// and hides the extra usage chunk from the client.
	IncludeUsage bool
}

// Validate names every field that is out of range.
func (s Shape) Validate() error {
	var errs []string
	if s.MessageBytes < 1 {
		errs = append(errs, "-msg must be >= 1")
	}
	if s.Chunks < 2 {
		errs = append(errs, "-chunks must be >= 2 (content, then usage)")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid shape: %s", strings.Join(errs, "; "))
	}
	return nil
}

// messages is a Shape compiled once into ext_proc messages. Everything but
// the request headers (which carry a fresh x-request-id) is shared by every
// request: protobuf messages are safe to marshal concurrently.
type messages struct {
	shape   Shape
	body    *extprocv3.ProcessingRequest
	headers *extprocv3.ProcessingRequest // response headers
	chunks  []*extprocv3.ProcessingRequest
}

// perRequest is the number of messages of one request: request headers,
// request body, response headers, then the chunks.
func (m *messages) perRequest() int { return 3 + len(m.chunks) }

func compile(s Shape) *messages {
	filler := "Summarize the quarterly report for the board, with the risks first. "
	msg := strings.Repeat(filler, s.MessageBytes/len(filler)+1)[:s.MessageBytes]
	req := map[string]any{
		"model":    "gpt-4o",
		"stream":   true,
		"messages": []map[string]string{{"role": "user", "content": msg}},
	}
	if s.IncludeUsage {
		req["stream_options"] = map[string]bool{"include_usage": true}
	}
	body, _ := json.Marshal(req) // a map of strings and bools always marshals

	// Chunks-2 content deltas of one token each, a finish event, and the
	// usage event with [DONE] in the last chunk.
	deltas := s.Chunks - 2
	const event = `data: {"id":"chatcmpl-load","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}],"usage":null}` + "\n\n"
	const finish = `data: {"id":"chatcmpl-load","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}` + "\n\n"
	prompt := s.MessageBytes/4 + 8
	var last bytes.Buffer
	fmt.Fprintf(&last, `data: {"id":"chatcmpl-load","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", prompt, deltas, prompt+deltas)
	last.WriteString("data: [DONE]\n\n")

	m := &messages{
		shape: s,
		body: &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}},
		headers: &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
			ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(
				":status", "200",
				"content-type", "text/event-stream; charset=utf-8",
				"date", "Mon, 02 Jan 2006 15:04:05 GMT",
				"x-request-id", "upstream-load",
				"openai-processing-ms", "12",
			)}}},
	}
	for range deltas {
		m.chunks = append(m.chunks, responseBody([]byte(event), false))
	}
	m.chunks = append(m.chunks, responseBody([]byte(finish), false), responseBody(last.Bytes(), true))
	return m
}

// requestHeaders returns the request headers of request n, as Envoy sends
// them for a client's POST through the gateway.
func (m *messages) requestHeaders(n uint64) *extprocv3.ProcessingRequest {
	kv := []string{
		":method", "POST",
		":scheme", "https",
		":authority", "api.openai.com",
		":path", "/v1/chat/completions",
		"content-type", "application/json",
		"content-length", strconv.Itoa(len(m.body.GetRequestBody().GetBody())),
		"accept", "text/event-stream",
		"user-agent", "tollgate-load/1",
		"x-forwarded-proto", "https",
		"x-request-id", "load-" + strconv.FormatUint(n, 10),
	}
	if m.shape.Key != "" {
		kv = append(kv, "authorization", "Bearer "+m.shape.Key)
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(kv...)}}}
}

func responseBody(b []byte, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: b, EndOfStream: eos}}}
}

// headerMap carries values in raw_value, as Envoy does.
func headerMap(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return hm
}
