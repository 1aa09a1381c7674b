"""PHC strings (`$<id>$<params>$<salt>$<hash>`) for the pbkdf2 and argon2 hashes of the import,
and the base64 flavours around them: writing them, and saying what is wrong with one.

The PHC format's B64 is standard base64 WITHOUT `=` padding (reference §7): the usual conversion
mistakes are padding, the url-safe alphabet, and a key length `l` that is not the hash's. Fault
texts describe the string's shape and never quote any part of it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

#: The digest names to write after `$pbkdf2-` (PHC ids are lowercase).
PBKDF2_DIGESTS: Final = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
#: Every name Auth0 reads there: Node's `crypto.getHashes()` names (case matters), as the import's
#: validator lists them; SHA-256 has six names, but "sha-256" or "SHA256" are none of them.
NODE_DIGESTS: Final = frozenset(
    {
        "RSA-MD4", "RSA-MD5", "RSA-MDC2", "RSA-RIPEMD160", "RSA-SHA1", "RSA-SHA1-2", "RSA-SHA224",
        "RSA-SHA256", "RSA-SHA384", "RSA-SHA512", "md4", "md4WithRSAEncryption", "md5",
        "md5WithRSAEncryption", "mdc2", "mdc2WithRSA", "ripemd", "ripemd160", "ripemd160WithRSA",
        "rmd160", "sha1", "sha1WithRSAEncryption", "sha224", "sha224WithRSAEncryption", "sha256",
        "sha256WithRSAEncryption", "sha384", "sha384WithRSAEncryption", "sha512",
        "sha512WithRSAEncryption", "ssl3-md5", "ssl3-sha1", "whirlpool",
    }
)  # fmt: skip
#: argon2 versions: 0x10 (1.0) and 0x13 (1.3); a string without v= is 1.0.
ARGON2_VERSIONS: Final = frozenset({16, 19})
ARGON2_VARIANTS: Final = frozenset({"argon2id", "argon2i", "argon2d"})
#: The argon2 reference implementation's floors: salt and hash bytes, memory KiB per lane.
_ARGON2_MIN_SALT: Final = 8
_ARGON2_MIN_HASH: Final = 4
_ARGON2_MIN_MEMORY_PER_LANE: Final = 8
#: Digits of a parameter: more than any real one has (argon2's are 32-bit) are refused unread.
_MAX_DIGITS: Final = 10
_PHC_B64: Final = re.compile(r"[A-Za-z0-9+/]*")
_STANDARD_B64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL_SAFE_B64: Final = re.compile(r"[A-Za-z0-9_-]*=*")


def b64encode(data: bytes) -> str:
    """PHC B64: standard base64 without padding."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes | None:
    """PHC B64 (standard alphabet, no padding) decoded; None if it is anything else."""
    return _decode_bare(text) if _PHC_B64.fullmatch(text) else None


def standard_b64decode(text: str) -> bytes | None:
    """Standard base64 as exports write it (Python's, Java's): padding optional; else None."""
    if not _STANDARD_B64.fullmatch(text) or (text.endswith("=") and len(text) % 4):
        return None
    return _decode_bare(text.rstrip("="))


def _decode_bare(bare: str) -> bytes | None:
    """Base64 whose alphabet the caller checked, without its padding."""
    if len(bare) % 4 == 1:  # no byte string encodes to this length
        return None
    try:
        return binascii.a2b_base64(bare + "=" * (-len(bare) % 4))
    except binascii.Error:
        return None


def b64_fault(text: str, what: str) -> str:
    """Why `text` is not PHC B64 ("" when it is), naming the part as `what`."""
    if not text:
        return f"the {what} is empty: PHC strings need it"
    if _PHC_B64.fullmatch(text):
        if b64decode(text) is None:
            return f"the {what} has a length no base64 string has: it was cut or copied wrongly"
        return ""
    if _PHC_B64.fullmatch(text.rstrip("=")):
        return f"the {what} ends in '=' padding: PHC strings use base64 without padding, remove it"
    if _URL_SAFE_B64.fullmatch(text):
        return (
            f"the {what} uses the url-safe base64 alphabet: "
            "re-encode with the standard one ('+' and '/' for '-' and '_') and no padding"
        )
    return f"the {what} has characters outside base64: it must be standard base64 without padding"


def pbkdf2(digest: str, iterations: int, salt: bytes, key: bytes) -> str:
    """`$pbkdf2-<digest>$i=<iterations>,l=<key bytes>$<salt>$<key>` (salt must not be empty)."""
    return f"$pbkdf2-{digest}$i={iterations},l={len(key)}${b64encode(salt)}${b64encode(key)}"


def argon2(
    variant: str, version: int, memory: int, time: int, lanes: int, salt: bytes, digest: bytes
) -> str:
    """`$argon2<x>$v=<version>$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>`, as argon2 writes it."""
    return (
        f"${variant}$v={version}$m={memory},t={time},p={lanes}"
        f"${b64encode(salt)}${b64encode(digest)}"
    )


