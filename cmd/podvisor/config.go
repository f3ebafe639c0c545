package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/podvisor/podvisor/cri"
)

// loadConfig reads the TOML file over the defaults; unknown keys are
// errors, so a typo never silently keeps a default.
func loadConfig(path, guestDir string) (cri.Config, error) {
	cfg := cri.DefaultConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := toml.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, decodeError(path, err)
		}
	}
	if guestDir != "" {
		cfg.PodVM.GuestDir = guestDir
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// printDefaultConfig writes every key with its default and a comment.
func printDefaultConfig(w io.Writer) error {
	fmt.Fprintln(w, "# podvisor configuration (podvisor --config FILE). Every key with its default.")
	enc := toml.NewEncoder(w)
	enc.SetIndentTables(true)
	return enc.Encode(cri.DefaultConfig())
}

// decodeError names the offending keys and positions.
func decodeError(path string, err error) error {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		var keys []string
		for _, e := range sm.Errors {
			row, col := e.Position()
			keys = append(keys, fmt.Sprintf("%s (line %d, column %d)", strings.Join(e.Key(), "."), row, col))
		}
		return fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Errorf("config %s: line %d, column %d: %s: %w", path, row, col, strings.Join(de.Key(), "."), err)
	}
	return fmt.Errorf("config %s: %w", path, err)
}
