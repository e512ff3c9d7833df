package main

import (
	"fmt"
	"os"

	"github.com/cairnhq/cairn/bench/internal/results"
)

// runReport prints the summary tables of the given result files.
func runReport(files []string) error {
	if len(files) == 0 {
		return fmt.Errorf("no result files")
	}
	var suites []*results.Suite
	for _, f := range files {
		s, err := results.Read(f)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		suites = append(suites, s)
	}
	results.Report(os.Stdout, suites)
	return nil
}

// runEurekaReport prints the summary tables of a Eureka benchmark result.
func runEurekaReport(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want one result file")
	}
	s, err := results.ReadEureka(args[0])
	if err != nil {
		return err
	}
	results.EurekaReport(os.Stdout, s)
	return nil
}
