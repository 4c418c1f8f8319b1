package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"github.com/quirelog/quire/transport/node"
)

// netnsLab gives every node of a local chaos cluster its own Linux network
// namespace and address on a private bridge, as separate hosts would have.
// Network faults are then packet filters between those hosts (iptables in
// the receiving node's namespace), cutting every kind of traffic between
// them: Raft, internal RPCs and gossip alike, with the kernel's own TCP
// behaviour on a lossy or silent path. It needs root, iproute2 and
// iptables.
type netnsLab struct {
	tag    string // unique per run: the runner's pid
	bridge string
	subnet string // "10.213.N." — a node's address is subnet + id
	nodes  int
}

// netnsPrefix names every namespace a lab creates: quire-<pid>-<id>.
const netnsPrefix = "quire-"

// netnsAvailable says why a lab cannot be set up here, or nil.
func netnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("network namespaces need %s (apt-get install iproute2 iptables)", tool)
		}
	}
	// Root in a container may still lack the right to make namespaces.
	probe := fmt.Sprintf("%sprobe-%d", netnsPrefix, os.Getpid())
	if err := run("ip", "netns", "add", probe); err != nil {
		return err
	}
	return run("ip", "netns", "del", probe)
}

func setupNetns(nodes int) (*netnsLab, error) {
	if err := netnsAvailable(); err != nil {
		return nil, err
	}
	removeStaleLabs()
	pid := os.Getpid()
	subnet, err := freeSubnet(pid % 250)
	if err != nil {
		return nil, err
	}
	l := &netnsLab{
		tag:    strconv.Itoa(pid),
		bridge: fmt.Sprintf("qb%d", pid),
		subnet: subnet,
		nodes:  nodes,
	}
	steps := [][]string{
		{"ip", "link", "add", l.bridge, "type", "bridge"},
		{"ip", "addr", "add", l.subnet + "254/24", "dev", l.bridge},
		{"ip", "link", "set", l.bridge, "up"},
		// Docker's FORWARD policy drops bridged traffic when the bridge
		// netfilter module is loaded.
		{"iptables", "-I", "FORWARD", "-i", l.bridge, "-o", l.bridge, "-j", "ACCEPT"},
	}
	for id := 1; id <= nodes; id++ {
		ns, veth := l.ns(id), l.veth(id)
		// A lab this process tore down a moment ago may still hold the
		// name: the kernel frees a namespace, and the veth in it, only once
		// its last process is gone.
		_ = run("ip", "link", "del", veth)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "link", "set", veth, "master", l.bridge, "up"},
			[]string{"ip", "netns", "exec", ns, "ip", "addr", "add", l.addr(id) + "/24", "dev", "eth0"},
			[]string{"ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up"},
			[]string{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			l.teardown()
			return nil, err
		}
	}
	return l, nil
}

// freeSubnet picks a 10.213.N.0/24 that no interface of this host uses,
// so that two runs never route to each other's brokers.
func freeSubnet(start int) (string, error) {
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return "", err
	}
	for i := 0; i < 250; i++ {
		subnet := fmt.Sprintf("10.213.%d.", (start+i)%250)
		if !strings.Contains(string(out), " "+subnet) {
			return subnet, nil
		}
	}
	return "", errors.New("no free 10.213.N.0/24 subnet for the chaos network")
}

func (l *netnsLab) ns(id int) string   { return fmt.Sprintf("%s%s-%d", netnsPrefix, l.tag, id) }
func (l *netnsLab) addr(id int) string { return l.subnet + strconv.Itoa(id) }
func (l *netnsLab) veth(id int) string { return fmt.Sprintf("qv%sn%d", l.tag, id) }

// command runs argv inside node id's namespace. ip netns exec replaces
// itself with argv, so the process is the broker: signals reach it.
func (l *netnsLab) command(id int, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.ns(id)}, argv...)...)
}

// setRules replaces the packet filters of every node at once: a rule from
// a to b drops (all, or a random share of) what a sends to b, in b's
// namespace. Delays are not filters; the caller leaves them to the
// brokers' own fault hooks.
func (l *netnsLab) setRules(rules []node.Rule) error {
	in := map[int32][]string{}
	for _, r := range rules {
		src := l.addr(int(r.From))
		switch {
		case r.Drop:
			in[r.To] = append(in[r.To], fmt.Sprintf("-A INPUT -s %s/32 -j DROP", src))
		case r.Loss > 0:
			in[r.To] = append(in[r.To], fmt.Sprintf("-A INPUT -s %s/32 -m statistic --mode random --probability %.4f -j DROP", src, r.Loss))
		}
	}
	var errs []error
	for id := 1; id <= l.nodes; id++ {
		var b strings.Builder
		b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
		lines := in[int32(id)]
		sort.Strings(lines)
		for _, line := range lines {
			b.WriteString(line + "\n")
		}
		b.WriteString("COMMIT\n")
		cmd := l.command(id, "iptables-restore")
		cmd.Stdin = strings.NewReader(b.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("node %d iptables-restore: %v: %s", id, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

// teardown removes the namespaces (and with them the veths), the bridge
// and the forwarding rule. Errors are ignored: parts may never have been
// made.
func (l *netnsLab) teardown() {
	for id := 1; id <= l.nodes; id++ {
		_ = run("ip", "link", "del", l.veth(id))
		_ = run("ip", "netns", "del", l.ns(id))
	}
	_ = run("iptables", "-D", "FORWARD", "-i", l.bridge, "-o", l.bridge, "-j", "ACCEPT")
	_ = run("ip", "link", "del", l.bridge)
}

// removeStaleLabs tears down what a runner that was killed outright left
// behind: namespaces (probes included) and bridges named after a pid that
// no longer runs, with the bridge's forwarding rule.
func removeStaleLabs() {
	dead := func(pid string) bool {
		if _, err := strconv.Atoi(pid); err != nil {
			return false
		}
		_, err := os.Stat("/proc/" + pid)
		return errors.Is(err, os.ErrNotExist)
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			rest, ok := strings.CutPrefix(name, netnsPrefix)
			if !ok {
				continue
			}
			rest = strings.TrimPrefix(rest, "probe-")
			pid, _, _ := strings.Cut(rest, "-")
			if dead(pid) {
				_ = run("ip", "netns", "del", name)
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			name := strings.TrimSuffix(fields[1], ":")
			if pid, ok := strings.CutPrefix(name, "qb"); ok && dead(pid) {
				_ = run("iptables", "-D", "FORWARD", "-i", name, "-o", name, "-j", "ACCEPT")
				_ = run("ip", "link", "del", name)
			}
		}
	}
}

func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
