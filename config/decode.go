package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// maxDocument bounds a configuration document.
const maxDocument = 1 << 20

// PathError is a decoding error at a JSON path such as azure_filesystems[0].key.akv.
type PathError struct {
	Path string
	Msg  string
}

func (e *PathError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// decodeStrict checks data against v's type before decoding into it, so that every unknown
// field, duplicate key and type mismatch is reported with its path (encoding/json reports the
// first one only, without array indices, and matches field names case-insensitively).
func decodeStrict(data []byte, v any) error {
	if len(data) > maxDocument {
		return fmt.Errorf("document of %d bytes is larger than %d", len(data), maxDocument)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return errors.New("empty document")
	}
	if !json.Valid(data) {
		// Let encoding/json describe the syntax error with its offset.
		var x any
		err := json.Unmarshal(data, &x)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
			return fmt.Errorf("invalid JSON at line %d (byte %d): %v", line, se.Offset, se)
		}
		return fmt.Errorf("invalid JSON: %v", err)
	}
	var errs []error
	check(json.RawMessage(data), reflect.TypeOf(v).Elem(), "", &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return json.Unmarshal(data, v)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// check walks raw against type t, appending a *PathError for each problem.
func check(raw json.RawMessage, t reflect.Type, path string, errs *[]error) {
	fail := func(format string, args ...any) {
		*errs = append(*errs, &PathError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	kind := jsonKind(raw)
	if kind == "null" {
		return // null leaves the zero value, as encoding/json does
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			fail("%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		check(raw, t.Elem(), path, errs)
	case reflect.Struct:
		if kind != "object" {
			fail("want an object, got %s", kind)
			return
		}
		fields := jsonFields(t)
		seen := map[string]bool{}
		forEachMember(raw, func(name string, val json.RawMessage) {
			sub := join(path, name)
			if seen[name] {
				*errs = append(*errs, &PathError{Path: sub, Msg: "duplicate key"})
				return
			}
			seen[name] = true
			f, ok := fields[name]
			if !ok {
				msg := fmt.Sprintf("unknown field %q", name)
				if s := suggest(name, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				*errs = append(*errs, &PathError{Path: path, Msg: msg})
				return
			}
			check(val, f.Type, sub, errs)
		})
	case reflect.Slice:
		if kind != "array" {
			fail("want an array, got %s", kind)
			return
		}
		var items []json.RawMessage
		_ = json.Unmarshal(raw, &items)
		for i, it := range items {
			check(it, t.Elem(), path+"["+strconv.Itoa(i)+"]", errs)
		}
	case reflect.String:
		if kind != "string" {
			fail("want a string, got %s", kind)
		}
	case reflect.Bool:
		if kind != "boolean" {
			fail("want true or false, got %s", kind)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if kind != "number" {
			fail("want an integer, got %s", kind)
			return
		}
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			fail("want an integer that fits %s, got %s", t.Kind(), clip(raw))
		}
	case reflect.Float32, reflect.Float64:
		if kind != "number" {
			fail("want a number, got %s", kind)
		}
	case reflect.Interface:
	default:
		fail("unsupported field type %s", t)
	}
}

// jsonKind names the JSON type of a valid raw value.
func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// forEachMember calls fn for each member of a valid JSON object, in order, duplicates included.
func forEachMember(raw json.RawMessage, fn func(string, json.RawMessage)) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // {
		return
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		name, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil && err != io.EOF {
			return
		}
		fn(name, val)
	}
}

// jsonFields maps the JSON names of t's exported fields to the fields.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f
	}
	return m
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// suggest finds the known field closest to a misspelt one (edit distance at most 2, or a case
// difference).
func suggest(name string, fields map[string]reflect.StructField) string {
	best, bestD := "", math.MaxInt
	for f := range fields {
		if strings.EqualFold(f, name) {
			return f
		}
		if d := distance(strings.ToLower(name), f); d < bestD || (d == bestD && f < best) {
			best, bestD = f, d
		}
	}
	if bestD <= 2 {
		return best
	}
	return ""
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
