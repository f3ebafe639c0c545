// Package channel is the authenticated, multiplexed byte stream between
// podvisor and the agent inside a pod VM.
//
// One raw transport connection (virtio-serial port or hybrid vsock) carries a
// TLS 1.3 session in which each side proves possession of a per-VM ephemeral
// Ed25519 key and pins the other side's certificate; no CA is involved. On top
// of TLS, yamux multiplexes streams: the host opens every stream and names its
// purpose in a short header (control RPC or one stdio pipe of a process). The
// guest never opens streams.
package channel

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrAuth means the peer did not present the pinned certificate.
var ErrAuth = errors.New("peer authentication failed")

// Identity is one side's key pair and self-signed certificate.
type Identity struct {
	CertDER []byte
	Key     ed25519.PrivateKey
}

// NewIdentity creates a fresh Ed25519 identity. The certificate is only a
// container for the public key: peers pin it byte for byte, so its validity
// period and name carry no meaning beyond being well-formed.
func NewIdentity(name string) (Identity, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Identity{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return Identity{}, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return Identity{}, fmt.Errorf("create certificate: %w", err)
	}
	return Identity{CertDER: der, Key: key}, nil
}

// MarshalPEM encodes the identity as a certificate and a PKCS#8 key block.
func (id Identity) MarshalPEM() (cert, key []byte, err error) {
	k, err := x509.MarshalPKCS8PrivateKey(id.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	cert = CertPEM(id.CertDER)
	key = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})
	return cert, key, nil
}

// ParseIdentityPEM is the inverse of MarshalPEM; it checks that the key
// matches the certificate.
func ParseIdentityPEM(certPEM, keyPEM []byte) (Identity, error) {
	der, err := ParseCertPEM(certPEM)
	if err != nil {
		return Identity{}, err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return Identity{}, errors.New("key: no PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return Identity{}, fmt.Errorf("key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return Identity{}, errors.New("key: not an Ed25519 key")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Identity{}, fmt.Errorf("certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !bytes.Equal(pub, key.Public().(ed25519.PublicKey)) {
		return Identity{}, errors.New("key does not match certificate")
	}
	return Identity{CertDER: der, Key: key}, nil
}

// CertPEM encodes a DER certificate as PEM.
func CertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ParseCertPEM returns the DER bytes of a single PEM certificate.
func ParseCertPEM(certPEM []byte) ([]byte, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("certificate: no CERTIFICATE PEM block")
	}
	if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return b.Bytes, nil
}

// tlsConfig builds the TLS 1.3 configuration shared by both sides: present
// self, accept only exactly the pinned peer certificate.
func tlsConfig(self Identity, peerCertDER []byte) *tls.Config {
	pinned := append([]byte(nil), peerCertDER...)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{self.CertDER},
			PrivateKey:  self.Key,
		}},
		// Chain verification is replaced by pinning: the only acceptable
		// peer is the one whose certificate podvisor generated for this VM.
		InsecureSkipVerify: true,
		ClientAuth:         tls.RequireAnyClientCert,
		ServerName:         "podvisor-agent",
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) != 1 || subtle.ConstantTimeCompare(raw[0], pinned) != 1 {
				return ErrAuth
			}
			return nil
		},
	}
}
