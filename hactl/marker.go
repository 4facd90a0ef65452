package hactl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// marker remembers, on disk, that this node left its cluster for good:
// torn down (it runs stand-alone) or deactivated (its cluster was torn down
// by the other node; it refuses to rejoin without a new deployment).
// Safe for concurrent use.
type marker struct {
	path string
	mu   sync.Mutex
	m    membership
}

type membership struct {
	ClusterID   string    `json:"cluster_id"`
	TornDown    bool      `json:"torn_down,omitempty"`
	Deactivated bool      `json:"deactivated,omitempty"`
	Since       time.Time `json:"since"`
	By          string    `json:"by,omitempty"`
}

func (k *marker) load() error {
	b, err := os.ReadFile(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", k.path, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := json.Unmarshal(b, &k.m); err != nil {
		return fmt.Errorf("decode %s: %w", k.path, err)
	}
	return nil
}

func (k *marker) set(m membership) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := k.path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(k.path), 0o711); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, k.path); err != nil {
		return fmt.Errorf("write %s: %w", k.path, err)
	}
	k.mu.Lock()
	k.m = m
	k.mu.Unlock()
	return nil
}

func (k *marker) get() membership {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m
}

func (k *marker) standalone() bool  { m := k.get(); return m.TornDown || m.Deactivated }
func (k *marker) deactivated() bool { return k.get().Deactivated }
