package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// podRecord is what Teardown needs after a daemon restart. It is written
// before the first side effect of Setup, so a crash at any point leaves
// enough to undo it.
type podRecord struct {
	Request PodRequest `json:"request"`
	NetNS   string     `json:"netns"`
	IfName  string     `json:"ifName"`
	// ConfFile and ConfList are the network config ADD used, self-contained;
	// DEL must run with the same plugins even if the conf dir changed.
	ConfFile string          `json:"confFile"`
	ConfList json.RawMessage `json:"confList"`
}

// recordStore keeps one JSON file per pod.
type recordStore struct{ dir string }

func (s recordStore) path(id string) string { return filepath.Join(s.dir, id+".json") }

// put writes atomically: a crash leaves the old record or the new one.
func (s recordStore) put(rec podRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, "."+rec.Request.ID+"-*")
	if err != nil {
		return fmt.Errorf("write pod record: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(rec.Request.ID))
	}
	if err != nil {
		return fmt.Errorf("write pod record %s: %w", rec.Request.ID, err)
	}
	return nil
}

// get returns os.ErrNotExist (wrapped) when there is no record.
func (s recordStore) get(id string) (podRecord, error) {
	var rec podRecord
	data, err := os.ReadFile(s.path(id))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("pod record %s: %w", id, err)
	}
	if rec.Request.ID != id {
		return rec, fmt.Errorf("pod record %s names pod %q", id, rec.Request.ID)
	}
	return rec, nil
}

func (s recordStore) remove(id string) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pod record: %w", err)
	}
	return nil
}

// list returns the IDs of every recorded pod, for start-up garbage
// collection by the caller.
func (s recordStore) list() ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(s.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(matches))
	for _, m := range matches {
		ids = append(ids, filepath.Base(m[:len(m)-len(".json")]))
	}
	return ids, nil
}
