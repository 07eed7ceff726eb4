package skrtest

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/internal/jose"
	"github.com/encfs/encfs/keys/internal/rsaaes"
)

// Key is a key held by the test Key Vault.
type Key struct {
	Kty        string // oct-HSM, oct or RSA-HSM
	Material   []byte // raw bytes for oct keys, PKCS#8 DER for RSA keys
	Policy     []byte // release policy JSON
	Exportable bool
	HSM        bool
	Version    string
}

// Faults make the test Key Vault misbehave in the ways a release client must catch.
type Faults struct {
	BadSignature     bool // corrupt the JWS signature
	UntrustedChain   bool // sign with a certificate from a CA the client does not trust
	TamperWrappedKey bool // flip a bit of the wrapped key material
	StaleNonce       bool // echo another nonce than the request's, as a replayed response would
	OtherKid         bool // name another key in the response than the one requested
}

// KeyVault is a test Azure Key Vault / Managed HSM: the bearer challenge, import (PUT
// /keys/{name}) and secure key release (POST /keys/{name}/{version}/release) with the token's
// signature checked against the issuing authority's /certs and the release policy enforced.
type KeyVault struct {
	*httptest.Server
	// BearerToken is the only AAD access token accepted.
	BearerToken string
	maaClient   *http.Client
	chain       [][]byte // DER, leaf first
	signKey     *rsa.PrivateKey
	rogueChain  [][]byte
	rogueKey    *rsa.PrivateKey

	mu       sync.Mutex
	keys     map[string]*Key
	faults   Faults
	releases int
	unauth   int
}

// VaultHost is the name the test vault answers at: a Key Vault domain, so that the azkeys client
// checks the bearer challenge's resource against it exactly as it does against a real vault.
// No resolver knows the name: clients reach the test server through KeyVault.Dial (Env.HTTPClient
// does).
const VaultHost = "encfs-test.vault.azure.net"

// NewKeyVault starts a test vault at https://VaultHost (URL), serving TLS and signing its
// release responses with leaves that ca issues for VaultHost. maaClient fetches attestation
// signing keys (it must trust the MAA).
func NewKeyVault(ca *CA, bearerToken string, maaClient *http.Client) (*KeyVault, error) {
	kv := &KeyVault{BearerToken: bearerToken, maaClient: maaClient, keys: map[string]*Key{}}
	kv.Server = httptest.NewUnstartedServer(http.HandlerFunc(kv.serve))
	leaf, leafKey, err := ca.Issue(VaultHost)
	if err != nil {
		return nil, err
	}
	kv.Server.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw, ca.Cert.Raw}, PrivateKey: leafKey, Leaf: leaf}}}
	kv.StartTLS()
	kv.URL = "https://" + VaultHost
	if kv.chain, kv.signKey, err = issueChain(ca); err != nil {
		kv.Close()
		return nil, err
	}
	rogue, err := NewCA("rogue CA")
	if err != nil {
		return nil, err
	}
	if kv.rogueChain, kv.rogueKey, err = issueChain(rogue); err != nil {
		kv.Close()
		return nil, err
	}
	return kv, nil
}

// Dial connects to the test vault when addr is VaultHost's HTTPS port, and to addr otherwise:
// the DialContext of a transport that reaches the vault by its name.
func (kv *KeyVault) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if addr == net.JoinHostPort(VaultHost, "443") {
		addr = kv.Listener.Addr().String()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func issueChain(ca *CA) ([][]byte, *rsa.PrivateKey, error) {
	leaf, key, err := ca.Issue(VaultHost)
	if err != nil {
		return nil, nil, err
	}
	return [][]byte{leaf.Raw, ca.Cert.Raw}, key, nil
}

// SetFaults replaces the active faults.
func (kv *KeyVault) SetFaults(f Faults) { kv.mu.Lock(); kv.faults = f; kv.mu.Unlock() }

// PutKey stores a key directly (as if created by an operator).
func (kv *KeyVault) PutKey(name string, k Key) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if k.Version == "" {
		k.Version = "0123456789abcdef0123456789abcdef"
	}
	kv.keys[name] = &k
}

