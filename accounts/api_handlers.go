package accounts

import (
	"net/http"
)

func (a *api) listTiers(w http.ResponseWriter, r *http.Request) {
	ts, err := a.o.Store.Tiers(r.Context(), a.base())
	answer(w, http.StatusOK, map[string]any{"tiers": ts}, err)
}

func (a *api) getTier(w http.ResponseWriter, r *http.Request) {
	t, err := a.o.Store.Tier(r.Context(), a.base(), r.PathValue("name"))
	answer(w, http.StatusOK, t, err)
}

func (a *api) createTier(w http.ResponseWriter, r *http.Request) {
	data, ok := body(w, r)
	if !ok {
		return
	}
	in, err := decodeTier(data)
	var t TierInfo
	if err == nil {
		t, err = a.o.Store.CreateTier(r.Context(), a.base(), in)
		a.changed("tier created", in.Name, err)
	}
	answer(w, http.StatusCreated, t, err)
}

func (a *api) replaceTier(w http.ResponseWriter, r *http.Request) {
	data, ok := body(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	in, err := decodeTier(data)
	var t TierInfo
	if err == nil {
		t, err = a.o.Store.ReplaceTier(r.Context(), a.base(), name, in)
		a.changed("tier replaced", name, err)
	}
	answer(w, http.StatusOK, t, err)
}

func (a *api) deleteTier(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := a.o.Store.DeleteTier(r.Context(), a.base(), name)
	a.changed("tier deleted", name, err)
	answer(w, http.StatusNoContent, nil, err)
}

func (a *api) listConsumers(w http.ResponseWriter, r *http.Request) {
	cs, err := a.o.Store.Consumers(r.Context(), a.base())
	answer(w, http.StatusOK, map[string]any{"consumers": cs}, err)
}

func (a *api) getConsumer(w http.ResponseWriter, r *http.Request) {
	c, err := a.o.Store.Consumer(r.Context(), a.base(), r.PathValue("name"))
	answer(w, http.StatusOK, c, err)
}

func (a *api) createConsumer(w http.ResponseWriter, r *http.Request) {
	data, ok := body(w, r)
	if !ok {
		return
	}
	in, err := decodeConsumer(data)
	var c ConsumerInfo
	if err == nil {
		c, err = a.o.Store.CreateConsumer(r.Context(), a.base(), in)
		a.changed("consumer created", in.Name, err)
	}
	answer(w, http.StatusCreated, c, err)
}

func (a *api) patchConsumer(w http.ResponseWriter, r *http.Request) {
	data, ok := body(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	p, err := decodeConsumerPatch(data, name)
	var c ConsumerInfo
	if err == nil {
		c, err = a.o.Store.UpdateConsumer(r.Context(), a.base(), name, p)
		a.changed("consumer changed", name, err)
	}
	answer(w, http.StatusOK, c, err)
}

func (a *api) deleteConsumer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := a.o.Store.DeleteConsumer(r.Context(), a.base(), name)
	a.changed("consumer deleted", name, err)
	answer(w, http.StatusNoContent, nil, err)
}

func (a *api) listKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := a.o.Store.Keys(r.Context(), a.base(), r.PathValue("name"))
	answer(w, http.StatusOK, map[string]any{"keys": ks}, err)
}

// issued is the one answer that holds a key.
type issued struct {
	KeyInfo
	Key string `json:"key"`
}

func writeIssued(w http.ResponseWriter, k IssuedKey, err error) {
	if err != nil {
		answer(w, 0, nil, err)
		return
	}
	// The key is shown this once: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, issued{KeyInfo: k.KeyInfo, Key: k.Secret.Reveal()})
}

