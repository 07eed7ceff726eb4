// Package azuritetest starts a real Azurite blob server for tests (the blobio tests and the
// mount tests that read from "Azure"): a fresh in-memory instance on a free 127.0.0.1 port,
// stopped in t.Cleanup, over HTTP or over HTTPS with OAuth and a self-signed certificate.
//
// The binary comes from ENCFS_AZURITE_BIN or REPO/.tools/azurite/node_modules/.bin/azurite-blob
// (scripts/azurite.sh installs it). When it is missing the test is skipped with a message,
// except under CI=true, where it fails.
package azuritetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/encfs/encfs/internal/syncbuf"
)

// The development account every Azurite instance has.
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	Version = "3.35.0"
)

// Config chooses how the server listens.
type Config struct {
	// OAuth serves HTTPS with a generated self-signed certificate and accepts bearer tokens
	// (--oauth basic): see Token.
	OAuth bool
}

// Server is a running Azurite blob service.
type Server struct {
	// Endpoint is the account's blob endpoint, http(s)://127.0.0.1:PORT/devstoreaccount1.
	Endpoint string
	// Addr is 127.0.0.1:PORT.
	Addr string
	// HTTPClient trusts the server's certificate (a plain client for HTTP).
	HTTPClient *http.Client
	// CertPEM is the self-signed certificate under OAuth, else nil.
	CertPEM []byte
	// ConnectionString uses the development account key.
	ConnectionString string

	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	stop sync.Once
}

// Bin finds the azurite-blob binary.
func Bin() (string, error) {
	if p := os.Getenv("ENCFS_AZURITE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ENCFS_AZURITE_BIN=%s: %v", p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, ".tools", "azurite", "node_modules", ".bin", "azurite-blob")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("azurite-blob not found at %s: run scripts/azurite.sh to install azurite@%s, or set ENCFS_AZURITE_BIN", p, Version)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("azurite-blob not found (no go.mod above the working directory); set ENCFS_AZURITE_BIN")
		}
		dir = parent
	}
}

// Start starts Azurite and registers its shutdown with t.Cleanup.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin, err := Bin()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("azurite: %v", err)
		}
		t.Skipf("azurite: %v", err)
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin, dir, cfg)
		if err == nil {
			return s
		}
		lastErr = err // most likely the free port was taken in between: try another
	}
	t.Fatalf("azurite: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, dir string, cfg Config) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--silent", "--disableTelemetry", "--skipApiVersionCheck", "--inMemoryPersistence"}
	s := &Server{Addr: addr, HTTPClient: &http.Client{Transport: newTransport(nil)}}
	scheme := "http"
	if cfg.OAuth {
		certPEM, certFile, keyFile, err := selfSigned(dir)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(certPEM)
		s.CertPEM = certPEM
		s.HTTPClient = &http.Client{Transport: newTransport(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})}
		args = append(args, "--oauth", "basic", "--cert", certFile, "--key", keyFile)
		scheme = "https"
	}
	s.Endpoint = fmt.Sprintf("%s://%s/%s", scheme, addr, Account)
	s.ConnectionString = fmt.Sprintf("DefaultEndpointsProtocol=%s;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", scheme, Account, Key, s.Endpoint)
	s.out = &syncbuf.Buffer{Limit: 1 << 20}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.Dir = dir // --inMemoryPersistence excludes --location; anything written lands here
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Ask over HTTP and check who answers: test packages run in parallel processes, and the
		// free port may have been taken by another test's server in between, in which case this
		// Azurite fails to bind and something else answers on the port.
		if server, err := s.serverHeader(scheme + "://" + addr + "/" + Account + "?restype=service&comp=properties"); err == nil {
			if !strings.HasPrefix(server, "Azurite") {
				s.kill(exited)
				return nil, fmt.Errorf("port %d is served by something else (Server %q)", port, server)
			}
			break
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("azurite exited at start (%v): %s", err, s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill(exited)
			return nil, fmt.Errorf("azurite did not listen on %s within 30s: %s", addr, s.out.String())
		}
	}
	t.Cleanup(func() { s.kill(exited) })
	return s, nil
}

