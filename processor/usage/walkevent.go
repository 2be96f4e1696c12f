package usage

import "bytes"

// walked is what a walk noted in one event. Its meaning follows the gjson
// reads the Meter makes of a whole document (meter.go, openai.go): a key
// matched by ForEach counts at every occurrence, one read with Get only at
// its first.
type walked struct {
	// OpenAI chunks.
	texts   []span // strings to count, in the order the Meter counts them
	model   span   // the first root "model" that is a non-empty string
	usage   span   // the last root "usage"
	choices int    // elements of the last root "choices"; -1 unless an array
	capped  int    // of those, the ones whose finish_reason is "length"

	// Anthropic and Responses events.
	typ   span // the first root "type"
	delta span // the first root "delta"
	// The first of each in the first root "delta", when it is an object.
	deltaType, deltaText, deltaThinking, deltaJSON span
}

func (ev *walked) reset() {
	*ev = walked{texts: ev.texts[:0], choices: -1}
}

// objKind is what an object is to the walk: which of its members matter.
type objKind uint8

const (
	objChunk          objKind = iota // an OpenAI chunk
	objChoice                        // an element of its choices
	objMessage                       // a choice's delta or message
	objCalls                         // tool_calls written as an object: each value is a call
	objCall                          // one tool call
	objFunction                      // a call's function, or a function_call
	objPart                          // a content part: its first "text"
	objAudio                         // a message's audio: its first "transcript"
	objAnthropic                     // an Anthropic Messages event
	objAnthropicDelta                // its first "delta"
	objResponses                     // a Responses API event
)

// walk checks that d is valid JSON and, when it is an object, notes in
// w.ev what the Meter reads from an event of that kind. It returns false,
// with w.ev incomplete, when d is not valid.
func (w *walker) walk(d []byte, root objKind) bool {
	w.d = d
	if r := &w.resume; len(r.prefix) > 0 && r.kind == root && bytes.HasPrefix(d, r.prefix) {
		w.ev.reset()
		w.ev.model, w.ev.usage, w.ev.typ = r.model, r.usage, r.typ
		i, ok := w.members(skipWS(d, len(r.prefix)), root, r.seen, true)
		return ok && skipWS(d, i) == len(d)
	}
	w.ev.reset()
	i := skipWS(d, 0)
	if i >= len(d) {
		return false
	}
	var ok bool
	if d[i] == '{' {
		i, ok = w.object(i, root)
	} else {
		i, ok = w.skipValue(i)
	}
	return ok && skipWS(d, i) == len(d)
}

// object reads the object starting at d[i] and notes the members its kind
// asks for; any other member is only checked.
func (w *walker) object(i int, kind objKind) (int, bool) {
	d := w.d
	i = skipWS(d, i+1)
	if i >= len(d) {
		return i, false
	}
	if d[i] == '}' {
		return i + 1, true
	}
	return w.members(i, kind, 0, false)
}

