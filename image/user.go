package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxAccountFile caps how much of an image's /etc/passwd or /etc/group is read.
const maxAccountFile = 4 << 20

// ResolveUser resolves a container user — "name", "uid", "uid:gid",
// "name:group" (either part numeric or a name) or "" for the image's own
// User — against the image's /etc/passwd and /etc/group, read from its
// layers the way the container will see them (top layer wins, whiteouts and
// opaque directories hide lower layers). A numeric uid absent from passwd
// gets gid 0, like runc. groups lists the supplementary groups that name the
// user as a member, without the primary gid.
func (s *Store) ResolveUser(img Image, user string) (uid, gid uint32, groups []uint32, err error) {
	if user == "" {
		user = img.Config.User
	}
	if user == "" {
		user = "0"
	}
	dirs, err := s.LayerDirs(img)
	if err != nil {
		return 0, 0, nil, err
	}
	passwd, err := readLayered(dirs, "etc/passwd")
	if err != nil {
		return 0, 0, nil, err
	}
	group, err := readLayered(dirs, "etc/group")
	if err != nil {
		return 0, 0, nil, err
	}
	return resolveUser(user, parsePasswd(passwd), parseGroup(group))
}

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

func resolveUser(spec string, users []passwdEntry, grps []groupEntry) (uid, gid uint32, groups []uint32, err error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var name string
	if n, ok := parseID(userPart); ok {
		uid = n
		for _, u := range users {
			if u.uid == n {
				gid, name = u.gid, u.name
				break
			}
		}
	} else {
		found := false
		for _, u := range users {
			if u.name == userPart {
				uid, gid, name, found = u.uid, u.gid, u.name, true
				break
			}
		}
		if !found {
			return 0, 0, nil, fmt.Errorf("user %q: %w in the image's /etc/passwd", userPart, ErrNotFound)
		}
	}
	if hasGroup {
		if n, ok := parseID(groupPart); ok {
			gid = n
		} else {
			found := false
			for _, g := range grps {
				if g.name == groupPart {
					gid, found = g.gid, true
					break
				}
			}
			if !found {
				return 0, 0, nil, fmt.Errorf("group %q: %w in the image's /etc/group", groupPart, ErrNotFound)
			}
		}
	}
	if name != "" {
		for _, g := range grps {
			if g.gid != gid && slices.Contains(g.members, name) && !slices.Contains(groups, g.gid) {
				groups = append(groups, g.gid)
			}
		}
	}
	return uid, gid, groups, nil
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	eachLine(b, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if ok1 && ok2 {
			out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid})
		}
	})
	return out
}

func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	eachLine(b, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, ok := parseID(f[2])
		if !ok {
			return
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	return out
}

func eachLine(b []byte, fn func(fields []string)) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxAccountFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}

// readLayered reads rel from the merged view of dirs (top first). A missing
// file reads as empty.
func readLayered(dirs []string, rel string) ([]byte, error) {
	comps := strings.Split(rel, "/")
	for _, dir := range dirs {
		data, state, err := readInLayer(dir, comps)
		if err != nil {
			return nil, err
		}
		switch state {
		case layerHas:
			return data, nil
		case layerHides:
			return nil, nil
		}
	}
	return nil, nil
}

type layerState int

const (
	layerLacks layerState = iota // look further down
	layerHas
	layerHides // a whiteout or opaque directory hides lower layers
)

func readInLayer(dir string, comps []string) ([]byte, layerState, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, 0, err
	}
	defer root.Close()
	opaque := false
	for i := range comps {
		p := strings.Join(comps[:i+1], "/")
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		if isWhiteout(fi) {
			return nil, layerHides, nil
		}
		if i == len(comps)-1 {
			if !fi.Mode().IsRegular() {
				return nil, layerHides, nil // not a file the container could read as passwd
			}
			f, err := root.Open(p)
			if err != nil {
				return nil, 0, err
			}
			defer f.Close()
			data, err := io.ReadAll(io.LimitReader(f, maxAccountFile))
			return data, layerHas, err
		}
		if !fi.IsDir() {
			return nil, layerHides, nil // a file or symlink shadows the lower directory
		}
		if isOpaque(filepath.Join(dir, p)) {
			opaque = true
		}
	}
	if opaque {
		return nil, layerHides, nil
	}
	return nil, layerLacks, nil
}

func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

func isOpaque(p string) bool {
	buf := make([]byte, 1)
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Lgetxattr(p, name, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}
