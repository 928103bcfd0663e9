package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// replot redraws OUT/throughput.svg from the throughput.json of an earlier
// run, without measuring anything.
func replot(jsonPath, outDir string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("decode results %s: %w", jsonPath, err)
	}
	if len(r.Sizes) == 0 {
		return fmt.Errorf("results %s: no sizes", jsonPath)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", outDir, err)
	}
	out := filepath.Join(outDir, "throughput.svg")
	if err := os.WriteFile(out, chart(&r), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
