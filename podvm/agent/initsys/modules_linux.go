package initsys

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LoadModules loads the modules listed in listFile (see ParseModuleList) in
// order. A module that is already loaded is fine; any other failure stops the
// loading and names the module. A missing listFile means no modules.
func LoadModules(listFile string) error {
	f, err := os.Open(listFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	mods, err := ParseModuleList(f)
	if err != nil {
		return fmt.Errorf("%s: %w", listFile, err)
	}
	for _, m := range mods {
		if err := loadModule(m); err != nil {
			return err
		}
	}
	return nil
}

func loadModule(m Module) error {
	f, err := os.Open(m.Path)
	if err != nil {
		return fmt.Errorf("load module %s: %w", m.Path, err)
	}
	defer f.Close()
	flags := 0
	if m.Compressed() {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), m.Params, flags)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", m.Path, err)
	}
	return nil
}
