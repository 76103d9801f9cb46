// Command csrcheck reports what the Kubernetes API server makes of CertificateSigningRequest
// spec.request values, using the same standard-library calls it does.
//
// Input: JSON lines {"id": "...", "request": "<base64>"}; "request" is decoded exactly as the
// API server decodes the []byte field spec.request from JSON. Each value then goes through
// kubernetes pkg/apis/certificates ParseCSR (pem.Decode, block type "CERTIFICATE REQUEST",
// x509.ParseCertificateRequest) and validation.validateCSR (CheckSignature).
//
// Output: one JSON line per input, in order: {"id", "ok", "error", "cn", "cns", "o", "ou", "dns"};
// "cn" is the CN Go keeps (the last), "cns" every CN attribute of the subject in order.
package main

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

type input struct {
	ID      string `json:"id"`
	Request []byte `json:"request"`
}

type output struct {
	ID                 string   `json:"id"`
	OK                 bool     `json:"ok"`
	Error              string   `json:"error,omitempty"`
	CommonName         string   `json:"cn"`
	CommonNames        []string `json:"cns"`
	Organization       []string `json:"o"`
	OrganizationalUnit []string `json:"ou"`
	DNSNames           []string `json:"dns"`
}

func parseCSR(request []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("PEM block type must be CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	return csr, csr.CheckSignature()
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

func commonNames(csr *x509.CertificateRequest) []string {
	names := []string{}
	for _, atv := range csr.Subject.Names {
		if value, ok := atv.Value.(string); ok && atv.Type.Equal(oidCommonName) {
			names = append(names, value)
		}
	}
	return names
}

func check(line []byte) output {
	var in input
	if err := json.Unmarshal(line, &in); err != nil {
		return output{Error: "input: " + err.Error()}
	}
	csr, err := parseCSR(in.Request)
	if err != nil {
		return output{ID: in.ID, Error: err.Error()}
	}
	return output{
		ID:                 in.ID,
		OK:                 true,
		CommonName:         csr.Subject.CommonName,
		CommonNames:        commonNames(csr),
		Organization:       csr.Subject.Organization,
		OrganizationalUnit: csr.Subject.OrganizationalUnit,
		DNSNames:           csr.DNSNames,
	}
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 0, 1<<20), 16<<20)
	writer := bufio.NewWriter(os.Stdout)
	defer writer.Flush()
	encoder := json.NewEncoder(writer)
	for scanner.Scan() {
		if err := encoder.Encode(check(scanner.Bytes())); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