// GetKey returns a copy of a stored key, or nil.
func (kv *KeyVault) GetKey(name string) *Key {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if k, ok := kv.keys[name]; ok {
		c := *k
		return &c
	}
	return nil
}

// Releases counts successful releases; Challenges counts 401 bearer challenges sent.
func (kv *KeyVault) Releases() int   { kv.mu.Lock(); defer kv.mu.Unlock(); return kv.releases }
func (kv *KeyVault) Challenges() int { kv.mu.Lock(); defer kv.mu.Unlock(); return kv.unauth }

func (kv *KeyVault) serve(w http.ResponseWriter, r *http.Request) {
	if !kv.authorized(w, r) {
		return
	}
	// azkeys sends /keys/{name}//release when no version is given, so split by hand rather than
	// let a mux clean (and redirect) the path.
	var seg []string
	for _, s := range strings.Split(r.URL.Path, "/") {
		if s != "" {
			seg = append(seg, s)
		}
	}
	switch {
	case r.Method == http.MethodPut && len(seg) == 2 && seg[0] == "keys":
		kv.importKey(w, r, seg[1])
	case r.Method == http.MethodPost && len(seg) >= 3 && len(seg) <= 4 && seg[0] == "keys" && seg[len(seg)-1] == "release":
		kv.release(w, r, seg[1])
	default:
		writeError(w, http.StatusNotFound, "NotFound", "no such operation "+r.Method+" "+r.URL.Path)
	}
}

// authorized answers the Key Vault bearer challenge: no token gets the 401 with the authority
// and resource to ask a token for; a wrong token gets 401 Unauthorized.
func (kv *KeyVault) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	if auth == "Bearer "+kv.BearerToken {
		return true
	}
	kv.mu.Lock()
	kv.unauth++
	kv.mu.Unlock()
	w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"`)
	if auth == "" {
		writeError(w, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
	} else {
		writeError(w, http.StatusUnauthorized, "Unauthorized", "AKV10022: Invalid audience or token.")
	}
	return false
}

func (kv *KeyVault) kid(name, version string) string {
	return kv.URL + "/keys/" + name + "/" + version
}