def pbkdf2_faults(value: str) -> list[str]:
    """What is wrong with a pbkdf2 PHC string as Auth0 reads it (empty when nothing is)."""
    fields = value.split("$")
    if len(fields) not in (4, 5) or fields[0] or not fields[1].startswith("pbkdf2-"):
        return [
            "the hash value is not a pbkdf2 PHC string: "
            + "write $pbkdf2-<digest>$i=<iterations>,l=<key bytes>$<salt>$<hash>"
        ]
    faults: list[str] = []
    digest = fields[1].removeprefix("pbkdf2-")
    if digest not in NODE_DIGESTS:
        faults.append(_digest_fault(digest))
    params = _params(fields[2], ("i", "l"), faults) if len(fields) == 5 else {}
    if params is not None and "i" not in params:
        faults.append(
            "the PHC string has no i= (iterations): Auth0 would assume 100000; "
            "write the source's iteration count"
        )
    if params is not None and "l" not in params:
        faults.append(
            "the PHC string has no l= (key length): Auth0 would assume 64; "
            "write the decoded hash's length in bytes"
        )
    salt, key = b64decode(fields[-2]), b64decode(fields[-1])
    if not salt:
        faults.append(b64_fault(fields[-2], "salt"))
    if not key:
        faults.append(b64_fault(fields[-1], "hash"))
    if params and "l" in params and key:
        size = len(key)
        if params["l"] != size:
            faults.append(
                f"l={params['l']} but the hash decodes to {size} bytes: "
                f"set l={size} (the derived key length is the hash's own)"
            )
    return faults


def argon2_faults(value: str) -> list[str]:
    """What is wrong with an argon2 PHC string as the argon2 library reads it."""
    fields = value.split("$")
    if len(fields) == 5 and not fields[2].startswith("v="):  # no v=: version 1.0
        fields.insert(2, "v=16")
    if len(fields) != 6 or fields[0] or fields[1] not in ARGON2_VARIANTS:
        return [
            "the hash value is not an argon2 PHC string: "
            + "write $argon2id|argon2i|argon2d$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>"
        ]
    faults: list[str] = []
    if _number(fields[2].removeprefix("v=")) not in ARGON2_VERSIONS:
        faults.append("the argon2 version must be v=19 (1.3) or v=16 (1.0)")
    params = _params(fields[3], ("m", "t", "p"), faults, ordered=True)
    if params is not None:
        missing = [key for key in ("m", "t", "p") if key not in params]
        if missing:
            faults.append(f"the argon2 parameters lack {', '.join(missing)}: write m=,t=,p=")
        elif params["m"] < _ARGON2_MIN_MEMORY_PER_LANE * params["p"]:
            faults.append("argon2 needs m >= 8 * p (KiB of memory per lane): check m and p")
    floors = ((fields[4], "salt", _ARGON2_MIN_SALT), (fields[5], "hash", _ARGON2_MIN_HASH))
    for text, what, floor in floors:
        decoded = b64decode(text)
        if not decoded:
            faults.append(b64_fault(text, what))
        elif len(decoded) < floor:
            faults.append(
                f"the argon2 {what} is {len(decoded)} bytes; argon2 needs {floor} or more"
            )
    return faults


def _params(
    text: str, keys: tuple[str, ...], faults: list[str], *, ordered: bool = False
) -> dict[str, int] | None:
    """`k=<positive integer>,...` over `keys`; None (and a fault) when it is not that."""
    params: dict[str, int] = {}
    for item in text.split(","):
        key, sep, number = item.partition("=")
        if not sep or key not in keys or key in params:
            faults.append(
                f"the PHC parameters must be {','.join(f'{k}=<number>' for k in keys)} "
                "with each key once"
            )
            return None
        value = _number(number)
        if value is None or value < 1:
            faults.append(f"{key}= must be a whole number greater than zero, of 10 digits at most")
            return None
        params[key] = value
    if ordered and list(params) != [key for key in keys if key in params]:
        faults.append(f"the PHC parameters must come in the order {','.join(keys)}")
        return None
    return params


def _number(text: str) -> int | None:
    """A parameter's ASCII digits as a number; None for anything else (a value from a user's file
    may hold other digits, or thousands of them, which int() refuses)."""
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS:
        return None
    return int(text)


def _digest_fault(digest: str) -> str:
    """The digest is not one Auth0 knows: suggest the spelling it probably meant, unquoted."""
    folded = digest.lower().replace("-", "").replace("_", "")
    hint = f" (write {folded})" if folded in PBKDF2_DIGESTS else ""
    return (
        "the digest after $pbkdf2- must be a name Node knows, such as "
        f"{', '.join(PBKDF2_DIGESTS)} in lowercase{hint}"
    )
