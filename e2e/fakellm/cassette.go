package fakellm

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/tidwall/gjson"
	"gopkg.in/yaml.v3"
)

// The recorded interactions are real OpenAI responses (go-vcr cassettes,
// Apache-2.0, from envoyproxy/ai-gateway), kept byte-identical so that their
// usage numbers stay the provider's.
//
//go:embed testdata/recorded/*.yaml
var recorded embed.FS

// interaction is one recorded request and its response.
type interaction struct {
	cassette string
	api      string
	reqBody  []byte
	status   int
	header   http.Header
	body     []byte
}

type cassettes struct {
	byName  map[string]*interaction
	byBody  map[string]*interaction
	byQuery map[string]*interaction
}

// cassetteFile is the part of the go-vcr v2 format the fake LLM needs.
type cassetteFile struct {
	Interactions []struct {
		Request struct {
			Body string `yaml:"body"`
			URL  string `yaml:"url"`
		} `yaml:"request"`
		Response struct {
			Body    string              `yaml:"body"`
			Headers map[string][]string `yaml:"headers"`
			Code    int                 `yaml:"code"`
		} `yaml:"response"`
	} `yaml:"interactions"`
}

// loadCassettes parses the embedded cassettes once per process: they never
// change and every Server shares them read-only.
var loadCassettes = sync.OnceValues(parseCassettes)

func parseCassettes() (*cassettes, error) {
	c := &cassettes{byName: map[string]*interaction{}, byBody: map[string]*interaction{}, byQuery: map[string]*interaction{}}
	names, err := fs.Glob(recorded, "testdata/recorded/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("cannot list cassettes: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		raw, err := recorded.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("cannot read cassette %s: %w", name, err)
		}
		var f cassetteFile
		if err := yaml.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("cannot parse cassette %s: %w", name, err)
		}
		if len(f.Interactions) == 0 {
			return nil, fmt.Errorf("cassette %s has no interaction", name)
		}
		in := f.Interactions[0]
		u, err := url.Parse(in.Request.URL)
		if err != nil {
			return nil, fmt.Errorf("cassette %s: bad url: %w", name, err)
		}
		it := &interaction{
			cassette: strings.TrimSuffix(path.Base(name), ".yaml"),
			api:      apiOf(u.Path),
			reqBody:  []byte(in.Request.Body),
			status:   in.Response.Code,
			header:   http.Header{},
			body:     []byte(in.Response.Body),
		}
		for k, vs := range in.Response.Headers {
			for _, v := range vs {
				it.header.Add(k, v)
			}
		}
		c.byName[it.cassette] = it
		if k, ok := bodyKey(it.api, it.reqBody); ok {
			if _, dup := c.byBody[k]; !dup {
				c.byBody[k] = it
			}
		}
		if k, ok := queryKey(it.api, it.reqBody); ok {
			if _, dup := c.byQuery[k]; !dup {
				c.byQuery[k] = it
			}
		}
	}
	return c, nil
}

// find returns the interaction named by the request's header, else the one
// whose recorded request body equals this one, else the one with the same
// model, stream flag and prompt (so that a gateway adding fields such as
// stream_options still finds it).
func (c *cassettes) find(name, api string, body []byte) *interaction {
	if name != "" {
		return c.byName[name]
	}
	if k, ok := bodyKey(api, body); ok {
		if it := c.byBody[k]; it != nil {
			return it
		}
	}
	if k, ok := queryKey(api, body); ok {
		return c.byQuery[k]
	}
	return nil
}

// bodyKey is the API and the body in canonical JSON.
func bodyKey(api string, body []byte) (string, bool) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "", false
	}
	canon, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return api + "\x00" + string(canon), true
}

// queryKey is the API, model, stream flag and prompt in canonical JSON.
func queryKey(api string, body []byte) (string, bool) {
	if !gjson.ValidBytes(body) {
		return "", false
	}
	g := gjson.ParseBytes(body)
	var prompt any
	for _, f := range []string{"messages", "input", "prompt"} {
		if r := g.Get(f); r.Exists() {
			prompt = r.Value()
			break
		}
	}
	canon, err := json.Marshal(prompt)
	if err != nil {
		return "", false
	}
	return fmt.Sprintf("%s\x00%s\x00%t\x00%s", api, g.Get("model").String(), g.Get("stream").Bool(), canon), true
}