// importKey handles azkeys ImportKey.
func (kv *KeyVault) importKey(w http.ResponseWriter, r *http.Request, name string) {
	var req struct {
		Key        map[string]any `json:"key"`
		HSM        bool           `json:"hsm"`
		Attributes struct {
			Exportable bool `json:"exportable"`
		} `json:"attributes"`
		ReleasePolicy *struct {
			ContentType string `json:"contentType"`
			Data        string `json:"data"`
			Immutable   bool   `json:"immutable"`
		} `json:"release_policy"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "Invalid JSON: "+err.Error())
		return
	}
	field := func(n string) []byte {
		s, _ := req.Key[n].(string)
		b, _ := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		return b
	}
	k := Key{Exportable: req.Attributes.Exportable, HSM: req.HSM}
	k.Kty, _ = req.Key["kty"].(string)
	switch k.Kty {
	case "oct", "oct-HSM":
		k.Material = field("k")
		if len(k.Material) == 0 {
			writeError(w, http.StatusBadRequest, "BadParameter", "Property 'k' is required for an oct key.")
			return
		}
	case "RSA", "RSA-HSM":
		priv := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(field("n")), E: int(new(big.Int).SetBytes(field("e")).Int64())},
			D: new(big.Int).SetBytes(field("d")), Primes: []*big.Int{new(big.Int).SetBytes(field("p")), new(big.Int).SetBytes(field("q"))}}
		if err := priv.Validate(); err != nil {
			writeError(w, http.StatusBadRequest, "BadParameter", "Invalid RSA key: "+err.Error())
			return
		}
		k.Material, _ = x509.MarshalPKCS8PrivateKey(priv)
	default:
		writeError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("Key type %q is not supported.", k.Kty))
		return
	}
	if req.ReleasePolicy != nil {
		pol, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(req.ReleasePolicy.Data, "="))
		if err == nil {
			_, err = keys.ParseReleasePolicy(pol)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadParameter", "Invalid release policy: "+fmt.Sprint(err))
			return
		}
		k.Policy = pol
	}
	if k.Exportable && k.Policy == nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "Exportable keys must have a release policy.")
		return
	}
	kv.PutKey(name, k)
	stored := kv.GetKey(name)
	now := time.Now().Unix()
	resp := map[string]any{
		"key":        map[string]any{"kid": kv.kid(name, stored.Version), "kty": k.Kty, "key_ops": []string{"wrapKey", "unwrapKey", "encrypt", "decrypt"}},
		"attributes": map[string]any{"enabled": true, "exportable": k.Exportable, "created": now, "updated": now, "recoveryLevel": "Recoverable"},
	}
	if k.Policy != nil {
		resp["release_policy"] = map[string]any{"contentType": "application/json; charset=utf-8", "data": jose.B64.EncodeToString(k.Policy), "immutable": false}
	}
	writeJSON(w, http.StatusOK, resp)
}

// release handles secure key release.
func (kv *KeyVault) release(w http.ResponseWriter, r *http.Request, name string) {
	var req struct {
		Target string `json:"target"`
		Enc    string `json:"enc"`
		Nonce  string `json:"nonce"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Target == "" {
		writeError(w, http.StatusBadRequest, "BadParameter", "Property 'target' is required.")
		return
	}
	k := kv.GetKey(name)
	if k == nil {
		writeError(w, http.StatusNotFound, "KeyNotFound", fmt.Sprintf("A key with (name/id) %s was not found in this key vault.", name))
		return
	}
	if !k.Exportable || k.Policy == nil {
		writeError(w, http.StatusForbidden, "Forbidden", "The key is not exportable.")
		return
	}
	if req.Enc == "" {
		req.Enc = rsaaes.CKMRSAAESKeyWrap
	}
	claims, issuer, err := kv.verifyToken(req.Target)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "Target environment attestation statement cannot be verified. "+err.Error())
		return
	}
	policy, err := keys.ParseReleasePolicy(k.Policy)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	if ok, why := policy.Satisfied(issuer, claims); !ok {
		writeError(w, http.StatusForbidden, "Forbidden", "Target environment attestation statement does not satisfy the key release policy: "+why+".")
		return
	}
	runtimeKey, err := runtimeKeyFromClaims(claims)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", err.Error())
		return
	}
	jws, err := kv.releaseJWS(name, k, runtimeKey, req.Enc, req.Nonce)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", err.Error())
		return
	}
	kv.mu.Lock()
	kv.releases++
	kv.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"value": jws})
}

// verifyToken checks an attestation token's RS256 signature with the key its issuer publishes at
// /certs, and its validity period.
func (kv *KeyVault) verifyToken(tok string) (map[string]any, string, error) {
	j, err := jose.Parse(tok)
	if err != nil {
		return nil, "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(j.Payload, &claims); err != nil {
		return nil, "", errors.New("token claims are not JSON")
	}
	iss, _ := claims["iss"].(string)
	if !strings.HasPrefix(iss, "https://") {
		return nil, "", errors.New("token has no https issuer")
	}
	resp, err := kv.maaClient.Get(iss + "/certs")
	if err != nil {
		return nil, "", fmt.Errorf("cannot fetch the issuer's signing keys: %v", err)
	}
	defer resp.Body.Close()
	var set jose.JWKSet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, "", errors.New("issuer's /certs is not a key set")
	}
	var pub *rsa.PublicKey
	for _, k := range set.Keys {
		if k.Kid == j.Header.Kid {
			pub, err = k.RSAPublicKey()
			if err != nil {
				return nil, "", err
			}
		}
	}
	if pub == nil {
		return nil, "", fmt.Errorf("no signing key %q at the issuer", j.Header.Kid)
	}
	if j.Header.Alg != "RS256" {
		return nil, "", fmt.Errorf("token alg %s, want RS256", j.Header.Alg)
	}
	if err := j.Verify(pub); err != nil {
		return nil, "", errors.New("token signature is invalid")
	}
	now := float64(time.Now().Unix())
	if exp, _ := claims["exp"].(float64); exp < now {
		return nil, "", errors.New("the attestation token has expired")
	}
	if nbf, _ := claims["nbf"].(float64); nbf > now+60 {
		return nil, "", errors.New("the attestation token is not yet valid")
	}
	return claims, iss, nil
}

