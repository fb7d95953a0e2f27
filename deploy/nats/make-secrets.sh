#!/usr/bin/env bash
# Makes a ready-to-run, secured NATS config folder for capstream: a private CA, a server
# certificate (also used between cluster nodes), a client certificate, a random password
# with its bcrypt hash in auth.conf, and copies of the shipped server configs beside it
# (their `include "auth.conf"` is relative to the config file).
#
#   deploy/nats/make-secrets.sh DIR [EXTRA_HOST ...]
#
# Then, for one node:
#   . DIR/server.env && NATS_STORE_DIR=/var/lib/capstream/nats nats-server -c DIR/single.conf
# and for capstream, in the pipeline's [nats] table (or the --nats-* flags):
#   user = "capstream"
#   password_file = "DIR/password"
#   tls_ca_file = "DIR/ca.crt"
#   tls_cert_file = "DIR/client.crt"
#   tls_key_file = "DIR/client.key"
#
# Needs openssl and htpasswd (Debian: openssl, apache2-utils). Keys and the password
# are created mode 0600. The certificates name localhost, 127.0.0.1, ::1, the compose
# hosts nats-1..3, the Kubernetes pods nats-{0,1,2}.nats.capstream.svc and any
# EXTRA_HOST (a name, or an IP address). deploy/README.md explains rotation.
set -euo pipefail
dir=${1:?usage: make-secrets.sh DIR [EXTRA_HOST ...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
for tool in openssl htpasswd; do
  command -v "$tool" >/dev/null || { echo "make-secrets.sh: $tool is missing (apt-get install openssl apache2-utils)" >&2; exit 1; }
done
mkdir -p "$dir"
cd "$dir"
if [ -e ca.key ]; then
  echo "make-secrets.sh: $dir already holds a CA; rotate as deploy/README.md says, or use an empty folder" >&2
  exit 1
fi
umask 077

san="IP:127.0.0.1,IP:::1"
for h in localhost nats-1 nats-2 nats-3 nats-0.nats.capstream.svc nats-1.nats.capstream.svc \
         nats-2.nats.capstream.svc nats.capstream.svc "$@"; do
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
done

ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 -new "${ec[@]}" -keyout ca.key -out ca.crt -days 825 \
  -subj "/CN=capstream NATS CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

leaf() { # name, common name, extended key usage, subjectAltName (optional)
  openssl req -new "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$3"
    [ -n "${4:-}" ] && echo "subjectAltName=$4"
  } > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out "$1.crt" -days 397 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
# The server certificate also authenticates a node to its peers on cluster routes.
leaf server "capstream NATS server" "serverAuth,clientAuth" "$san"
leaf client "capstream" "clientAuth"
rm -f ca.srl

openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | head -c 32 > password
hash=$(htpasswd -bnBC 10 "" "$(cat password)" | tr -d ':\n')
cat > auth.conf <<CONF
# Written by deploy/nats/make-secrets.sh: the users capstream connects as. Passwords
# are bcrypt hashes; the clear password is in ./password, for capstream only.
authorization {
  users: [
    {user: capstream, password: "$hash"}
  ]
}
CONF

cat > server.env <<ENV
export NATS_TLS_CA_FILE=$PWD/ca.crt
export NATS_TLS_CERT_FILE=$PWD/server.crt
export NATS_TLS_KEY_FILE=$PWD/server.key
ENV

umask 022
cp "$here/single.conf" "$here"/cluster/nats-*.conf .
chmod 644 ca.crt server.crt client.crt ./*.conf server.env
chmod 600 auth.conf
echo "make-secrets.sh: wrote $PWD (CA, server and client certificates, password, auth.conf, configs)"
