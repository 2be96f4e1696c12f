package tokens

import (
	"math/rand/v2"
	"strings"
	"sync"
)

// The test corpus is built from the fragments below by a seeded generator, so
// it is the same on every run and needs no file. It mixes what tollgate
// counts: English and Chinese prose, code, JSON, numbers, emoji, other scripts,
// every kind of whitespace run, contractions, punctuation runs and invalid
// UTF-8.

var englishFragments = []string{
	"The quick brown fox jumps over the lazy dog.",
	"It's a truth universally acknowledged that a single request, in possession of a good API key, must be in want of a quota.",
	"They're here, we've seen them, and I'm sure you'll agree they'd rather not wait.",
	"DON'T PANIC. IT'S ONLY A RATE LIMIT. WE'LL RETRY, THEY'VE SAID, AND I'D AGREE.",
	"She'S reading Ulysses' last chapter; the dogs' bowls are empty, isn't it odd?",
	"Rock 'n' roll, o'clock, y'all, ma'am, 'twas the night before 'release'.",
	"Mr. Smith paid $1,234.56 on 2024-05-13 at 09:41:07 UTC (about 3.14159% of his budget).",
	"Wait... what?! No -- that's not right; it should be 42, not 41.999.",
	"Visit https://example.com/path?query=value&other=1#frag or mail ops@example.org.",
	"Version v1.2.3-rc.4+build.567 fixed CVE-2024-12345 and issue #8910.",
	"Large numbers: 1000000, 123456789012345, 0.000001, 6.022e23, -273.15, +1.",
	"\"Quoted text,\" he said, 'single quotes', «guillemets», „German quotes“ and “curly ones”.",
	"Tabs\tseparate\tthese\twords, and    several   spaces   separate these.",
	"ALLCAPS words, camelCase words, snake_case_words, kebab-case-words, PascalCase, and MiXeD cAsE.",
	"A sentence ending with trailing spaces.   ",
	"Punctuation runs: !!!, ???, ..., ---, ___, ***, ###, @@@, %%%, ^^^, &&&, |||, ~~~, ``` and ;;;.",
	"Brackets (round) [square] {curly} <angle> and nested ((([[[{{{}}}]]]))).",
	"Math: x² + y² = z², ½ + ¼ = ¾, 5 × 3 ÷ 2 ≈ 7.5, ∑ᵢ aᵢ ≥ 0, ∞ ≠ −∞.",
	"Roman numerals Ⅻ and ⅳ, Arabic-Indic digits ٠١٢٣٤٥٦٧٨٩, Devanagari digits ०१२३.",
	"The token <|endoftext|> and <|fim_prefix|> are ordinary text here, as is <|endofprompt|>.",
	"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.",
	"Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis.",
	"I've got 99 problems but a token ain't 1; you've 2, we'd 3, they'll 4, he's 5, she'd 6.",
	"Emoji: 😀 😃 👍🏽 👨‍👩‍👧‍👦 ❤️ 🇺🇸 🇯🇵 🏳️‍🌈 ✅ ❌ 🚀🚀🚀 🤖 (robots) 🙂🙃.",
	"Accents: café, naïve, résumé, façade, jalapeño, Ærøskøbing, Šťastný, Łódź, and decomposed cafe\u0301.",
	"Titlecase digraphs ǅ ǈ ǋ ǲ mix with modifiers ʰ ʲ ˠ ᵃ and ideographic iteration 々 〆.",
	"Control characters \x00\x01\x07\x1b[31mred\x1b[0m and DEL \x7f appear in logs.",
	"Non-breaking\u00a0spaces, ideographic\u3000spaces, line\u2028separators, next\u0085lines, vertical\vtabs and form\ffeeds.",
	"Zero\u200bwidth space, zero\u200cwidth non-joiner, BOM\ufeffhere, and soft\u00adhyphen.",
	"She said: 'It's fine.' He said: \"It'S NOT.\" They said: 'WE'RE LATE'; I'M 'SURE'.",
	"path/to/file.go:123:45: undefined: foo // see ../other/dir/ and C:\\Windows\\System32\\.",
	"Email me at first.last+tag@sub.example.co.uk or call +1 (555) 012-3456 ext. 789.",
}

