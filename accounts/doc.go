// Package accounts keeps the tiers, consumers, consumer keys and providers
// that operators manage at run time through the admin API, beside the ones
// the config file declares.
//
// # Precedence
//
// The config file is the starting point. Tiers, consumers and providers it
// declares are "config"-sourced: the API shows them but refuses to edit or
// delete them (409), except that keys can be issued to and revoked from a
// config consumer, and a config consumer can be disabled and enabled (the
// API's last word wins over the file's `disabled`). Names created through
// the API are "runtime"-sourced and fully manageable. When the config file
// later declares a name that also exists at run time, the config wins: the
// runtime record stays in the store but is ignored (and reported by
// [Merge]) until the config stops declaring it. A key belongs to the
// consumer it was issued to, not just to its name: keys issued to a runtime
// consumer never authenticate as a config consumer of the same name, nor as
// a later runtime consumer re-created under that name.
//
// For example, with this config
//
//	tiers:
//	  - name: free
//	    limits: {token_per_minute: 10000}
//	consumers:
//	  - name: ci
//	    tier: free
//	    keys: ["env:CI_KEY"]
//
// an operator can create a tier "pro" and a consumer "acme" of tier "pro"
// or "free", issue "acme" and "ci" keys, disable "ci", but not change "ci"'s
// tier or delete tier "free".
//
// # Storage
//
// The [Store] keeps records in Redis (shared by every replica; they survive
// restarts) or in memory (one replica; they live until it stops, and its
// provider keys are sealed with a key that lives as long as the process).
// While Redis is down the API answers 503 and each replica keeps the
// accounts it loaded last. In Redis
// every key shares the hash tag {accounts}, so that one script updates them
// all on a Cluster:
//
//	<prefix>{accounts}:version    counter, incremented by every change
//	<prefix>{accounts}:epoch      random id of this data set (changes if Redis lost it)
//	<prefix>{accounts}:tiers      hash: tier name → JSON
//	<prefix>{accounts}:consumers  hash: consumer name → JSON
//	<prefix>{accounts}:state      hash: config consumer name → {"disabled":…}
//	<prefix>{accounts}:keys       hash: key id → JSON (SHA-256 of the key, prefix, times)
//	<prefix>{accounts}:providers  hash: provider name → JSON (keys AES-256-GCM sealed)
//
// A change is validated against the records at version v and committed by a
// script only while the version is still v; it increments the version and
// PUBLISHes it on the channel (default "<prefix>accounts"), all at once.
//
// # Propagation
//
// Each replica subscribes to the channel and also polls the version (every
// poll_interval, default 500ms), since Pub/Sub drops what is published
// while a subscriber reconnects. Seeing a new version, the replica reloads
// every record and hands the [Snapshot] to its watchers ([Store.Watch]),
// which rebuild the policy with [Merge].
//
// # Provider keys
//
// Provider API keys are sealed with AES-256-GCM under the operator's key
// (accounts.encryption_key_env), with a random nonce per value and the
// provider name and key id as additional data, so a sealed value moved to
// another provider or key does not open. The API returns a key's id and a
// hint ("sk-…abcd") only; [Secret] values print as "[redacted]".
package accounts
