package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func testFlags() (*pflag.FlagSet, *string, *[]string, *int) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	addr := fs.String("kafka-addr", "default", "")
	join := fs.StringSlice("join", nil, "")
	expect := fs.Int("bootstrap-expect", 1, "")
	fs.String("config", "", "")
	return fs, addr, join, expect
}

func TestSettingsPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "quire.yaml")
	os.WriteFile(file, []byte("kafka-addr: from-file:1\njoin: [a:1, b:2]\nbootstrap-expect: 3\n"), 0o644)

	fs, addr, join, expect := testFlags()
	t.Setenv("QUIRE_KAFKA_ADDR", "from-env:2")
	if err := fs.Parse([]string{"--bootstrap-expect", "5"}); err != nil {
		t.Fatal(err)
	}
	if err := applySettings(fs, file); err != nil {
		t.Fatal(err)
	}
	if *addr != "from-env:2" {
		t.Errorf("kafka-addr %q: the environment beats the file", *addr)
	}
	if strings.Join(*join, ",") != "a:1,b:2" {
		t.Errorf("join %v: a YAML list becomes the flag's list", *join)
	}
	if *expect != 5 {
		t.Errorf("bootstrap-expect %d: the command line beats the file", *expect)
	}
}

func TestSettingsRejectBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"unknown key": "kafka-adr: x\n",
		"bad value":   "bootstrap-expect: three\n",
		"mapping":     "join: {a: 1}\n",
		"not yaml":    "::: [\n",
	} {
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		os.WriteFile(file, []byte(content), 0o644)
		fs, _, _, _ := testFlags()
		if err := applySettings(fs, file); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	fs, _, _, _ := testFlags()
	t.Setenv("QUIRE_BOOTSTRAP_EXPECT", "x")
	if err := applySettings(fs, ""); err == nil || !strings.Contains(err.Error(), "QUIRE_BOOTSTRAP_EXPECT") {
		t.Errorf("bad environment value: %v", err)
	}
}
