"""The rules of the import's plain properties: the strings, the booleans and their lengths.

One rule per property, in the order of the reference's table (§7). Each decides whether its value
is valid and, only when it is not, works out why; `OK` answers a valid value.
"""

from __future__ import annotations

from typing import Final

from orchestrator.plan.schema.vocabulary import (
    EMAIL,
    MAX_USER_ID,
    MAX_USERNAME,
    OK,
    PHONE,
    STRING_LIMITS,
    URL,
    USER_ID,
    USERNAME,
    Problem,
    Problems,
    Rule,
    email_faults,
    json_type,
    not_plain_str,
    utf16_len,
)

# ==================================================================================================
# Kinds of rule used by several properties
# ==================================================================================================


def _boolean(name: str) -> Rule:
    """The rule of a boolean property."""
    path = "/" + name

    def rule(value: object) -> Problems:
        if value is True or value is False:
            return OK
        return (
            Problem(
                "invalid_type",
                path,
                f"{name} is {json_type(value)}; it must be the JSON boolean true or false",
            ),
        )

    return rule


def _bounded_string(name: str, limit: int) -> Rule:
    """The rule of a string of 1..limit characters, counted in UTF-16 units as Auth0's
    JavaScript validator counts them."""
    path = "/" + name

    def rule(value: object) -> Problems:
        if type(value) is not str:
            return not_plain_str(rule, name, value)
        n = len(value)
        # A character is 1 or 2 UTF-16 units: only a long non-ASCII string needs encoding.
        if n > 0 and (
            n * 2 <= limit or (n <= limit and (value.isascii() or utf16_len(value) <= limit))
        ):
            return OK
        if not value:
            return (Problem("invalid_length", path, f"{name} is empty; remove it or give a value"),)
        return (
            Problem(
                "invalid_length",
                path,
                f"{name} is {utf16_len(value)} characters long; Auth0 allows at most {limit}",
            ),
        )

    return rule


# email: string, `format: email`, required [C] SCHEMA-PAGE; <= 254, local <= 64 [C] profile page.
def _email(value: object) -> Problems:
    if type(value) is not str:
        return not_plain_str(_email, "email", value)
    if EMAIL.fullmatch(value) is not None:
        return OK
    faults = "; ".join(email_faults(value))
    return (Problem("invalid_email", "/email", f"email is not valid: {faults}; fix it"),)


# email_verified: boolean [C] SCHEMA-PAGE.
_email_verified: Final = _boolean("email_verified")


# phone_number: E.164 `^\+[0-9]{1,15}$` [C] profile page, OAS POST /users (not in the schema).
def _phone_number(value: object) -> Problems:
    if type(value) is not str:
        return not_plain_str(_phone_number, "phone_number", value)
    if PHONE.fullmatch(value) is not None:
        return OK
    return (
        Problem(
            "invalid_phone_number",
            "/phone_number",
            "phone_number must be E.164: '+' then 1-15 digits, no spaces (like +12125550001)",
        ),
    )


# phone_verified: boolean [C] SCHEMA-PAGE.
_phone_verified: Final = _boolean("phone_verified")


# user_id: 1-255, `^\S*$` [C] OAS POST /users (the import schema has none; enforced here [I]).
_user_id_length: Final = _bounded_string("user_id", MAX_USER_ID)


def _user_id(value: object) -> Problems:
    if type(value) is not str:
        return not_plain_str(_user_id, "user_id", value)
    length = _user_id_length(value)
    if not length and USER_ID.fullmatch(value) is not None:
        return OK
    if not value:
        message = "user_id is empty; remove the field to let Auth0 generate one"
    elif length:
        return length
    else:
        message = "user_id contains whitespace or a control character; remove them"
    return (Problem("invalid_user_id", "/user_id", message),)


# username: 1-128 letters, digits and @^$!#.+'~_`-, not an email address [C] profile page.
_username_length: Final = _bounded_string("username", MAX_USERNAME)


def _username(value: object) -> Problems:
    if type(value) is not str:
        return not_plain_str(_username, "username", value)
    charset = USERNAME.fullmatch(value) is not None
    if charset and ("@" not in value or EMAIL.fullmatch(value) is None):
        return OK
    length = _username_length(value)
    if length:
        return length
    if not charset:
        message = "username may only contain letters, digits and @ ^ $ ! # . + ' ~ _ ` -"
    else:
        message = "username must not be an email address; put the address in email instead"
    return (Problem("invalid_username", "/username", message),)


# given_name, family_name: 1-150 [C] profile page, OAS POST /users.
_given_name: Final = _bounded_string("given_name", STRING_LIMITS["given_name"])
_family_name: Final = _bounded_string("family_name", STRING_LIMITS["family_name"])
# name, nickname: 1-300 [C] OAS POST /users (the profile page says 150 and 350).
_name: Final = _bounded_string("name", STRING_LIMITS["name"])
_nickname: Final = _bounded_string("nickname", STRING_LIMITS["nickname"])


# picture: OAS POST /users `format: strict-uri` [C]; an absolute http(s) URL here [I].
def _picture(value: object) -> Problems:
    if type(value) is not str:
        return not_plain_str(_picture, "picture", value)
    if URL.fullmatch(value) is not None:
        return OK
    return (
        Problem(
            "invalid_picture",
            "/picture",
            "picture must be an absolute http:// or https:// URL without spaces",
        ),
    )


# blocked: boolean [C] SCHEMA-PAGE.
_blocked: Final = _boolean("blocked")


#: Property name -> its rule, in the table's order.
RULES: Final[dict[str, Rule]] = {
    "email": _email,
    "email_verified": _email_verified,
    "phone_number": _phone_number,
    "phone_verified": _phone_verified,
    "user_id": _user_id,
    "username": _username,
    "given_name": _given_name,
    "family_name": _family_name,
    "name": _name,
    "nickname": _nickname,
    "picture": _picture,
    "blocked": _blocked,
}