// replay sends a recorded response: its status, its headers and its body,
// byte for byte. A recorded SSE stream is written event by event with a
// flush (and Plan.Delay) before each, so it reaches the client as a stream.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, p Plan, it *interaction, rep *Report) {
	for k, vs := range it.header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Content-Encoding", "Transfer-Encoding", "Connection":
			continue
		}
		w.Header()[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	stream := strings.HasPrefix(it.header.Get("Content-Type"), "text/event-stream")
	events := [][]byte{it.body}
	if stream {
		events = splitEvents(it.body)
	} else if !p.GzipAlways && !(p.Gzip && acceptsGzip(r)) {
		w.Header().Set("Content-Length", fmt.Sprint(len(it.body)))
	}
	s.update(rep, func(rep *Report) {
		rep.Cassette, rep.Status, rep.Stream = it.cassette, it.status, stream
		rep.Model = modelOf(it.body)
	})
	bw := startBody(w, r, p, it.status, "")
	var text strings.Builder
	for i, ev := range events {
		if p.Cut && i == p.CutAfter {
			bw.cut()
		}
		if stream {
			if err := s.opts.Sleep(r.Context().Done(), p.Delay); err != nil {
				return
			}
		}
		if err := bw.write(ev); err != nil {
			return
		}
		text.WriteString(textOf(it.api, ev))
		u, ok := usageOf(it.api, ev)
		s.update(rep, func(rep *Report) {
			rep.Chunks, rep.Text = i+1, text.String()
			if ok {
				rep.Usage, rep.UsageSent = u, true
			}
		})
	}
	if bw.finish() == nil {
		s.update(rep, func(rep *Report) { rep.Completed = true })
	}
}

// splitEvents cuts an SSE body after each blank line, keeping every byte.
func splitEvents(body []byte) [][]byte {
	var out [][]byte
	for len(body) > 0 {
		i := bytes.Index(body, []byte("\n\n"))
		if i < 0 {
			out = append(out, body)
			break
		}
		out = append(out, body[:i+2])
		body = body[i+2:]
	}
	return out
}

// jsonDocs returns the JSON documents in b: b itself, or its SSE data lines.
func jsonDocs(b []byte) []gjson.Result {
	if gjson.ValidBytes(b) {
		return []gjson.Result{gjson.ParseBytes(b)}
	}
	var out []gjson.Result
	for _, line := range bytes.Split(b, []byte("\n")) {
		if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			d = bytes.TrimSpace(d)
			if gjson.ValidBytes(d) {
				out = append(out, gjson.ParseBytes(d))
			}
		}
	}
	return out
}

func modelOf(b []byte) string {
	for _, d := range jsonDocs(b) {
		for _, p := range []string{"model", "response.model", "message.model"} {
			if m := d.Get(p); m.Exists() {
				return m.String()
			}
		}
	}
	return ""
}

// textOf extracts the generated text from a response body or SSE event.
func textOf(api string, b []byte) string {
	var sb strings.Builder
	for _, d := range jsonDocs(b) {
		switch api {
		case APIChat:
			sb.WriteString(d.Get("choices.0.delta.content").String())
			sb.WriteString(d.Get("choices.0.message.content").String())
		case APICompletions:
			sb.WriteString(d.Get("choices.0.text").String())
		}
	}
	return sb.String()
}

// usageOf returns the usage numbers in a recorded OpenAI body or event.
func usageOf(api string, b []byte) (Usage, bool) {
	var u Usage
	found := false
	for _, d := range jsonDocs(b) {
		g := d.Get("usage")
		if !g.IsObject() {
			continue
		}
		found = true
		u = Usage{
			Input:       g.Get("prompt_tokens").Int(),
			Output:      g.Get("completion_tokens").Int(),
			CachedInput: g.Get("prompt_tokens_details.cached_tokens").Int(),
			Reasoning:   g.Get("completion_tokens_details.reasoning_tokens").Int(),
		}
		if api == APIResponses {
			u = Usage{Input: g.Get("input_tokens").Int(), Output: g.Get("output_tokens").Int()}
		}
	}
	return u, found
}