// runtimeKeyFromClaims finds the RSA key in x-ms-runtime.keys that the key is wrapped to.
func runtimeKeyFromClaims(claims map[string]any) (*rsa.PublicKey, error) {
	rt, _ := json.Marshal(claims["x-ms-runtime"])
	var set jose.JWKSet
	if err := json.Unmarshal(rt, &set); err != nil {
		return nil, errors.New("x-ms-runtime holds no key set")
	}
	for _, k := range set.Keys {
		if k.Kty == "RSA" {
			return k.RSAPublicKey()
		}
	}
	return nil, errors.New("Target environment attestation statement holds no RSA runtime key in x-ms-runtime.keys")
}

// releaseJWS wraps the key to the runtime key and signs the response with the x5c chain.
func (kv *KeyVault) releaseJWS(name string, k *Key, to *rsa.PublicKey, enc, nonce string) (string, error) {
	kv.mu.Lock()
	f := kv.faults
	kv.mu.Unlock()
	ct, err := rsaaes.Wrap(to, enc, k.Material)
	if err != nil {
		return "", err
	}
	if f.TamperWrappedKey {
		ct[len(ct)-1] ^= 0x01
	}
	keyHSM, _ := json.Marshal(map[string]any{
		"schema_version": "1.0",
		"header":         map[string]string{"kid": "TpmEphemeralEncryptionKey", "alg": "dir", "enc": enc},
		"ciphertext":     jose.B64.EncodeToString(ct),
	})
	kid := kv.kid(name, k.Version)
	if f.StaleNonce {
		nonce = "0123456789abcdef0123456789abcdef"
	}
	if f.OtherKid {
		kid = kv.kid("another-key", k.Version)
	}
	payload, _ := json.Marshal(map[string]any{
		"request": map[string]any{"api-version": "7.4", "enc": enc, "kid": kid, "nonce": nonce},
		"response": map[string]any{"key": map[string]any{
			"attributes": map[string]any{"enabled": true, "exportable": true},
			"key": map[string]any{"kid": kid, "kty": k.Kty, "key_ops": []string{"wrapKey", "unwrapKey", "encrypt", "decrypt"},
				"key_hsm": jose.B64.EncodeToString(keyHSM)},
			"release_policy": map[string]any{"contentType": "application/json; charset=utf-8", "data": jose.B64.EncodeToString(k.Policy)},
		}},
	})
	chain, key := kv.chain, kv.signKey
	if f.UntrustedChain {
		chain, key = kv.rogueChain, kv.rogueKey
	}
	x5c := make([]string, len(chain))
	for i, der := range chain {
		x5c[i] = base64.StdEncoding.EncodeToString(der)
	}
	thumb := sha256.Sum256(chain[0])
	jws, err := jose.Sign(jose.Header{Alg: "RS256", Kid: kid, X5c: x5c, X5tS256: jose.B64.EncodeToString(thumb[:])}, payload, key)
	if err != nil {
		return "", err
	}
	if f.BadSignature {
		b := []byte(jws)
		i := strings.LastIndexByte(jws, '.') + 5
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		jws = string(b)
	}
	return jws, nil
}
