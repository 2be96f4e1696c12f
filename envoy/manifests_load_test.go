package envoy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	yamlv3 "gopkg.in/yaml.v3"
	istionet "istio.io/api/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/tollgate-ai/tollgate/e2e/envoyemu"
)

// The checks read the repository through a map of path → content, so that
// TestManifestChecksCatchDrift can hand them copies with one reference broken.
const repoRoot = ".."

var (
	manifestDirs = []string{"envoy/k8s", "envoy/istio", "envoy/envoy-gateway"}
	manifestFile = []string{"Dockerfile", ".dockerignore", "go.mod", "envoy/docker-compose.yaml", "envoy/compose/tollgate.yaml"}
)

func readRepo(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range manifestFile {
		b, err := os.ReadFile(filepath.Join(repoRoot, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	for _, dir := range manifestDirs {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(repoRoot, p)
			files[filepath.ToSlash(rel)] = b
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// bundle is every manifest, decoded with the types of the project that
// defines it, so that a misspelled field is an error.
type bundle struct {
	files map[string][]byte

	envoy *envoyemu.Config
	boot  *bootstrapv3.Bootstrap

	docker  *dockerfile
	compose *composeFile

	kustomization *kustomization
	base          []object // envoy/k8s as kustomize renders it
	redis         []object // envoy/k8s/redis: the base plus Redis
	configMaps    map[string]map[string]string

	deploy *appsv1.Deployment
	svc    *corev1.Service
	secret *corev1.Secret
	hpa    *autoscalingv2.HorizontalPodAutoscaler
	pdb    *policyv1.PodDisruptionBudget
	ns     *corev1.Namespace

	envoyFilters map[string]*istionet.EnvoyFilter // by file
	egObjects    []object
}

// object is one decoded manifest document.
type object struct {
	file      string
	kind      string
	name      string
	namespace string
	obj       any
}

func loadBundle(files map[string][]byte) (*bundle, error) {
	b := &bundle{files: files, configMaps: map[string]map[string]string{}, envoyFilters: map[string]*istionet.EnvoyFilter{}}
	var err error
	if b.envoy, err = envoyemu.LoadConfig("envoy.yaml"); err != nil {
		return nil, err
	}
	if b.boot, err = envoyemu.LoadBootstrap("envoy.yaml"); err != nil {
		return nil, err
	}
	if b.docker, err = parseDockerfile(files["Dockerfile"]); err != nil {
		return nil, fmt.Errorf("Dockerfile: %w", err)
	}
	if b.compose, err = parseCompose(files["envoy/docker-compose.yaml"]); err != nil {
		return nil, fmt.Errorf("envoy/docker-compose.yaml: %w", err)
	}
	if b.base, b.kustomization, err = b.kustomize("envoy/k8s"); err != nil {
		return nil, err
	}
	if b.redis, _, err = b.kustomize("envoy/k8s/redis"); err != nil {
		return nil, err
	}
	for _, o := range b.base {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			err = setOnce(&b.deploy, v, o, err)
		case *corev1.Service:
			err = setOnce(&b.svc, v, o, err)
		case *corev1.Secret:
			err = setOnce(&b.secret, v, o, err)
		case *autoscalingv2.HorizontalPodAutoscaler:
			err = setOnce(&b.hpa, v, o, err)
		case *policyv1.PodDisruptionBudget:
			err = setOnce(&b.pdb, v, o, err)
		case *corev1.Namespace:
			err = setOnce(&b.ns, v, o, err)
		}
	}
	if err != nil {
		return nil, err
	}
	if b.deploy == nil || b.svc == nil || b.secret == nil || b.hpa == nil || b.pdb == nil || b.ns == nil {
		return nil, errors.New("envoy/k8s: want one each of Deployment, Service, Secret, HorizontalPodAutoscaler, PodDisruptionBudget, Namespace")
	}
	for name, data := range files {
		dir := path.Dir(name)
		switch {
		case dir == "envoy/istio":
			objs, err := decodeFile(name, data)
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				f, ok := o.obj.(*istionet.EnvoyFilter)
				if !ok || len(objs) != 1 {
					return nil, fmt.Errorf("%s: want exactly one EnvoyFilter", name)
				}
				b.envoyFilters[name] = f
			}
		case dir == "envoy/envoy-gateway" && path.Base(name) != "kustomization.yaml":
			objs, err := decodeFile(name, data)
			if err != nil {
				return nil, err
			}
			b.egObjects = append(b.egObjects, objs...)
		}
	}
	return b, nil
}

func setOnce[T any](dst **T, v *T, o object, err error) error {
	if *dst != nil {
		return errors.Join(err, fmt.Errorf("%s: a second %s %q", o.file, o.kind, o.name))
	}
	*dst = v
	return err
}

// kustomization is the part of kustomize's file format these manifests use;
// unknown fields are errors.
type kustomization struct {
	APIVersion         string   `json:"apiVersion"`
	Kind               string   `json:"kind"`
	Namespace          string   `json:"namespace,omitempty"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name    string   `json:"name"`
		Files   []string `json:"files"`
		Options struct {
			Labels map[string]string `json:"labels,omitempty"`
		} `json:"options"`
	} `json:"configMapGenerator,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images,omitempty"`
}

// kustomize renders dir the way `kubectl apply -k dir` would for these
// files: resources (files and directories with their own kustomization),
// generated ConfigMaps, and the namespace set on every object.
func (b *bundle) kustomize(dir string) ([]object, *kustomization, error) {
	kpath := dir + "/kustomization.yaml"
	var k kustomization
	if err := k8syaml.UnmarshalStrict(b.files[kpath], &k); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", kpath, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, nil, fmt.Errorf("%s: apiVersion/kind = %s/%s", kpath, k.APIVersion, k.Kind)
	}
	var out []object
	for _, r := range k.Resources {
		p := path.Clean(path.Join(dir, r))
		if _, ok := b.files[p+"/kustomization.yaml"]; ok {
			objs, _, err := b.kustomize(p)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, objs...)
			continue
		}
		data, ok := b.files[p]
		if !ok {
			return nil, nil, fmt.Errorf("%s: resource %s does not exist", kpath, r)
		}
		objs, err := decodeFile(p, data)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, objs...)
	}
	for _, g := range k.ConfigMapGenerator {
		data := map[string]string{}
		for _, f := range g.Files {
			content, ok := b.files[path.Join(dir, f)]
			if !ok {
				return nil, nil, fmt.Errorf("%s: configMapGenerator %s: file %s does not exist", kpath, g.Name, f)
			}
			data[path.Base(f)] = string(content)
		}
		b.configMaps[g.Name] = data
		out = append(out, object{file: kpath, kind: "ConfigMap", name: g.Name, namespace: k.Namespace, obj: data})
	}
	if k.Namespace != "" {
		for i := range out {
			if out[i].kind != "Namespace" {
				out[i].namespace = k.Namespace
			}
		}
	}
	return out, &k, nil
}

// decoders maps apiVersion/kind to a strict decoder into the owning project's
// Go type (Envoy Gateway's kinds into the mirrors in gateways_test.go).
var decoders = map[string]func([]byte) (any, error){
	"v1/Namespace":                                        strict[corev1.Namespace],
	"v1/Secret":                                           strict[corev1.Secret],
	"v1/Service":                                          strict[corev1.Service],
	"apps/v1/Deployment":                                  strict[appsv1.Deployment],
	"apps/v1/StatefulSet":                                 strict[appsv1.StatefulSet],
	"autoscaling/v2/HorizontalPodAutoscaler":              strict[autoscalingv2.HorizontalPodAutoscaler],
	"policy/v1/PodDisruptionBudget":                       strict[policyv1.PodDisruptionBudget],
	"networking.istio.io/v1alpha3/EnvoyFilter":            decodeEnvoyFilter,
	"gateway.networking.k8s.io/v1/Gateway":                strict[gwapiv1.Gateway],
	"gateway.networking.k8s.io/v1/HTTPRoute":              strict[gwapiv1.HTTPRoute],
	"gateway.networking.k8s.io/v1/BackendTLSPolicy":       strict[gwapiv1.BackendTLSPolicy],
	"gateway.networking.k8s.io/v1beta1/ReferenceGrant":    strict[gwapiv1beta1.ReferenceGrant],
	"gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy": strict[egExtensionPolicy],
	"gateway.envoyproxy.io/v1alpha1/Backend":              strict[egBackend],
	"gateway.envoyproxy.io/v1alpha1/BackendTrafficPolicy": strict[egTrafficPolicy],
}

func strict[T any](doc []byte) (any, error) {
	v := new(T)
	if err := k8syaml.UnmarshalStrict(doc, v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeEnvoyFilter decodes the spec with Istio's own protobuf type, whose
// JSON decoding refuses unknown fields and enum values.
func decodeEnvoyFilter(doc []byte) (any, error) {
	var top struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Spec       json.RawMessage   `json:"spec"`
	}
	if err := k8syaml.UnmarshalStrict(doc, &top); err != nil {
		return nil, err
	}
	var f istionet.EnvoyFilter
	if err := protojson.Unmarshal(top.Spec, &f); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	return &f, nil
}

func decodeFile(name string, data []byte) ([]object, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var out []object
	for i := 0; ; i++ {
		var node yamlv3.Node
		if err := dec.Decode(&node); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		doc, err := yamlv3.Marshal(&node)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := k8syaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		decode, ok := decoders[head.APIVersion+"/"+head.Kind]
		if !ok {
			return nil, fmt.Errorf("%s: document %d: unexpected %s %s", name, i, head.APIVersion, head.Kind)
		}
		obj, err := decode(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %q: %w", name, head.Kind, head.Metadata.Name, err)
		}
		out = append(out, object{file: name, kind: head.Kind, name: head.Metadata.Name, namespace: head.Metadata.Namespace, obj: obj})
	}
}

// find returns the one object of kind and name in objs.
func find(objs []object, kind, name string) (object, error) {
	var hits []object
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			hits = append(hits, o)
		}
	}
	if len(hits) != 1 {
		var have []string
		for _, o := range objs {
			if o.kind == kind {
				have = append(have, o.namespace+"/"+o.name)
			}
		}
		slices.Sort(have)
		return object{}, fmt.Errorf("want one %s %q, found %d (have %v)", kind, name, len(hits), have)
	}
	return hits[0], nil
}
