#!/usr/bin/env python3
"""Verify a stellaops-cli mirror bundle with code that is not this project's.

  verify.py jws-joserfc  BUNDLE PUBKEY ALG   bundle.json.jws of every domain, with joserfc (RFC 7797)
  verify.py jws-raw      BUNDLE PUBKEY ALG   the same with the `cryptography` package only
  verify.py dsse         BUNDLE PUBKEY ALG   mirror.dsse.json: PAE computed here, signature checked with `cryptography`

Each command also checks that the key id in the signature is the hex SHA-256
of the public key's DER SubjectPublicKeyInfo, and that a one-byte change to
the signed bytes is refused (so that a pass is not vacuous). Exit status 0
when everything verified, 1 otherwise; one line per file on stdout.
"""

import base64
import hashlib
import json
import os
import sys
import warnings

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

PAYLOAD_TYPE = "application/vnd.stellaops.mirror+json;version=1"
HASHES = {"ES256": hashes.SHA256, "ES384": hashes.SHA384, "ES512": hashes.SHA512,
          "RS256": hashes.SHA256, "RS384": hashes.SHA384}


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def load_public(path):
    with open(path, "rb") as f:
        return serialization.load_pem_public_key(f.read())


def key_id(pub):
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def verify_raw(pub, alg, sig, message, raw_ecdsa):
    """Raise InvalidSignature unless sig signs message under alg."""
    if isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(sig, message)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        if raw_ecdsa:
            size = (pub.curve.key_size + 7) // 8
            if len(sig) != 2 * size:
                raise InvalidSignature("raw ECDSA signature of %d bytes, want %d" % (len(sig), 2 * size))
            sig = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
        pub.verify(sig, message, ec.ECDSA(HASHES[alg]()))
    elif isinstance(pub, rsa.RSAPublicKey):
        pub.verify(sig, message, padding.PKCS1v15(), HASHES[alg]())
    else:
        raise SystemExit("unsupported key type %r" % pub)


def domains(bundle):
    with open(os.path.join(bundle, "mirror.json"), "rb") as f:
        return json.load(f)["domains"]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def flipped(data):
    b = bytearray(data)
    b[len(b) // 2] ^= 1
    return bytes(b)


def jws_joserfc(bundle, pub_path, alg):
    from joserfc import jws
    from joserfc.jwk import import_key

    pub = load_public(pub_path)
    kty = {"ES": "EC", "RS": "RSA", "Ed": "OKP"}[alg[:2]]
    key = import_key(read(pub_path), kty)
    ok = True
    for d in domains(bundle):
        rel = "mirror/%s/bundle.json.jws" % d
        compact = read(os.path.join(bundle, rel)).strip()
        payload = read(os.path.join(bundle, "mirror", d, "bundle.json"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # joserfc warns that RFC 9864 deprecates the name EdDSA
                obj = jws.deserialize_compact(compact, key, algorithms=[alg], payload=payload)
            h = obj.headers()
            problems = []
            if h.get("b64") is not False or h.get("crit") != ["b64"]:
                problems.append("header is not RFC 7797 unencoded: %r" % h)
            if h.get("alg") != alg:
                problems.append("alg %r, want %r" % (h.get("alg"), alg))
            if h.get("kid") != key_id(pub):
                problems.append("kid %r is not SHA-256(SPKI) %s" % (h.get("kid"), key_id(pub)))
            try:
                jws.deserialize_compact(compact, key, algorithms=[alg], payload=flipped(payload))
                problems.append("a changed bundle.json also verified")
            except Exception:
                pass
        except Exception as e:  # joserfc raises several error classes
            problems = ["%s: %s" % (type(e).__name__, e)]
        ok &= report(rel, "joserfc RFC 7797 detached JWS", problems)
    return ok


def jws_raw(bundle, pub_path, alg):
    pub = load_public(pub_path)
    ok = True
    for d in domains(bundle):
        rel = "mirror/%s/bundle.json.jws" % d
        compact = read(os.path.join(bundle, rel)).strip().decode("ascii")
        payload = read(os.path.join(bundle, "mirror", d, "bundle.json"))
        problems = []
        parts = compact.split(".")
        if len(parts) != 3 or parts[1] != "":
            report(rel, "cryptography JWS", ["not a compact detached JWS"])
            ok = False
            continue
        header = json.loads(b64url_decode(parts[0]))
        if header != {"alg": alg, "kid": key_id(pub), "b64": False, "crit": ["b64"]}:
            problems.append("header %r" % header)
        # RFC 7797 section 3: ASCII(BASE64URL(header)) || '.' || payload bytes.
        signing_input = parts[0].encode("ascii") + b"." + payload
        sig = b64url_decode(parts[2])
        try:
            verify_raw(pub, alg, sig, signing_input, raw_ecdsa=True)
        except InvalidSignature as e:
            problems.append("signature does not verify %s" % (e or ""))
        try:
            verify_raw(pub, alg, sig, parts[0].encode("ascii") + b"." + flipped(payload), raw_ecdsa=True)
            problems.append("a changed bundle.json also verified")
        except InvalidSignature:
            pass
        ok &= report(rel, "cryptography JWS over BASE64URL(header).payload", problems)
    return ok


def pae(payload_type, payload):
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def dsse(bundle, pub_path, alg):
    pub = load_public(pub_path)
    env = json.loads(read(os.path.join(bundle, "mirror.dsse.json")))
    payload = base64.b64decode(env["payload"], validate=True)
    problems = []
    if env["payloadType"] != PAYLOAD_TYPE:
        problems.append("payloadType %r" % env["payloadType"])
    if payload != read(os.path.join(bundle, "mirror.json")):
        problems.append("payload is not the bytes of mirror.json")
    # DSSE signatures are ASN.1 DER for ECDSA, with the algorithm's digest.
    verified = False
    for s in env["signatures"]:
        if s.get("keyid") != key_id(pub):
            continue
        sig = base64.b64decode(s["sig"], validate=True)
        try:
            verify_raw(pub, alg, sig, pae(env["payloadType"], payload), raw_ecdsa=False)
            verified = True
        except InvalidSignature:
            continue
        try:
            verify_raw(pub, alg, sig, pae(env["payloadType"], flipped(payload)), raw_ecdsa=False)
            problems.append("a changed payload also verified")
        except InvalidSignature:
            pass
        try:
            verify_raw(pub, alg, sig, pae("application/json", payload), raw_ecdsa=False)
            problems.append("another payloadType also verified")
        except InvalidSignature:
            pass
    if not verified:
        problems.append("no signature with keyid %s verifies over PAE" % key_id(pub))
    return report("mirror.dsse.json", "cryptography DSSE over PAE", problems)


def report(rel, what, problems):
    if problems:
        print("FAIL %s: %s: %s" % (rel, what, "; ".join(problems)))
        return False
    print("ok   %s: %s" % (rel, what))
    return True


def main(argv):
    if len(argv) != 5 or argv[1] not in ("jws-joserfc", "jws-raw", "dsse"):
        sys.stderr.write(__doc__)
        return 2
    cmd, bundle, pub, alg = argv[1:]
    fn = {"jws-joserfc": jws_joserfc, "jws-raw": jws_raw, "dsse": dsse}[cmd]
    return 0 if fn(bundle, pub, alg) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
