"""The vocabulary of the hash formats the import reads (reference §7), each fact spelled once.

The converters write with it and the import schema (`plan.schema`, a layer above) checks with it,
so that what this tool makes and what it accepts cannot drift apart. The PHC names (Node's digest
names, the argon2 variants) are `phc`'s; the checks that read inside a value are `check`'s.
"""

from __future__ import annotations

import binascii
import re
from typing import Final

#: `custom_password_hash.algorithm` values, in the order the import's schema documents them.
ALGORITHMS: Final = (
    "argon2",
    "bcrypt",
    "hmac",
    "ldap",
    "md4",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "pbkdf2",
    "scrypt",
)
#: What Auth0 reads as bcrypt (`password_hash`, and custom bcrypt): $2a$/$2b$/$2y$, a two-digit
#: cost 04-31, then 22 salt and 31 hash characters of bcrypt's base64.
BCRYPT: Final = re.compile(r"\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
#: Digest sizes in bytes, in the schema's order. The keys are the `hash.digest` names hmac takes;
#: md4 to sha512 are also the digest algorithms, whose hashes are exactly this long.
DIGEST_SIZES: Final = {
    "md4": 16,
    "md5": 16,
    "ripemd160": 20,
    "sha1": 20,
    "sha224": 28,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "whirlpool": 64,
}
#: Whole bytes of hex, either case (the even length is tested apart: `(?:..)*` is ~4x slower).
_HEX_DIGITS: Final = re.compile(r"[0-9A-Fa-f]*")
#: Node's Buffer reads base64 in either alphabet, padded or not (reference §7).
_NODE_BASE64: Final = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_URL_SAFE: Final = str.maketrans("-_", "+/")


def decode(text: str, encoding: str) -> bytes | None:
    """The bytes of a hex or base64 value as Auth0 (Node's Buffer) reads it: hex in either case,
    base64 in either alphabet with padding optional.

    Returns:
        None for a text that is not valid in `encoding`, and for any other encoding (utf8 is text,
        not an encoding of bytes to check).
    """
    if encoding == "hex":
        if len(text) % 2 or _HEX_DIGITS.fullmatch(text) is None:
            return None
        return bytes.fromhex(text)
    if encoding != "base64" or _NODE_BASE64.fullmatch(text) is None:
        return None
    bare = text.rstrip("=")
    if "-" in bare or "_" in bare:  # translate() looks up every character: only when needed
        bare = bare.translate(_URL_SAFE)
    if len(bare) % 4 == 1:  # no byte string encodes to this length
        return None
    try:  # the alphabet is checked above: binascii decodes without checking it again
        return binascii.a2b_base64(bare + "=" * (-len(bare) % 4))
    except binascii.Error:
        return None
