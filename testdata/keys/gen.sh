#!/usr/bin/env bash
# Regenerates the TEST-ONLY keys in this folder. They are published in this
# repository and must never sign anything real.
# The cosign-format encrypted key is made by internal/testkeys (go run ./internal/testkeys).
set -euo pipefail
cd "$(dirname "$0")"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out es256.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out es384.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out es512.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2048.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.pem
openssl genpkey -algorithm ED25519 -out ed25519.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other-es256.pem
# The same kinds of key in the older encodings openssl writes.
openssl ec -in es256.pem -out es256-sec1.pem 2>/dev/null
openssl rsa -in rsa2048.pem -traditional -out rsa2048-pkcs1.pem 2>/dev/null
for k in es256 es384 es512 rsa2048 rsa1024 ed25519 other-es256; do
  openssl pkey -in "$k.pem" -pubout -out "$k.pub"
done
