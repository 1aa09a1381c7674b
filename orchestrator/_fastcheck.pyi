FIELDS: dict[str, int]
FORBIDDEN_APP_METADATA_KEYS: tuple[str, ...]
DIGEST_ALGORITHMS: tuple[str, ...]
PBKDF2_DIGESTS: tuple[str, ...]
EMAIL_ASCII_MAX: int
MAX_USER_ID: int
MAX_USERNAME: int
MFA_MAX: int

def certain(user: object, /) -> bool: ...
def uncertain(users: list[object], /) -> list[int]: ...
