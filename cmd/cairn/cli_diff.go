package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cairnhq/cairn/pkg/client"
)

// exitError ends a verb with its own exit code (diff: 1 when there are
// differences, 2 on errors), printing err as one line when it is not nil.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return "exit " + strconv.Itoa(e.code)
	}
	return e.err.Error()
}

// runDiff compares the documents of files with the server's, as YAML, and
// prints a unified diff per document that differs. Exit status as kubectl
// diff: 0 no differences, 1 differences, 2 an error.
func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("diff", "-f FILE [-f FILE ...]",
		"Show how the documents of files differ from those on the server: a unified diff of\n"+
			"the server's document (-) and the file's (+), as YAML with defaults filled in; a\n"+
			"document the server lacks shows as all added. Exit status: 0 no differences,\n"+
			"1 differences, 2 an error.", stdout, stderr)
	files := c.filesFlag("`FILE` of documents to compare")
	srcs, cl, err := c.fileArgs(args, files)
	if err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	differ := 0
	for _, src := range srcs {
		for _, d := range src.docs {
			name := d.Key().String()
			live, err := cl.ConfigDoc(ctx, d.Kind, d.Metadata.Namespace, d.Metadata.Name)
			if err != nil && !client.IsNotFound(err) {
				return &exitError{code: 2, err: c.explain(err, "")}
			}
			var before []string
			from := name + " (live)"
			if live != nil {
				live.Metadata.CreateRevision, live.Metadata.ModifyRevision = 0, 0
				if before, err = yamlLines(*live); err != nil {
					return &exitError{code: 2, err: err}
				}
			} else {
				from = name + " (not on the server)"
			}
			after, err := yamlLines(toClient(d))
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ops := lineDiff(before, after)
			if !hasChanges(ops) {
				continue
			}
			differ++
			var b bytes.Buffer
			fmt.Fprintf(&b, "--- %s\n+++ %s (%s)\n", from, name, src.name)
			writeHunks(&b, ops, 3)
			if _, err := c.stdout.Write(b.Bytes()); err != nil {
				return &exitError{code: 2, err: err}
			}
		}
	}
	if differ > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// yamlLines renders a document as `get -o yaml` does, split into lines.
func yamlLines(d client.ConfigDocument) ([]string, error) {
	var b bytes.Buffer
	if err := writeYAML(&b, d); err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"), nil
}

// diffOp is one line of a diff: ' ' kept, '-' removed, '+' added.
type diffOp struct {
	op   byte
	text string
}

func hasChanges(ops []diffOp) bool {
	for _, o := range ops {
		if o.op != ' ' {
			return true
		}
	}
	return false
}

// maxLCSCells bounds the table of the longest common subsequence; past it
// (two large documents with little in common) the diff is every line
// removed, then every line added.
const maxLCSCells = 1 << 24

// lineDiff returns the edit script from a to b that keeps a longest
// common subsequence of lines (the classic dynamic program, after
// trimming the common prefix and suffix).
func lineDiff(a, b []string) []diffOp {
	var ops []diffOp
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		ops = append(ops, diffOp{' ', a[pre]})
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(ma), len(mb)
	if (n+1)*(m+1) > maxLCSCells {
		for _, s := range ma {
			ops = append(ops, diffOp{'-', s})
		}
		for _, s := range mb {
			ops = append(ops, diffOp{'+', s})
		}
	} else {
		// lcs[i*(m+1)+j]: length of the LCS of ma[i:] and mb[j:].
		lcs := make([]int32, (n+1)*(m+1))
		at := func(i, j int) int32 { return lcs[i*(m+1)+j] }
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				v := max(at(i+1, j), at(i, j+1))
				if ma[i] == mb[j] {
					v = at(i+1, j+1) + 1
				}
				lcs[i*(m+1)+j] = v
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && ma[i] == mb[j]:
				ops = append(ops, diffOp{' ', ma[i]})
				i, j = i+1, j+1
			case j == m || (i < n && at(i+1, j) >= at(i, j+1)):
				ops = append(ops, diffOp{'-', ma[i]})
				i++
			default:
				ops = append(ops, diffOp{'+', mb[j]})
				j++
			}
		}
	}
	for _, s := range a[len(a)-suf:] {
		ops = append(ops, diffOp{' ', s})
	}
	return ops
}

// writeHunks writes ops as unified-diff hunks with ctx lines of context.
func writeHunks(w io.Writer, ops []diffOp, ctx int) {
	// aBefore[k], bBefore[k]: lines of a and b before ops[k].
	aBefore, bBefore := make([]int, len(ops)+1), make([]int, len(ops)+1)
	for k, o := range ops {
		aBefore[k+1], bBefore[k+1] = aBefore[k], bBefore[k]
		if o.op != '+' {
			aBefore[k+1]++
		}
		if o.op != '-' {
			bBefore[k+1]++
		}
	}
	for k := 0; k < len(ops); {
		if ops[k].op == ' ' {
			k++
			continue
		}
		last := k // the hunk's last change: merge changes fewer than 2*ctx lines apart
		for j := k + 1; j < len(ops); j++ {
			if ops[j].op != ' ' {
				if j-last-1 > 2*ctx {
					break
				}
				last = j
			}
		}
		start, end := max(0, k-ctx), min(len(ops), last+ctx+1)
		fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(aBefore[start], aBefore[end]-aBefore[start]),
			hunkRange(bBefore[start], bBefore[end]-bBefore[start]))
		for _, o := range ops[start:end] {
			fmt.Fprintf(w, "%c%s\n", o.op, o.text)
		}
		k = end
	}
}

// hunkRange is "start,count" as unified diffs write it: 1-based, and an
// empty range names the line before it.
func hunkRange(before, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", before)
	case 1:
		return strconv.Itoa(before + 1)
	}
	return fmt.Sprintf("%d,%d", before+1, count)
}
