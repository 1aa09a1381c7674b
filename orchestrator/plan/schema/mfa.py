"""The rule of `mfa_factors`: 1 to 10 enrollments, each exactly one of totp, phone or email."""

from __future__ import annotations

from typing import Final

from orchestrator.plan.schema.vocabulary import (
    EMAIL,
    MFA_KINDS,
    MFA_MAX,
    PHONE,
    TOTP_SECRET,
    Problem,
    Problems,
    Rule,
    email_faults,
    json_type,
    pointer,
    show_key,
    wrong_type,
)

# ==================================================================================================
# mfa_factors, in parts (SCHEMA-PAGE, "mfa_factors")
# ==================================================================================================
_MFA: Final = "/mfa_factors"
_MFA_REASON: Final = "invalid_mfa_factors"


def _factor(index: int, factor: object, out: list[Problem]) -> None:
    if not isinstance(factor, dict):
        out.append(
            Problem(
                _MFA_REASON,
                f"{_MFA}/{index}",
                f"MFA factor {index} is {json_type(factor)}; it must be an object",
            )
        )
        return
    if len(factor) != 1:
        out.append(
            Problem(
                _MFA_REASON,
                f"{_MFA}/{index}",
                f"MFA factor {index} must have exactly one of totp, phone, email "
                f"(it has {len(factor)} properties)",
            )
        )
    for kind, inner in factor.items():
        field = MFA_KINDS.get(kind) if isinstance(kind, str) else None
        if field is None:
            out.append(
                Problem(
                    _MFA_REASON,
                    pointer("mfa_factors", index, kind),
                    f"{show_key(kind)} is not an MFA factor type; use totp, phone or email",
                )
            )
        else:
            name = str.__str__(kind)
            _factor_body(f"{_MFA}/{index}/{name}", name, field, inner, out)


def _factor_body(path: str, kind: str, field: str, inner: object, out: list[Problem]) -> None:
    if not isinstance(inner, dict):
        message = f"the {kind} factor is {json_type(inner)}; it must be an object with {field}"
        out.append(Problem(_MFA_REASON, path, message))
        return
    if len(inner) != 1 or field not in inner:
        out.extend(
            Problem(
                _MFA_REASON,
                path + pointer(key),
                f"{show_key(key)} is not allowed in a {kind} factor; only {field}",
            )
            for key in inner
            if key != field
        )
        if field not in inner:
            out.append(Problem(_MFA_REASON, f"{path}/{field}", f"the {kind} factor needs {field}"))
            return
    value = inner[field]
    if not isinstance(value, str):
        message = f"the {kind} {field} is {json_type(value)}; it must be a string"
    elif kind == "totp":
        if TOTP_SECRET.fullmatch(value) is not None:
            return
        message = "the TOTP secret must be unpadded base32 (A-Z and 2-7 only)"
    elif kind == "phone":
        if PHONE.fullmatch(value) is not None:
            return
        message = "the MFA phone must be E.164: '+' then 1-15 digits"
    else:
        if EMAIL.fullmatch(value) is not None:
            return
        message = f"the MFA email is not valid: {'; '.join(email_faults(value))}"
    out.append(Problem(_MFA_REASON, f"{path}/{field}", message))


# mfa_factors: 1-10 items, each exactly one of totp/phone/email [C] SCHEMA-PAGE.
def _mfa_factors(value: object) -> Problems:
    if not isinstance(value, list):
        return (wrong_type(_MFA, "mfa_factors", value, "an array"),)
    out: list[Problem] = []
    if not 1 <= len(value) <= MFA_MAX:
        out.append(
            Problem(
                _MFA_REASON,
                _MFA,
                f"mfa_factors has {len(value)} items; give 1 to {MFA_MAX} (or remove the field)",
            )
        )
    for index, factor in enumerate(value):
        _factor(index, factor, out)
    return out


#: Property name -> its rule.
RULES: Final[dict[str, Rule]] = {"mfa_factors": _mfa_factors}
