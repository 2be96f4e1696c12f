// Package limiter holds tollgate's rate-limit rules: their configuration,
// in the shape of Higress's ai-token-ratelimit (token_ratelimit) and
// cluster-key-rate-limit (request_ratelimit) plugins, and the compiled
// matcher that tells, for one request, which [ledger.Window]s apply. The
// ledger then reserves and settles against those windows.
//
// # Which windows apply
//
// Rules are independent: every rule whose match scope admits the request
// applies, in the order written (token rules first). Within one rule:
//
//   - global_threshold, when set, applies to every request in the rule's
//     scope, all of them sharing one counter per window.
//   - rule_items are tried in order and the first item that matches applies;
//     the rest of the rule's items are ignored. An item matches when the
//     value it reads (header, query parameter, cookie, consumer, model or
//     client address) is present, not empty, and matches one of its
//     limit_keys. An item whose value is absent or matches no key is
//     skipped, and the next item is tried. This is Higress's documented
//     behaviour, which its examples rely on (exact keys first, then a "*"
//     fall-back item). Limits that must all hold belong in separate rules.
//   - limit_keys are tried in order and the first key that matches the value
//     applies. Keys are not reordered: an exact key written after a "*" is
//     never reached, and Validate refuses such a configuration.
//   - Every window set on the matched key applies (token_per_second,
//     _minute, _hour and _day may be combined); Higress would pick one.
//
// A limit_by_<source> item (header, param, cookie, consumer, model) keeps
// one counter per limit key: every request whose value matches the key
// counts against it. A limit_by_per_<source> item (and limit_by_per_ip)
// keeps one counter per distinct value, the key only choosing which values
// are limited and how much. An exact key therefore behaves the same in
// both forms.
//
// Patterns: an exact value, "*" for any value, "regexp:<RE2>" (unanchored,
// like Go's MatchString: write ^ and $ to anchor), and for limit_by_per_ip
// an address, a CIDR prefix or "*". Patterns are allowed in the shared
// limit_by_* form too, where Higress compares them literally.
//
// # Keys
//
// See [ConsumerTag] and the comment at the top of keys.go: every window key
// holds exactly one Redis hash tag, values read from the request are
// hashed, and no limit number is part of a key, so a changed limit keeps
// its counter.
package limiter
