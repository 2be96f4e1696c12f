// Package e2e is tollgate's end-to-end suite: the official OpenAI and
// Anthropic Go SDKs call an Envoy stand-in ([envoyemu], configured from the
// shipped envoy/envoy.yaml) that runs every request through tollgate's
// ext_proc server before a fake LLM provider ([fakellm]) answers it, with
// real redis-server processes where a scenario needs them. After each
// scenario the usage tollgate committed (its admin API) is compared with
// what the fake provider reported.
//
// The package has only tests; `make e2e` runs them and `make test` too. The
// demo command in e2e/demo runs the same chain for people to try by hand.
package e2e