var chineseFragments = []string{
	"人工智能正在改变我们的生活方式，大语言模型可以回答问题、写代码和翻译文本。",
	"今天天气很好，我们去公园散步吧！你觉得怎么样？",
	"根据《中华人民共和国数据安全法》第二十一条的规定，国家建立数据分类分级保护制度。",
	"这个模型的上下文窗口是128K个词元，价格是每百万词元2.5美元。",
	"“你好，世界！”他说道。‘这是一个测试’——没有问题……",
	"北京、上海、广州、深圳是中国的一线城市；杭州、成都、武汉也发展迅速。",
	"在2024年5月13日，OpenAI发布了GPT-4o模型，支持文本、图像和音频。",
	"我们需要计算每个消费者的令牌使用量，并在Redis中记录配额。",
	"春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
	"床前明月光疑是地上霜举头望明月低头思故乡",
	"日本語の文章も混ざっています。カタカナ、ひらがな、漢字、そしてラーメン！",
	"한국어 문장도 있습니다. 안녕하세요, 반갑습니다!",
	"数字：一二三四五六七八九十百千万亿，以及１２３４５６全角数字和ＡＢＣ全角字母。",
	"繁體中文：這是一段繁體字的測試文本，包含標點符號：「引號」『雙引號』。",
	"第三章　系统设计\n　　本章介绍网关的总体架构与请求处理流程。",
}

var otherScripts = []string{
	"Привет, мир! Это проверка токенизатора. ЗАГЛАВНЫЕ БУКВЫ тоже.",
	"Γειά σου Κόσμε! Ελληνικά γράμματα: αβγδε ΑΒΓΔΕ.",
	"مرحبا بالعالم! هذا نص عربي مع أرقام ١٢٣ وعلامات ترقيم؟",
	"שלום עולם! זהו טקסט בעברית.",
	"नमस्ते दुनिया! यह हिंदी पाठ है जिसमें मात्राएँ और संयुक्ताक्षर हैं: क्षत्रिय, ज्ञान।",
	"สวัสดีชาวโลก นี่คือข้อความภาษาไทย",
	"Tiếng Việt có nhiều dấu: ạ, ả, ấ, ầ, ẩ, ẫ, ậ, ắ, ằ, ẳ, ẵ, ặ.",
	"ქართული ენა, Հայերեն լեզու, አማርኛ ቋንቋ, ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ.",
	"Mixed 混合 scripts: English中文Русский日本語한국어العربية in one run.",
	"𝐌𝐚𝐭𝐡𝐞𝐦𝐚𝐭𝐢𝐜𝐚𝐥 𝔉𝔯𝔞𝔨𝔱𝔲𝔯 𝕯𝖔𝖚𝖇𝖑𝖊 and 𠀀𠀁𠀂 supplementary ideographs.",
}

var codeFragments = []string{
	"package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tif len(os.Args) < 2 {\n\t\tfmt.Fprintln(os.Stderr, \"usage: tollgate <config>\")\n\t\tos.Exit(2)\n\t}\n\tfmt.Printf(\"%s: %d\\n\", os.Args[1], 42)\n}\n",
	"func (c *Counter) Write(p []byte) (n int, err error) {\n\tfor i := 0; i < len(p); i++ {\n\t\tc.buf = append(c.buf, p[i])\n\t}\n\treturn len(p), nil\n}\n",
	"def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\nif __name__ == '__main__':\n    print([fib(i) for i in range(10)])\n",
	"class TokenBucket:\r\n    def __init__(self, rate, burst):\r\n        self.rate = rate\r\n        self.tokens = burst\r\n\r\n    def take(self, n=1):\r\n        if self.tokens >= n:\r\n            self.tokens -= n\r\n            return True\r\n        return False\r\n",
	"{\"id\":\"chatcmpl-9abc123\",\"object\":\"chat.completion.chunk\",\"created\":1715600000,\"model\":\"gpt-4o-2024-05-13\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}",
	"{\n  \"model\": \"gpt-4o-mini\",\n  \"messages\": [\n    {\"role\": \"system\", \"content\": \"You are a helpful assistant.\"},\n    {\"role\": \"user\", \"content\": \"What's 2+2?\"}\n  ],\n  \"stream\": true,\n  \"max_tokens\": 256,\n  \"temperature\": 0.7\n}\n",
	"data: {\"choices\":[{\"delta\":{\"content\":\" world\"}}]}\n\ndata: [DONE]\n\n",
	"#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.go; do\n  gofmt -l \"$f\" | tee -a /tmp/out.log   \ndone\nexit 0\n",
	"SELECT consumer_id, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c\nFROM usage WHERE ts >= NOW() - INTERVAL '1 day'\nGROUP BY consumer_id HAVING SUM(prompt_tokens) > 1000\nORDER BY p DESC LIMIT 10;",
	"local key = KEYS[1]\nlocal limit = tonumber(ARGV[1])\nlocal used = tonumber(redis.call('GET', key) or '0')\nif used + tonumber(ARGV[2]) > limit then\n  return {0, limit - used}\nend\nreturn {1, redis.call('INCRBY', key, ARGV[2])}\n",
	"<html>\n  <body class=\"main\">\n    <p id='x'>Hello &amp; welcome!</p>\n    <!-- comment -->\n  </body>\n</html>\n",
	"const re = /^[a-z0-9_-]{3,16}$/i; let x = a?.b ?? c; x >>>= 2; y **= 3; z ||= {}; // done\n",
	"    \t  indented with mixed tabs and spaces\t\t\n\t    and trailing whitespace   \t\n",
	"matrix = [[1, 2, 3],\n          [4, 5, 6],\n          [7, 8, 9]]  # 3x3\n",
	"key1: value\nkey2:\n  - item1\n  - 'item 2'\n  - \"item\\t3\"\nnested:\n  deep: {a: 1, b: [x, y]}\n",
	"0x1F 0o17 0b1010 1_000_000 3.0e-10 .5 5. 1e9 ffffffff deadbeef CAFEBABE 0xDEADBEEF",
}

