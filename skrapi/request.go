package skrapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
)

// The request documents, field for field the reference's. Required fields are checked by
// requireFields; nothing else is accepted.
type rawRequest struct {
	RuntimeData string `json:"runtime_data" required:"true"`
}

type maaRequest struct {
	MAAEndpoint string `json:"maa_endpoint" required:"true"`
	RuntimeData string `json:"runtime_data" required:"true"`
}

type releaseRequest struct {
	MAAEndpoint string `json:"maa_endpoint" required:"true"`
	AKVEndpoint string `json:"akv_endpoint" required:"true"`
	KID         string `json:"kid" required:"true"`
	AccessToken string `json:"access_token"` // optional: without it the group's identity asks
}

// decodeRequest reads one JSON object into v strictly: within the body bound, no unknown
// fields, no wrong types, nothing after the object, every required field present. Each error
// says what was wrong and what the route accepts.
func decodeRequest(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &apiError{Status: http.StatusRequestEntityTooLarge,
				Msg: fmt.Sprintf("request body larger than %d bytes", mb.Limit)}
		}
		return badRequest("cannot read the request body: " + err.Error())
	}
	fields := fieldList(v)
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("empty request body: send a JSON object with " + fields)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return badRequest(fmt.Sprintf("request body is not valid JSON (at byte %d): %v", se.Offset, se))
		case errors.As(err, &te) && te.Field != "":
			return badRequest(fmt.Sprintf("field %q must be a JSON %s, not %s", te.Field, jsonKind(te.Type), te.Value))
		case errors.As(err, &te):
			return badRequest(fmt.Sprintf("request body must be a JSON object with %s, not %s", fields, te.Value))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.TrimPrefix(err.Error(), "json: unknown field ")
			return badRequest(fmt.Sprintf("unknown field %s: this route takes %s", name, fields))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("request body is truncated JSON")
		}
		return badRequest("request body: " + err.Error())
	}
	if _, err := d.Token(); err != io.EOF {
		return badRequest("request body holds more than one JSON value: send exactly one object")
	}
	return requireFields(v)
}

// requireFields reports the first required field left empty.
func requireFields(v any) error {
	rv := reflect.ValueOf(v).Elem()
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		if f.Tag.Get("required") == "true" && strings.TrimSpace(rv.Field(i).String()) == "" {
			return badRequest(fmt.Sprintf("field %q is required and must not be empty", jsonName(f)))
		}
	}
	return nil
}

// fieldList names v's fields for messages: "runtime_data (required)".
func fieldList(v any) string {
	t := reflect.TypeOf(v).Elem()
	var names []string
	for i := 0; i < t.NumField(); i++ {
		n := `"` + jsonName(t.Field(i)) + `"`
		if t.Field(i).Tag.Get("required") != "true" {
			n += " (optional)"
		}
		names = append(names, n)
	}
	return "the fields " + strings.Join(names, ", ")
}

func jsonName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return n
}

func jsonKind(t reflect.Type) string {
	if t.Kind() == reflect.String {
		return "string"
	}
	return t.String()
}

// decodeRuntimeData decodes runtime_data. The reference takes standard base64; the URL-safe
// alphabet and missing padding are accepted too, since they cannot be mistaken for each other.
func decodeRuntimeData(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, badRequest("runtime_data is not base64: encode the bytes with standard base64 (base64 -w0)")
}

// keyNamePart is a Key Vault key name or version: letters, digits and dashes.
var keyNamePart = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)

// splitKID takes the reference's kid: a key name, "name/version", or the key's full identifier
// https://VAULT/keys/NAME[/VERSION] (whose vault must then be the request's akv_endpoint).
func splitKID(kid, vault string) (name, version string, err error) {
	k := strings.TrimSpace(kid)
	if strings.Contains(k, "://") {
		host := strings.TrimPrefix(strings.TrimPrefix(strings.TrimRight(vault, "/"), "https://"), "http://")
		rest, ok := strings.CutPrefix(k, "https://"+host+"/keys/")
		if !ok {
			return "", "", badRequest(fmt.Sprintf("kid %q is a key identifier of another vault than akv_endpoint %q", kid, vault))
		}
		k = rest
	}
	name, version, _ = strings.Cut(strings.Trim(k, "/"), "/")
	if !keyNamePart.MatchString(name) || (version != "" && !keyNamePart.MatchString(version)) {
		return "", "", badRequest(fmt.Sprintf("kid %q: want a key name (letters, digits, dashes), NAME/VERSION, or https://VAULT/keys/NAME/VERSION", kid))
	}
	return name, version, nil
}
