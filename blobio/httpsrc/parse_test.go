package httpsrc

import "testing"

func TestParseContentRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ContentRange
		ok   bool
	}{
		{"bytes 0-0/10", ContentRange{0, 0, 10}, true},
		{"bytes 5-9/10", ContentRange{5, 9, 10}, true},
		{"bytes 5-9/*", ContentRange{5, 9, -1}, true},
		{"bytes */10", ContentRange{-1, -1, 10}, true},
		{"bytes 5-10/10", ContentRange{}, false},
		{"bytes 9-5/10", ContentRange{}, false},
		{"bytes -1-5/10", ContentRange{}, false},
		{"bytes 1-5", ContentRange{}, false},
		{"items 1-5/10", ContentRange{}, false},
		{"bytes */*", ContentRange{}, false},
		{"bytes +1-5/10", ContentRange{}, false},
		{"bytes 1-99999999999999999999/10", ContentRange{}, false},
	} {
		got, err := ParseContentRange(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseContentRange(%q) = %+v, %v", c.in, got, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-0/10", "bytes */5", "bytes 1-2/*", "bytes 9223372036854775806-9223372036854775806/9223372036854775807", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := ParseContentRange(s)
		if err != nil {
			return
		}
		if cr.Total < -1 || (cr.Start >= 0 && (cr.End < cr.Start || (cr.Total >= 0 && cr.End >= cr.Total))) {
			t.Fatalf("%q -> %+v", s, cr)
		}
		if cr.Start < 0 && cr.Total < 0 {
			t.Fatalf("%q -> %+v", s, cr)
		}
	})
}
