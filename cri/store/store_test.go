package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podvisor/podvisor/cri/errdefs"
)

type meta struct{ Name string }
type status struct{ State int }

func TestGenerateID(t *testing.T) {
	a, b := GenerateID(), GenerateID()
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" || a == b {
		t.Fatalf("ids %q %q", a, b)
	}
}

func TestIndex(t *testing.T) {
	var x Index
	for _, id := range []string{"abc1", "abd2", "b", "abc1"} {
		x.Add(id)
	}
	for _, tc := range []struct {
		prefix, want string
		kind         error
	}{
		{"abc1", "abc1", nil},
		{"abc", "abc1", nil},
		{"abd", "abd2", nil},
		{"ab", "", errdefs.ErrInvalidArgument},
		{"b", "b", nil},
		{"c", "", errdefs.ErrNotFound},
		{"", "", errdefs.ErrInvalidArgument},
	} {
		got, err := x.Get(tc.prefix)
		if got != tc.want || (tc.kind == nil) != (err == nil) || (tc.kind != nil && !errors.Is(err, tc.kind)) {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", tc.prefix, got, err, tc.want, tc.kind)
		}
	}
	x.Delete("abc1")
	if got, _ := x.Get("ab"); got != "abd2" {
		t.Errorf("after delete: %q", got)
	}
}

func TestStorePersistsAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open[meta, status](db, "things")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add("id1", meta{"one"}, status{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("id1", meta{"one"}, status{1}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("dup add: %v", err)
	}
	_ = s.Add("id2", meta{"two"}, status{1})
	if _, err := s.Update("id1", func(st status) (status, error) { st.State = 7; return st, nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := s.Update("id1", func(st status) (status, error) { st.State = 9; return st, boom }); !errors.Is(err, boom) {
		t.Fatalf("update error: %v", err)
	}
	if err := s.Delete("id2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("id2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	db.Close()

	db, err = OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err = Open[meta, status](db, "things")
	if err != nil {
		t.Fatal(err)
	}
	recs := s.List()
	if len(recs) != 1 || recs[0].ID != "id1" || recs[0].Metadata.Name != "one" || recs[0].Status.State != 7 {
		t.Fatalf("reopened: %+v", recs)
	}
	if r, err := s.Get("id"); err != nil || r.ID != "id1" {
		t.Fatalf("prefix get: %+v %v", r, err)
	}
}

func TestStoreSelectOrdersByID(t *testing.T) {
	db, err := OpenDB(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open[meta, status](db, "things")
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"c3", "a1", "b2", "d4"} {
		if err := s.Add(id, meta{id}, status{i}); err != nil {
			t.Fatal(err)
		}
	}
	s.Delete("b2")
	var all []string
	for _, r := range s.List() {
		all = append(all, r.ID)
	}
	var odd []string
	for _, r := range s.Select(func(r Record[meta, status]) bool { return r.Status.State%2 == 1 }) {
		odd = append(odd, r.ID)
	}
	if strings.Join(all, ",") != "a1,c3,d4" || strings.Join(odd, ",") != "a1,d4" {
		t.Fatalf("List %v, Select %v", all, odd)
	}
}
