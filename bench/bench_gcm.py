"""CPU cost of one DLMS AES-GCM encrypt+decrypt round, gurux pure-Python vs fast_gcm.

Usage: python bench/bench_gcm.py [--budget SECONDS] [--policy auth-enc|auth|enc]

We measure gurux's full ``encryptAesGcm``/``decryptAesGcm`` rather than the
bare cipher. That is what a poll pays per request and per reply, framing
included. We use CPU time (``time.process_time``) because the gateway shares
one event loop across meters, and CPU, not wall time, limits how many meters
it can poll.
"""
from __future__ import annotations

import argparse
import importlib
import os
import time

from gurux_dlms import GXByteBuffer
from gurux_dlms.AesGcmParameter import AesGcmParameter
from gurux_dlms.enums import Command, Security

from tb_dlms.protocol import fast_gcm, quiet

POLICIES = {
    "auth-enc": Security.AUTHENTICATION_ENCRYPTION,
    "auth": Security.AUTHENTICATION,
    "enc": Security.ENCRYPTION,
}
SIZES = (64, 1024)

_chippering = importlib.import_module("gurux_dlms.GXDLMSChippering").GXDLMSChippering


def _round_trip(policy, key, ak, title, ic, apdu):
    p = AesGcmParameter(Command.GLO_GET_RESPONSE, title, key, ak)
    p.security = policy
    p.invocationCounter = ic
    frame = _chippering.encryptAesGcm(p, apdu)
    q = AesGcmParameter(0, title, key, ak)
    out = _chippering.decryptAesGcm(None, q, GXByteBuffer(frame))
    if bytes(out) != bytes(apdu):
        raise AssertionError("round trip mismatch")


def _measure(policy, size, budget):
    key, ak, title = bytearray(os.urandom(16)), bytearray(os.urandom(16)), bytearray(os.urandom(8))
    apdu = bytearray(os.urandom(size))
    _round_trip(policy, key, ak, title, 1, apdu)  # warm-up
    n = 0
    start = time.process_time()
    elapsed = 0.0
    while elapsed < budget or n < 3:
        _round_trip(policy, key, ak, title, n + 2, apdu)
        n += 1
        elapsed = time.process_time() - start
    return elapsed / n * 1e6, n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=1.0, help="CPU seconds per measurement")
    ap.add_argument("--policy", choices=sorted(POLICIES), default="auth-enc")
    args = ap.parse_args(argv)
    policy = POLICIES[args.policy]
    # As in the daemon: without this, gurux prints "Encryption is applied."
    # on every decrypt, and the cost of writing to the terminal would count
    # against both columns.
    quiet.silence_gurux()

    print(f"policy={args.policy}  (one op = encryptAesGcm + decryptAesGcm of one APDU)")
    print(f"{'APDU bytes':>10} {'original us/op':>15} {'patched us/op':>14} {'ratio':>8}   (ops measured)")
    for size in SIZES:
        fast_gcm.uninstall()
        orig_us, orig_n = _measure(policy, size, args.budget)
        if not fast_gcm.install():
            raise SystemExit("fast_gcm.install() refused to patch")
        fast_us, fast_n = _measure(policy, size, args.budget)
        fast_gcm.uninstall()
        print(f"{size:>10} {orig_us:>15.1f} {fast_us:>14.1f} {orig_us / fast_us:>7.1f}x   ({orig_n} / {fast_n})")


if __name__ == "__main__":
    main()
