FIELDS: dict[str, int]
FORBIDDEN_APP_METADATA_KEYS: tuple[str, ...]
DIGEST_ALGORITHMS: tuple[str, ...]
PBKDF2_DIGESTS: tuple[str, ...]
EMAIL_ASCII_MAX: int
MAX_USER_ID: int
MAX_USERNAME: int
MFA_MAX: int
USER_ID_PREFIX: str

def certain(user: object, /) -> bool: ...
def uncertain(users: list[object], /) -> list[int]: ...
def strip_user_id_prefix(users: list[object], /) -> None: ...
