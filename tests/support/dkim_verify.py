"""Verifies the DKIM signature of one message with dkimpy, an implementation independent of
missive's (lettre's). The public key is given on the command line, as the DNS TXT record the
organization would publish, so no DNS is queried.

usage: python3 dkim_verify.py MESSAGE.eml SELECTOR DOMAIN "v=DKIM1; k=ed25519; p=..."
prints `pass h=<signed headers>` and exits 0, or prints `fail ...` and exits 1.
"""
import sys

import dkim


def main():
    path, selector, domain, record = sys.argv[1:5]
    message = open(path, "rb").read()
    expected = f"{selector}._domainkey.{domain}.".lower()

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        if name.lower().rstrip(".") + "." != expected:
            raise SystemExit(f"fail: the verifier asked DNS for {name}, not {expected}")
        return record.encode()

    verifier = dkim.DKIM(message)
    ok = verifier.verify(dnsfunc=dnsfunc)
    fields = verifier.signature_fields or {}
    signed = fields.get(b"h", b"").decode()
    algorithm = fields.get(b"a", b"").decode()
    print(f"{'pass' if ok else 'fail'} a={algorithm} h={signed}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
