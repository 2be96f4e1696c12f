package tokens

import "strings"

// Message is one chat message as a chat model's prompt format sees it: the
// text parts of its content joined, its role and its optional name.
type Message struct {
	Role    string
	Name    string
	Content string
}

// ChatFormat is the token overhead a chat model's prompt format adds around
// messages: each message is wrapped in special tokens around its role (and
// name) and content, and the prompt ends by opening the assistant's reply.
type ChatFormat struct {
	// PerMessage is added for every message, beyond its role and content.
	PerMessage int
	// PerName is added for a message that has a name, beyond the name.
	PerName int
	// Reply is added once for the start of the assistant's reply.
	Reply int
}

var (
	// chatFormatOpenAI is the format of gpt-3.5-turbo (0613 and later),
	// gpt-4, gpt-4o and gpt-4.1, as OpenAI documents it: 3 per message, 1
	// per name, 3 to start the reply.
	chatFormatOpenAI = ChatFormat{PerMessage: 3, PerName: 1, Reply: 3}
	// chatFormatGPT5 starts the reply with one token less: the prompt_tokens
	// gpt-5 models report are two role-and-content counts plus 5 for one
	// message (see testdata/recorded).
	chatFormatGPT5 = ChatFormat{PerMessage: 3, PerName: 1, Reply: 2}
)

// ChatFormatFor returns the prompt format of a chat model: gpt-5's for the
// gpt-5 family, else the one OpenAI documents for its chat models.
func ChatFormatFor(model string) ChatFormat {
	name := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if strings.HasPrefix(name, "gpt-5") {
		return chatFormatGPT5
	}
	return chatFormatOpenAI
}

// CountChat returns the prompt tokens of a chat request's messages in format
// f. Tools, images and audio in the request are not counted.
func (e *Encoding) CountChat(f ChatFormat, msgs []Message) int {
	n := f.Reply
	for _, m := range msgs {
		n += f.PerMessage + e.Count(m.Role) + e.Count(m.Content)
		if m.Name != "" {
			n += f.PerName + e.Count(m.Name)
		}
	}
	return n
}