func (a *api) issueKey(w http.ResponseWriter, r *http.Request) {
	data, ok := body(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	req, err := decodeKeyRequest(data)
	var k IssuedKey
	if err == nil {
		k, err = a.o.Store.IssueKey(r.Context(), a.base(), name, req)
		a.changed("key issued", name, err, "key_id", k.ID, "prefix", k.Prefix)
	}
	writeIssued(w, k, err)
}

func (a *api) rotateKey(w http.ResponseWriter, r *http.Request) {
	data, ok := body(w, r)
	if !ok {
		return
	}
	name, id := r.PathValue("name"), r.PathValue("id")
	req, err := decodeRotateRequest(data)
	var k IssuedKey
	if err == nil {
		k, err = a.o.Store.RotateKey(r.Context(), a.base(), name, id, req)
		a.changed("key rotated", name, err, "old_key_id", id, "key_id", k.ID, "prefix", k.Prefix)
	}
	writeIssued(w, k, err)
}

func (a *api) revokeKey(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("name"), r.PathValue("id")
	err := a.o.Store.RevokeKey(r.Context(), a.base(), name, id)
	a.changed("key revoked", name, err, "key_id", id)
	answer(w, http.StatusNoContent, nil, err)
}

func (a *api) resting(p *ProviderInfo) {
	if a.o.ProviderResting == nil {
		return
	}
	now := a.o.Clock()
	for i := range p.Keys {
		if until := a.o.ProviderResting(p.Name, p.Keys[i].ID); until.After(now) {
			p.Keys[i].RestingUntil = timePtr(until)
		}
	}
}

func (a *api) listProviders(w http.ResponseWriter, r *http.Request) {
	ps, err := a.o.Store.Providers(r.Context(), a.base())
	for i := range ps {
		a.resting(&ps[i])
	}
	answer(w, http.StatusOK, map[string]any{"providers": ps}, err)
}

func (a *api) getProvider(w http.ResponseWriter, r *http.Request) {
	p, err := a.o.Store.Provider(r.Context(), a.base(), r.PathValue("name"))
	a.resting(&p)
	answer(w, http.StatusOK, p, err)
}

func (a *api) providerHealth(w http.ResponseWriter, _ *http.Request) {
	var v any
	if a.o.ProviderHealth != nil {
		v = a.o.ProviderHealth()
	}
	if v == nil {
		v = []any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"providers": v})
}

func (a *api) createProvider(w http.ResponseWriter, r *http.Request) {
	data, ok := body(w, r)
	if !ok {
		return
	}
	in, err := decodeProvider(data)
	var p ProviderInfo
	if err == nil {
		p, err = a.o.Store.CreateProvider(r.Context(), a.base(), in)
		a.changed("provider created", in.Name, err, "keys", len(p.Keys))
	}
	answer(w, http.StatusCreated, p, err)
}

func (a *api) replaceProvider(w http.ResponseWriter, r *http.Request) {
	data, ok := body(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	in, err := decodeProvider(data)
	var p ProviderInfo
	if err == nil {
		p, err = a.o.Store.ReplaceProvider(r.Context(), a.base(), name, in)
		a.changed("provider replaced", name, err, "keys", len(p.Keys))
	}
	a.resting(&p)
	answer(w, http.StatusOK, p, err)
}

func (a *api) deleteProvider(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := a.o.Store.DeleteProvider(r.Context(), a.base(), name)
	a.changed("provider deleted", name, err)
	answer(w, http.StatusNoContent, nil, err)
}

func (a *api) addProviderKey(w http.ResponseWriter, r *http.Request) {
	data, ok := body(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	key, err := decodeProviderKey(data)
	var k ProviderKeyInfo
	if err == nil {
		k, err = a.o.Store.AddProviderKey(r.Context(), a.base(), name, key)
		a.changed("provider key added", name, err, "key_id", k.ID, "prefix", k.Prefix)
	}
	answer(w, http.StatusCreated, map[string]string{"id": k.ID, "prefix": k.Prefix}, err)
}

func (a *api) deleteProviderKey(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("name"), r.PathValue("id")
	err := a.o.Store.DeleteProviderKey(r.Context(), a.base(), name, id)
	a.changed("provider key deleted", name, err, "key_id", id)
	answer(w, http.StatusNoContent, nil, err)
}