// serverHeader returns the Server header of a GET of url.
func (s *Server) serverHeader(url string) (string, error) {
	c := &http.Client{Transport: s.HTTPClient.Transport, Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return resp.Header.Get("Server"), nil
}

// kill stops the whole process group (node may start children).
func (s *Server) kill(exited chan error) {
	s.stop.Do(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func newTransport(tc *tls.Config) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = 64
	return tr
}

// selfSigned writes a certificate for 127.0.0.1 and localhost and its key into dir.
func selfSigned(dir string) (certPEM []byte, certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "azurite test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, "", "", err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, "", "", err
	}
	return certPEM, certFile, keyFile, nil
}

// ClientOptions makes SDK clients use the server's transport.
func (s *Server) ClientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{Transport: s.HTTPClient, Retry: policy.RetryOptions{MaxRetries: 2}}
}

// SharedKey is the development account's key credential.
func (s *Server) SharedKey() *blob.SharedKeyCredential {
	k, err := blob.NewSharedKeyCredential(Account, Key)
	if err != nil {
		panic(err)
	}
	return k
}

// BlobURL is the URL of a blob in this server.
func (s *Server) BlobURL(containerName, blobName string) string {
	return s.Endpoint + "/" + containerName + "/" + blobName
}

// Container returns a shared-key client for a container.
func (s *Server) Container(t testing.TB, name string) *container.Client {
	t.Helper()
	c, err := container.NewClientWithSharedKeyCredential(s.Endpoint+"/"+name, s.SharedKey(), &container.ClientOptions{ClientOptions: s.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// CreateContainer creates a container; public makes its blobs readable anonymously.
func (s *Server) CreateContainer(t testing.TB, name string, public bool) {
	t.Helper()
	var o *container.CreateOptions
	if public {
		a := container.PublicAccessTypeBlob
		o = &container.CreateOptions{Access: &a}
	}
	if _, err := s.Container(t, name).Create(context.Background(), o); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
}

// PutBlockBlob uploads data as a block blob with the account key and returns its URL.
func (s *Server) PutBlockBlob(t testing.TB, containerName, blobName string, data []byte, meta map[string]*string) string {
	t.Helper()
	u := s.BlobURL(containerName, blobName)
	c, err := blockblob.NewClientWithSharedKeyCredential(u, s.SharedKey(), &blockblob.ClientOptions{ClientOptions: s.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadBuffer(context.Background(), data, &blockblob.UploadBufferOptions{BlockSize: 4 << 20, Concurrency: 8, Metadata: meta}); err != nil {
		t.Fatalf("upload %s: %v", u, err)
	}
	return u
}

// SAS returns the blob's URL with a service SAS signed by the account key.
func (s *Server) SAS(t testing.TB, containerName, blobName string, perms sas.BlobPermissions, expiry time.Time) string {
	t.Helper()
	v := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Hour).UTC(),
		ExpiryTime:    expiry.UTC(),
		Permissions:   perms.String(),
		ContainerName: containerName,
		BlobName:      blobName,
	}
	k, err := blob.NewSharedKeyCredential(Account, Key)
	if err != nil {
		t.Fatal(err)
	}
	q, err := v.SignWithSharedKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s.BlobURL(containerName, blobName) + "?" + q.Encode()
}

// Token is a credential that returns bearer tokens Azurite's --oauth basic accepts: a JWT
// with the storage audience, an Entra issuer and valid times. Azurite does not check the
// signature, so it is HS256 with a throwaway key.
type Token struct{}

// GetToken implements azcore.TokenCredential.
func (Token) GetToken(_ context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	now := time.Now()
	exp := now.Add(time.Hour)
	return azcore.AccessToken{Token: MakeJWT("https://storage.azure.com", now, exp), ExpiresOn: exp}, nil
}

// MakeJWT builds an HS256 JWT with the given audience and lifetime.
func MakeJWT(aud string, nbf, exp time.Time) string {
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"aud": aud, "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
		"iat": nbf.Unix(), "nbf": nbf.Unix(), "exp": exp.Unix(),
		"oid": "00000000-0000-0000-0000-000000000001", "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
	})
	body := enc.EncodeToString(hdr) + "." + enc.EncodeToString(claims)
	return body + "." + enc.EncodeToString([]byte("not-a-real-signature-azurite-does-not-check-it"))
}

// Log returns what Azurite printed (for failure messages).
func (s *Server) Log() string { return s.out.String() }
