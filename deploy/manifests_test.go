package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Every EXPORTD_* setting named in the deployment files is one that
// `exportd serve` takes: a misspelt variable would be silently ignored.
func TestSettingNamesExist(t *testing.T) {
	out, err := exec.Command(exportdBinary(t), "serve", "--help").CombinedOutput()
	if len(out) == 0 {
		t.Fatalf("serve --help: %v", err)
	}
	name := regexp.MustCompile(`\bEXPORTD_[A-Z][A-Z0-9_]*`)
	known := map[string]bool{}
	for _, n := range name.FindAllString(string(out), -1) {
		known[n] = true
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	files = append(files, "compose.yaml", "Dockerfile")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range name.FindAllString(string(b), -1) {
			if !known[n] {
				t.Errorf("%s: %s is not a setting of exportd serve", f, n)
			}
		}
	}
}

// selectorLabels returns the labels a selector requires.
func (o k8sObject) selectorLabels() map[string]string {
	m := o.Spec.Selector
	if ml, ok := m["matchLabels"].(map[string]any); ok {
		m = ml
	}
	out := map[string]string{}
	for k, v := range m {
		s, _ := v.(string)
		out[k] = s
	}
	return out
}

// k8sObject is the part of a Kubernetes object these checks read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		// A label selector ({matchLabels: ...}) or, in a Service, the labels.
		Selector       map[string]any              `yaml:"selector"`
		ScaleTargetRef struct{ Kind, Name string } `yaml:"scaleTargetRef"`
		MinReplicas    int                         `yaml:"minReplicas"`
		Ports          []struct {
			Name       string `yaml:"name"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Name  string `yaml:"name"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					LivenessProbe  probe `yaml:"livenessProbe"`
					ReadinessProbe probe `yaml:"readinessProbe"`
					Resources      struct {
						Requests map[string]string `yaml:"requests"`
						Limits   map[string]string `yaml:"limits"`
					} `yaml:"resources"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
	Data map[string]string `yaml:"data"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// The Kustomize base lists every manifest, and the objects fit together:
// probes on /healthz and /readyz, resources set, the Service, PDB, HPA and
// ServiceMonitor select or name the Deployment's pods and ports, and the
// grace period outlasts EXPORTD_SHUTDOWN_GRACE.
func TestKubernetesManifests(t *testing.T) {
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
	byKind := map[string]k8sObject{}
	for _, r := range kust.Resources {
		b, err := os.ReadFile(filepath.Join("k8s", r))
		if err != nil {
			t.Fatalf("kustomization resource: %v", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s: object without apiVersion, kind or name", r)
			}
			byKind[o.Kind] = o
		}
	}
	var kinds []string
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	want := "ConfigMap Deployment HorizontalPodAutoscaler Job Namespace PodDisruptionBudget PrometheusRule Service ServiceAccount ServiceMonitor"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("kinds %q, want %q", got, want)
	}

	dep := byKind["Deployment"]
	pod := dep.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("deployment: %d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]bool{}
	for _, p := range c.Ports {
		ports[p.Name] = true
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
		!ports[c.LivenessProbe.HTTPGet.Port] || !ports[c.ReadinessProbe.HTTPGet.Port] {
		t.Errorf("deployment probes: liveness %+v, readiness %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("deployment resources: %+v", c.Resources)
	}
	selects := func(sel map[string]string) bool {
		for k, v := range sel {
			if pod.Metadata.Labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !selects(dep.selectorLabels()) || !selects(byKind["Service"].selectorLabels()) ||
		!selects(byKind["PodDisruptionBudget"].selectorLabels()) {
		t.Error("deployment, service and PDB selectors must all select the pod template's labels")
	}
	svcPorts := map[string]bool{}
	for _, p := range byKind["Service"].Spec.Ports {
		if !ports[p.TargetPort] {
			t.Errorf("service port %s targets %q, not a container port", p.Name, p.TargetPort)
		}
		svcPorts[p.Name] = true
	}
	sm := byKind["ServiceMonitor"]
	for k, v := range sm.selectorLabels() {
		if byKind["Service"].Metadata.Labels[k] != v {
			t.Errorf("servicemonitor selects %s=%s, the service does not carry it", k, v)
		}
	}
	if len(sm.Spec.Endpoints) == 0 || !svcPorts[sm.Spec.Endpoints[0].Port] || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("servicemonitor endpoints %+v", sm.Spec.Endpoints)
	}
	if hpa := byKind["HorizontalPodAutoscaler"]; hpa.Spec.ScaleTargetRef.Kind != "Deployment" ||
		hpa.Spec.ScaleTargetRef.Name != dep.Metadata.Name || hpa.Spec.MinReplicas < 2 {
		t.Errorf("hpa: %+v (want the deployment, at least 2 replicas)", hpa.Spec.ScaleTargetRef)
	}
	if grace := byKind["ConfigMap"].Data["EXPORTD_SHUTDOWN_GRACE"]; grace != "30s" || pod.Spec.TerminationGracePeriodSeconds < 45 {
		t.Errorf("terminationGracePeriodSeconds %d must exceed EXPORTD_SHUTDOWN_GRACE %s + 10 s + preStop",
			pod.Spec.TerminationGracePeriodSeconds, grace)
	}
}
