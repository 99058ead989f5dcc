#!/usr/bin/env bash
# Makes the TLS tests' keys and certificates in DIR with the openssl CLI, fresh
# at every run (nothing secret is kept in the tree):
#   ca.pem              the test CA (ca.key its key)
#   server.pem/.key     CN=localhost, SAN DNS:localhost and IP:127.0.0.1, signed by the CA
#   client.pem/.key     CN=client, for client authentication, signed by the CA
#   untrusted.pem/.key  a self-signed CN=localhost no one trusts
#   expired.pem/.key    like server.pem, valid in January 2020 only
# EC P-256 keys: a handshake costs a fraction of RSA's, so the split tests can
# run hundreds of them. With "rsa", RSA 2048 keys instead (the bench: the
# server's signature is then most of a handshake's cost).
# Usage: make_certs.sh DIR [rsa]
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"

if [ "${2:-}" = rsa ]; then
    key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
else
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
fi

key ca.key
openssl req -x509 -new -key ca.key -subj "/CN=protogen test CA" -days 30 -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >client.ext

# signed NAME SUBJECT EXTFILE: NAME.key and NAME.pem, signed by the CA.
signed() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile "$3" \
        -out "$1.pem" 2>/dev/null
}
signed server "/CN=localhost/O=protogen test" server.ext
signed client "/CN=client/O=protogen test" client.ext

key untrusted.key
openssl req -x509 -new -key untrusted.key -subj "/CN=localhost" -days 30 -out untrusted.pem \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"

# An expired one needs dates in the past: openssl ca takes them.
key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
: >index.txt
echo 1000 >serial
cat >ca.cnf <<'CNF'
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
[any]
commonName = supplied
CNF
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \
    -startdate 20200101000000Z -enddate 20200201000000Z -extfile server.ext -notext 2>/dev/null
rm -f ./*.csr
echo "certificates in $PWD"
