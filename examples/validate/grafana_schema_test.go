package validate

import (
	"errors"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// TestDashboardSchema decodes the dashboard strictly with the Go types Grafana Labs generates
// from Grafana's dashboard schema (grafana-foundation-sdk), panel options and field config
// included: a misspelt or misplaced field, a wrong type or a missing required field fails here
// rather than being dropped silently by Grafana at import.
func TestDashboardSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	if err := schemaErr(d.UnmarshalJSONStrict(readFile(t, dashboardFile))); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if err := schemaErr(d.Validate()); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
}

// schemaErr turns the SDK's empty cog.BuildErrors, which it returns as a non-nil error
// holding no errors, into nil.
func schemaErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}