var whitespaceRuns = []string{
	" ", "  ", "   ", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r", "\t", "\t\t", " \n", "  \n  ",
	"\n \n", " \t \n\t ", "\u00a0", "\u3000", "\n\u3000\u3000", "    ", "        ", "\v", "\f", "\u2028", "\u0085",
}

var invalidUTF8 = []string{
	"\xff", "\xfe\xfe", "\xe4\xb8", "\xed\xa0\x80", "\xc0\xaf", "\xf0\x9f\x98", "\x80\x80\x80", "\xf4\x90\x80\x80",
	"abc\xffdef", "中\xe4\xb8文", " \xff ", "'\xffs", "\xef\xbf\xbd",
}

var (
	corpusOnce  sync.Once
	corpusParas []string
)

// corpusParagraphs returns the test corpus as paragraphs; concatenated they
// make more than 1 MiB.
func corpusParagraphs() []string {
	corpusOnce.Do(func() { corpusParas = buildCorpus(rand.New(rand.NewPCG(1, 2)), 1<<20+1<<17) })
	return corpusParas
}

// corpusText is the whole corpus as one text.
func corpusText() string { return strings.Join(corpusParagraphs(), "") }

func buildCorpus(r *rand.Rand, size int) []string {
	var paras []string
	total := 0
	for total < size {
		var b strings.Builder
		n := 1 + r.IntN(8)
		kind := r.IntN(10)
		for i := 0; i < n; i++ {
			var frag string
			switch {
			case kind < 4:
				frag = pick(r, englishFragments)
			case kind < 6:
				frag = pick(r, chineseFragments)
			case kind < 8:
				frag = pick(r, codeFragments)
			case kind < 9:
				frag = pick(r, otherScripts)
			default:
				frag = pickAny(r)
			}
			frag = mutate(r, frag)
			b.WriteString(frag)
			if i < n-1 {
				if r.IntN(4) == 0 {
					b.WriteString(pick(r, whitespaceRuns))
				} else {
					b.WriteByte(' ')
				}
			}
		}
		b.WriteString(pick(r, []string{"\n\n", "\n", "\r\n\r\n", "\n\n\n", " \n\n", "\n\t\n"}))
		paras = append(paras, b.String())
		total += b.Len()
	}
	return paras
}

func pick(r *rand.Rand, list []string) string { return list[r.IntN(len(list))] }

func pickAny(r *rand.Rand) string {
	lists := [][]string{englishFragments, chineseFragments, otherScripts, codeFragments, whitespaceRuns, invalidUTF8}
	return pick(r, lists[r.IntN(len(lists))])
}

// mutate varies a fragment so the corpus holds more than its fragments:
// changed case, inserted numbers, emoji, invalid bytes and whitespace.
func mutate(r *rand.Rand, s string) string {
	switch r.IntN(12) {
	case 0:
		return strings.ToUpper(s)
	case 1:
		return strings.ToLower(s)
	case 2:
		return s + " " + pick(r, []string{"12", "123", "1234", "12345678", "3.5", "2,048", "٣٤٥", "½"})
	case 3:
		return pick(r, invalidUTF8) + s
	case 4:
		i := r.IntN(len(s) + 1)
		return s[:i] + pick(r, whitespaceRuns) + s[i:]
	case 5:
		return s + pick(r, []string{"😀", "👍🏽", "🚀", "❤️", "🇨🇳", "…", "!!!", "?!", " :)", "'s", "'S", "'LL"})
	default:
		return s
	}
}