// members reads the members of an object from the key at d[i] to the
// closing brace. resumed says d[i] starts the value of the kind's
// resumeKey instead, seen holding the first-occurrence bits of the
// members before it.
func (w *walker) members(i int, kind objKind, seen uint8, resumed bool) (int, bool) {
	d := w.d
	ev := &w.ev
	var (
		name, args span // a function's, counted once it is complete
		s          span
		key        []byte
		ok         bool
	)
	if resumed {
		key = []byte(resumeKey(kind))
	}
	for {
		if resumed {
			resumed = false
		} else {
			if d[i] != '"' {
				return i, false
			}
			var end int
			var esc bool
			if end, esc, ok = str(d, i+1); !ok {
				return end, false
			}
			key = d[i+1 : end-1]
			if esc {
				key = w.unescapeKey(key)
			}
			i = skipWS(d, end)
			if i >= len(d) || d[i] != ':' {
				return i, false
			}
			i++
			if kind == objChunk && seen&1 == 0 && string(key) == "choices" ||
				kind == objAnthropic && seen&2 == 0 && string(key) == "delta" {
				w.saveResume(i, kind, seen)
			}
			i = skipWS(d, i)
		}
		if i >= len(d) {
			return i, false
		}
		c := d[i]
		switch kind {
		case objChunk:
			switch string(key) {
			case "choices":
				seen |= 1
				ev.texts, ev.choices, ev.capped = ev.texts[:0], -1, 0
				if c == '[' {
					i, ok = w.array(i, objChoice)
				} else {
					i, ok = w.skipValue(i)
				}
			case "usage":
				s, ok = w.capture(i)
				i, ev.usage = s.next(), s
			case "model":
				s, ok = w.capture(i)
				i = s.next()
				if ok && !ev.model.ok() && s.nonEmpty(d) {
					ev.model = s
				}
			default:
				if c == '"' {
					i, _, ok = str(d, i+1)
				} else {
					i, ok = w.skip(i)
				}
			}
		case objChoice:
			switch string(key) {
			case "delta", "message":
				i, ok = w.objectOrSkip(i, objMessage)
			case "text":
				i, ok = w.text(i)
			case "finish_reason":
				s, ok = w.capture(i)
				i = s.next()
				if ok && w.strIs(s, "length") {
					ev.capped++
				}
			default:
				if c == '"' {
					i, _, ok = str(d, i+1)
				} else {
					i, ok = w.skip(i)
				}
			}
		case objMessage:
			switch string(key) {
			case "content":
				switch c {
				case '"':
					i, ok = w.text(i)
				case '[':
					i, ok = w.array(i, objPart)
				default:
					i, ok = w.skipValue(i)
				}
			case "reasoning_content", "reasoning", "refusal":
				i, ok = w.text(i)
			case "tool_calls":
				switch c {
				case '[':
					i, ok = w.array(i, objCall)
				case '{':
					i, ok = w.object(i, objCalls)
				default:
					i, ok = w.skipValue(i)
				}
			case "function_call":
				i, ok = w.objectOrSkip(i, objFunction)
			case "audio":
				i, ok = w.objectOrSkip(i, objAudio)
			default:
				if c == '"' {
					i, _, ok = str(d, i+1)
				} else {
					i, ok = w.skip(i)
				}
			}
		case objCalls:
			i, ok = w.objectOrSkip(i, objCall)
		case objCall:
			if seen == 0 && string(key) == "function" {
				seen = 1
				i, ok = w.objectOrSkip(i, objFunction)
			} else {
				i, ok = w.skipValue(i)
			}
		case objFunction:
			s, ok = w.capture(i)
			i = s.next()
			switch string(key) {
			case "name":
				if seen&1 == 0 {
					seen |= 1
					name = s
				}
			case "arguments":
				if seen&2 == 0 {
					seen |= 2
					args = s
				}
			}
		case objPart, objAudio:
			want := "text"
			if kind == objAudio {
				want = "transcript"
			}
			if seen == 0 && string(key) == want {
				seen = 1
				i, ok = w.text(i)
			} else {
				i, ok = w.skipValue(i)
			}
		case objAnthropic, objResponses:
			switch string(key) {
			case "type":
				s, ok = w.capture(i)
				if seen&1 == 0 {
					seen |= 1
					ev.typ = s
				}
			case "delta":
				if seen&2 == 0 && c == '{' && kind == objAnthropic {
					start := i
					i, ok = w.object(i, objAnthropicDelta)
					s = newSpan(start, i, false)
				} else {
					s, ok = w.capture(i)
				}
				if seen&2 == 0 {
					seen |= 2
					ev.delta = s
				}
			default:
				var end int
				end, ok = w.skipValue(i)
				s = newSpan(i, end, false)
			}
			i = s.next()
		case objAnthropicDelta:
			s, ok = w.capture(i)
			i = s.next()
			var bit uint8
			var at *span
			switch string(key) {
			case "type":
				bit, at = 1, &ev.deltaType
			case "text":
				bit, at = 2, &ev.deltaText
			case "thinking":
				bit, at = 4, &ev.deltaThinking
			case "partial_json":
				bit, at = 8, &ev.deltaJSON
			}
			if at != nil && seen&bit == 0 {
				seen |= bit
				*at = s
			}
		}
		if !ok {
			return i, false
		}
		i = skipWS(d, i)
		if i >= len(d) {
			return i, false
		}
		if d[i] == ',' {
			i = skipWS(d, i+1)
			if i >= len(d) {
				return i, false
			}
			continue
		}
		if d[i] != '}' {
			return i, false
		}
		break
	}
	if kind == objFunction {
		// Get("name") and Get("arguments"): the name first, wherever
		// each is.
		w.addText(name)
		w.addText(args)
	}
	return i + 1, true
}

// array reads the array starting at d[i]; its elements that are objects
// are read as elem.
func (w *walker) array(i int, elem objKind) (int, bool) {
	d := w.d
	i = skipWS(d, i+1)
	if i >= len(d) {
		return i, false
	}
	if elem == objChoice {
		w.ev.choices = 0
	}
	if d[i] == ']' {
		return i + 1, true
	}
	for {
		if elem == objChoice {
			w.ev.choices++
		}
		var ok bool
		if i, ok = w.objectOrSkip(i, elem); !ok {
			return i, false
		}
		i = skipWS(d, i)
		if i >= len(d) {
			return i, false
		}
		switch d[i] {
		case ',':
			i = skipWS(d, i+1)
			if i >= len(d) {
				return i, false
			}
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

func (w *walker) objectOrSkip(i int, kind objKind) (int, bool) {
	if w.d[i] == '{' {
		return w.object(i, kind)
	}
	return w.skipValue(i)
}

// capture reads the value starting at d[i] and returns where it is.
func (w *walker) capture(i int) (span, bool) {
	if w.d[i] == '"' {
		end, esc, ok := str(w.d, i+1)
		return newSpan(i, end, esc), ok
	}
	end, ok := w.skipValue(i)
	return newSpan(i, end, false), ok
}

// text reads the value starting at d[i] and notes it as text to count
// when it is a non-empty string.
func (w *walker) text(i int) (int, bool) {
	if w.d[i] != '"' {
		return w.skipValue(i)
	}
	end, esc, ok := str(w.d, i+1)
	if ok && end-i > 2 {
		w.ev.texts = append(w.ev.texts, newSpan(i, end, esc))
	}
	return end, ok
}

// addText notes a captured value as text when it is a non-empty string.
func (w *walker) addText(s span) {
	if s.nonEmpty(w.d) {
		w.ev.texts = append(w.ev.texts, s)
	}
}

// eventType returns the event's type: its first root "type" when that is
// a non-empty string, unescaped, else the SSE event name.
func (w *walker) eventType(name []byte) []byte {
	s := w.ev.typ
	if !s.nonEmpty(w.d) {
		return name
	}
	body := s.body(w.d)
	if !s.esc {
		return body
	}
	w.key = appendUnescaped(w.key[:0], bytesString(body))
	return w.key
}
