package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The local stack (compose.local.yaml, deploy/docker) is what make
// deploy-test runs; these checks keep it a faithful stand-in for the
// production files without a Docker engine (make test stays engine-free).

type composeFile struct {
	Services map[string]struct {
		Image    string   `yaml:"image"`
		Profiles []string `yaml:"profiles"`
		Ports    []string `yaml:"ports"`
	} `yaml:"services"`
}

func readCompose(t *testing.T, path string) composeFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// Every service of compose.yaml is overridden by compose.local.yaml with an
// image build-images.sh builds (so deploy-test never pulls), or left out by
// a profile; the override adds no service of its own; every published port
// of the production file binds to a variable address defaulting to
// 127.0.0.1.
func TestLocalComposeOverridesEveryImage(t *testing.T) {
	prod := readCompose(t, "compose.yaml")
	local := readCompose(t, "compose.local.yaml")
	script, err := os.ReadFile("docker/build-images.sh")
	if err != nil {
		t.Fatal(err)
	}
	built := map[string]bool{"local/exportd:deploy": true, "local/versitygw:deploy": true}
	for _, m := range regexp.MustCompile(`for name in ([a-z ]+); do`).FindAllStringSubmatch(string(script), -1) {
		for _, n := range strings.Fields(m[1]) {
			built["local/"+n+":deploy"] = true
		}
	}
	if len(built) < 6 {
		t.Fatalf("build-images.sh builds only %v", built)
	}
	for name, svc := range prod.Services {
		l, ok := local.Services[name]
		switch {
		case !ok:
			t.Errorf("%s (%s): not in compose.local.yaml", name, svc.Image)
		case len(l.Profiles) > 0:
			// started only with --profile
		case !built[l.Image]:
			t.Errorf("%s: local image %q is not one build-images.sh builds", name, l.Image)
		}
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "${DEPLOY_BIND:-127.0.0.1}:") {
				t.Errorf("%s: port %q is not bound to ${DEPLOY_BIND:-127.0.0.1}", name, p)
			}
		}
	}
	for name := range local.Services {
		if _, ok := prod.Services[name]; !ok {
			t.Errorf("compose.local.yaml adds service %s that compose.yaml lacks", name)
		}
	}
}

// dockerfileRuntime returns the runtime instructions of a Dockerfile's last
// stage that a container sees: USER, WORKDIR, ENV (one entry per variable),
// EXPOSE, ENTRYPOINT, CMD.
func dockerfileRuntime(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var out []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			out = nil // only the last stage runs
		case "ENV":
			for _, kv := range f[1:] {
				out = append(out, "ENV "+kv)
			}
		case "USER", "WORKDIR", "EXPOSE", "ENTRYPOINT", "CMD":
			out = append(out, strings.ToUpper(f[0])+" "+strings.Join(f[1:], " "))
		}
	}
	sort.Strings(out)
	return out
}

// The local exportd image runs like the production one: same user, working
// directory, environment, ports, entrypoint and command. Only the base and
// where the binary comes from differ.
func TestLocalExportdImageMatchesProduction(t *testing.T) {
	prod := dockerfileRuntime(t, "Dockerfile")
	local := dockerfileRuntime(t, filepath.Join("docker", "exportd", "Dockerfile"))
	if len(prod) < 6 {
		t.Fatalf("production Dockerfile: only %v", prod)
	}
	if fmt.Sprint(prod) != fmt.Sprint(local) {
		t.Errorf("runtime instructions differ:\nproduction %q\nlocal      %q", prod, local)
	}
}
