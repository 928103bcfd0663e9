package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// No cluster here, so `kubectl apply --dry-run=client` cannot run (it needs
// the API server's discovery even with --validate=false). The schema check
// instead: every object of the Kustomize base (and the example Secret) of a
// built-in kind decodes into the Kubernetes API's own Go types with unknown
// fields refused, so a misspelt or misplaced field, a wrong type or a wrong
// apiVersion fails here as it would fail `kubectl apply --validate=strict`.
// The two CRDs (ServiceMonitor, PrometheusRule) are checked against the
// fields of their prometheus-operator schema that the base uses.

// strictJSON decodes b into v refusing unknown fields and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

type serviceMonitorSchema struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace,omitempty"`
		Labels    map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		NamespaceSelector *struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type promRuleSchema struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace,omitempty"`
		Labels    map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Alert       string            `json:"alert,omitempty"`
				Record      string            `json:"record,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// k8sTyped returns an empty value of the Go type for apiVersion/kind.
func k8sTyped(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &serviceMonitorSchema{}, nil
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &promRuleSchema{}, nil
	}
	return nil, fmt.Errorf("no schema for apiVersion %q kind %q", apiVersion, kind)
}

// checkK8sSchema checks every YAML document of b; it returns the kinds seen.
func checkK8sSchema(name string, b []byte) (kinds []string, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for i := 0; ; i++ {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return kinds, nil
		} else if err != nil {
			return kinds, fmt.Errorf("%s document %d: %w", name, i, err)
		}
		if doc == nil {
			continue
		}
		js, err := json.Marshal(doc)
		if err != nil {
			return kinds, fmt.Errorf("%s document %d: %w", name, i, err)
		}
		apiVersion, _ := doc["apiVersion"].(string)
		kind, _ := doc["kind"].(string)
		v, err := k8sTyped(apiVersion, kind)
		if err != nil {
			return kinds, fmt.Errorf("%s document %d: %w", name, i, err)
		}
		if err := strictJSON(js, v); err != nil {
			return kinds, fmt.Errorf("%s: %s: %w", name, kind, err)
		}
		kinds = append(kinds, kind)
	}
}

func TestKubernetesSchema(t *testing.T) {
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile("k8s/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatal(err)
	}
	files := append(append([]string{}, kust.Resources...), "secret.example.yaml")
	var kinds []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("k8s", f))
		if err != nil {
			t.Fatal(err)
		}
		k, err := checkK8sSchema(f, b)
		if err != nil {
			t.Error(err)
		}
		kinds = append(kinds, k...)
	}
	if len(kinds) < len(files) {
		t.Errorf("only %d objects in %d files", len(kinds), len(files))
	}
	t.Logf("%d objects: %s", len(kinds), strings.Join(kinds, ", "))
}

// The check can fail: a misspelt field, a field at the wrong level, a
// wrong type and an unknown kind are each refused.
func TestKubernetesSchemaRefuses(t *testing.T) {
	b, err := os.ReadFile("k8s/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkK8sSchema("deployment.yaml", b); err != nil {
		t.Fatalf("the real file: %v", err)
	}
	for _, c := range []struct{ what, old, new string }{
		{"misspelt field", "terminationGracePeriodSeconds:", "terminationGracePeriodSecond:"},
		{"wrong type", "terminationGracePeriodSeconds: ", "terminationGracePeriodSeconds: x"},
		{"wrong apiVersion", "apiVersion: apps/v1", "apiVersion: apps/v1beta1"},
		{"field at the wrong level", "  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  terminationGracePeriodSeconds: 60\n"},
	} {
		if !bytes.Contains(b, []byte(c.old)) {
			t.Fatalf("%s: deployment.yaml has no %q", c.what, c.old)
		}
		bad := bytes.Replace(b, []byte(c.old), []byte(c.new), 1)
		if _, err := checkK8sSchema("deployment.yaml", bad); err == nil {
			t.Errorf("%s: accepted", c.what)
		} else {
			t.Logf("%s: %v", c.what, err)
		}
	}
}
