/*
 * Validation's per-user loops in C: the fast accept path (is this normalised user certainly
 * valid?) and the user_id normalisation before it.
 *
 * An optional accelerator with the contract of json_schema.py's native schema check, which it
 * replaces where it is built: a user it accepts is valid; a user it does not accept is handed to
 * the Python rules of validation.py, which decide and explain. It never raises and never produces
 * messages. The checks are the schema's (json_schema.py), which are stricter than the Python
 * rules: ASCII-only addresses and names, names of at most half their limit in code points.
 * Shapes it does not know (a custom_password_hash with a password encoding, metadata nested deeper
 * than MAX_DEPTH, an integer beyond 64 bits) are simply not certain. tests/test_fastcheck.py checks
 * that it never accepts what the rules refuse and that its tables equal validation.py's.
 *
 * Why C: the schema check costs ~2-3 us per user through jsonschema-rs, as much as decoding the
 * user; these hand-written checks of the same rules cost ~0.4 us. The user_id loop is as simple
 * as it gets, yet costs ~0.4 us per user as Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DEPTH 32

/* "user_id" and "auth0|" as str (made at import). */
static PyObject *USER_ID_KEY, *PREFIX;

/* ---- limits and vocabularies (equal to validation.py's; exported for the tests) ------------ */

#define EMAIL_ASCII_MAX 65
#define MAX_USER_ID 255
#define MAX_USERNAME 128
#define MFA_MAX 10

typedef enum {
    F_EMAIL,
    F_USER_ID,
    F_USERNAME,
    F_PICTURE,
    F_PHONE,
    F_PASSWORD_HASH,
    F_CUSTOM_PASSWORD_HASH,
    F_MFA_FACTORS,
    F_APP_METADATA,
    F_USER_METADATA,
    F_BOUNDED,
    F_BOOL,
} field_kind;

typedef struct {
    const char *name;
    Py_ssize_t len;
    field_kind kind;
    Py_ssize_t limit; /* F_BOUNDED: the limit in UTF-16 units */
} field;

#define FIELD(name, kind, limit) {name, sizeof(name) - 1, kind, limit}
static const field FIELDS[] = {
    FIELD("email", F_EMAIL, 0),
    FIELD("email_verified", F_BOOL, 0),
    FIELD("phone_number", F_PHONE, 0),
    FIELD("phone_verified", F_BOOL, 0),
    FIELD("user_id", F_USER_ID, 0),
    FIELD("username", F_USERNAME, 0),
    FIELD("given_name", F_BOUNDED, 150),
    FIELD("family_name", F_BOUNDED, 150),
    FIELD("name", F_BOUNDED, 300),
    FIELD("nickname", F_BOUNDED, 300),
    FIELD("picture", F_PICTURE, 0),
    FIELD("blocked", F_BOOL, 0),
    FIELD("password_hash", F_PASSWORD_HASH, 0),
    FIELD("custom_password_hash", F_CUSTOM_PASSWORD_HASH, 0),
    FIELD("app_metadata", F_APP_METADATA, 0),
    FIELD("user_metadata", F_USER_METADATA, 0),
    FIELD("mfa_factors", F_MFA_FACTORS, 0),
};
#define N_FIELDS (sizeof(FIELDS) / sizeof(FIELDS[0]))

/* A word of a vocabulary, its length known at compile time; a table ends with {NULL, 0}. */
typedef struct {
    const char *text;
    Py_ssize_t len;
} word;
#define W(text) {text, sizeof(text) - 1}

static const word FORBIDDEN_APP_METADATA_KEYS[] = {
    W("__tenant"), W("_id"), W("blocked"), W("clientID"), W("created_at"), W("email_verified"),
    W("email"), W("globalClientID"), W("global_client_id"), W("identities"), W("lastIP"),
    W("lastLogin"), W("loginsCount"), W("metadata"), W("multifactor_last_modified"),
    W("multifactor"), W("updated_at"), W("user_id"), {NULL, 0},
};

/* The digest algorithms: their hash is hex or base64 encoded, with an optional salt. */
static const word DIGEST_ALGORITHMS[] = {
    W("md4"), W("md5"), W("sha1"), W("sha256"), W("sha512"), {NULL, 0},
};

static const word HMAC_DIGESTS[] = {
    W("md4"), W("md5"), W("ripemd160"), W("sha1"), W("sha224"), W("sha256"), W("sha384"),
    W("sha512"), W("whirlpool"), {NULL, 0},
};

static const word PBKDF2_DIGESTS[] = {
    W("RSA-MD4"), W("RSA-MD5"), W("RSA-MDC2"), W("RSA-RIPEMD160"), W("RSA-SHA1"),
    W("RSA-SHA1-2"), W("RSA-SHA224"), W("RSA-SHA256"), W("RSA-SHA384"), W("RSA-SHA512"),
    W("md4"), W("md4WithRSAEncryption"), W("md5"), W("md5WithRSAEncryption"), W("mdc2"),
    W("mdc2WithRSA"), W("ripemd"), W("ripemd160"), W("ripemd160WithRSA"), W("rmd160"),
    W("sha1"), W("sha1WithRSAEncryption"), W("sha224"), W("sha224WithRSAEncryption"),
    W("sha256"), W("sha256WithRSAEncryption"), W("sha384"), W("sha384WithRSAEncryption"),
    W("sha512"), W("sha512WithRSAEncryption"), W("ssl3-md5"), W("ssl3-sha1"), W("whirlpool"),
    {NULL, 0},
};

/* ---- strings ------------------------------------------------------------------------------ */

/* An exact str whose length and characters can be read directly. */
static inline int
is_str(PyObject *obj)
{
#if PY_VERSION_HEX < 0x030C0000
    return PyUnicode_CheckExact(obj) && PyUnicode_IS_READY(obj);
#else
    return PyUnicode_CheckExact(obj);
#endif
}

/* The bytes of an exact str that is all ASCII, else NULL. */
static inline const char *
ascii(PyObject *obj, Py_ssize_t *len)
{
    if (!is_str(obj) || !PyUnicode_IS_ASCII(obj)) {
        return NULL;
    }
    *len = PyUnicode_GET_LENGTH(obj);
    return (const char *)PyUnicode_DATA(obj);
}

static inline int
equals(const char *text, Py_ssize_t len, const char *word)
{
    return (size_t)len == strlen(word) && memcmp(text, word, (size_t)len) == 0;
}

static int
one_of(const char *text, Py_ssize_t len, const word *words)
{
    for (; words->text != NULL; words++) {
        if (words->len == len && memcmp(text, words->text, (size_t)len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* An exact ASCII str equal to `word`. */
static int
is_word(PyObject *obj, const char *word)
{
    Py_ssize_t len;
    const char *text = ascii(obj, &len);
    return text != NULL && equals(text, len, word);
}

/* Character classes of ASCII bytes, as bits of CLASSES[byte] (filled at import). */
enum {
    DIGIT = 1 << 0,    /* [0-9] */
    ALNUM = 1 << 1,    /* [A-Za-z0-9] */
    B64 = 1 << 2,      /* [A-Za-z0-9+/]: PHC string fields, LDAP */
    BASE64 = 1 << 3,   /* [A-Za-z0-9+/_-] */
    HEX = 1 << 4,      /* [0-9A-Fa-f] */
    GRAPHIC = 1 << 5,  /* [!-~]: printable ASCII without space */
    LOCAL = 1 << 6,    /* [!#-'*+\-./0-9=?A-Z^_`a-z{|}~]: an email's local part */
    USERNAME = 1 << 7, /* [A-Za-z0-9^$!#.+'~_`-] */
    BCRYPT = 1 << 8,   /* [./A-Za-z0-9] */
    TOTP = 1 << 9,     /* [A-Z2-7]: base32 */
    LABEL = 1 << 10,   /* [A-Za-z0-9-]: a domain label */
    PARAM = 1 << 11,   /* [a-z0-9-]: an argon2 parameter name */
};
static unsigned short CLASSES[256];

static void
fill_classes(void)
{
    for (int c = 0; c < 128; c++) {
        int digit = c >= '0' && c <= '9', lower = c >= 'a' && c <= 'z';
        int alnum = digit || lower || (c >= 'A' && c <= 'Z');
        unsigned short bits = 0;
        bits |= digit ? DIGIT : 0;
        bits |= alnum ? ALNUM : 0;
        bits |= alnum || c == '+' || c == '/' ? B64 : 0;
        bits |= alnum || c == '+' || c == '/' || c == '_' || c == '-' ? BASE64 : 0;
        bits |= digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ? HEX : 0;
        bits |= c >= '!' && c <= '~' ? GRAPHIC : 0;
        bits |= alnum || (c != 0 && strchr("!#$%&'*+-./=?^_`{|}~", c) != NULL) ? LOCAL : 0;
        bits |= alnum || (c != 0 && strchr("^$!#.+'~_`-", c) != NULL) ? USERNAME : 0;
        bits |= alnum || c == '.' || c == '/' ? BCRYPT : 0;
        bits |= (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7') ? TOTP : 0;
        bits |= alnum || c == '-' ? LABEL : 0;
        bits |= digit || lower || c == '-' ? PARAM : 0;
        CLASSES[c] = bits;
    }
}

static inline int
is(unsigned char c, unsigned short class)
{
    return (CLASSES[c] & class) != 0;
}

/* Every byte of text[from:to] is of `class`, and there is at least one. */
static inline int
all_of(const char *text, Py_ssize_t from, Py_ssize_t to, unsigned short class)
{
    if (from >= to) {
        return 0;
    }
    for (Py_ssize_t i = from; i < to; i++) {
        if (!is((unsigned char)text[i], class)) {
            return 0;
        }
    }
    return 1;
}

/* Digits from *at (at least one); *at moves past them. */
static int
digits(const char *text, Py_ssize_t len, Py_ssize_t *at)
{
    Py_ssize_t start = *at;
    while (*at < len && is((unsigned char)text[*at], DIGIT)) {
        (*at)++;
    }
    return *at > start;
}

/* local@domain: local [!#-'*+\-./0-9=?A-Z^_`a-z{|}~]{1,64}; the domain two or more labels of
 * letters and digits with inner hyphens, joined by dots; 65 characters at most. */
static int
email_ok(PyObject *obj)
{
    Py_ssize_t len;
    const char *s = ascii(obj, &len);
    if (s == NULL || len > EMAIL_ASCII_MAX) {
        return 0;
    }
    Py_ssize_t at = 0;
    while (at < len && s[at] != '@') {
        if (!is((unsigned char)s[at], LOCAL)) {
            return 0;
        }
        at++;
    }
    if (at == 0 || at > 64 || at == len) {
        return 0;
    }
    int labels = 0;
    Py_ssize_t i = at + 1;
    for (;;) {
        Py_ssize_t start = i;
        while (i < len && is((unsigned char)s[i], LABEL)) {
            i++;
        }
        if (i == start || s[start] == '-' || s[i - 1] == '-') {
            return 0;
        }
        labels++;
        if (i == len) {
            return labels >= 2;
        }
        if (s[i] != '.') {
            return 0;
        }
        i++;
    }
}

/* [!-~]{1,255} */
static int
user_id_ok(PyObject *obj)
{
    Py_ssize_t len;
    const char *s = ascii(obj, &len);
    return s != NULL && len <= MAX_USER_ID && all_of(s, 0, len, GRAPHIC);
}

static int
username_ok(PyObject *obj)
{
    Py_ssize_t len;
    const char *s = ascii(obj, &len);
    return s != NULL && len <= MAX_USERNAME && all_of(s, 0, len, USERNAME);
}

/* http(s)://, a first host character that is not / ? #, then printable ASCII without space. */
static int
picture_ok(PyObject *obj)
{
    Py_ssize_t len;
    const char *s = ascii(obj, &len);
    if (s == NULL) {
        return 0;
    }
    Py_ssize_t host;
    if (len >= 8 && memcmp(s, "https://", 8) == 0) {
        host = 8;
    }
    else if (len >= 7 && memcmp(s, "http://", 7) == 0) {
        host = 7;
    }
    else {
        return 0;
    }
    if (host == len || s[host] == '/' || s[host] == '?' || s[host] == '#') {
        return 0;
    }
    return all_of(s, host, len, GRAPHIC);
}

/* +, then 1-15 digits (E.164). */
static int
phone_ok(PyObject *obj)
{
    Py_ssize_t len;
    const char *s = ascii(obj, &len);
    return s != NULL && len >= 2 && len <= 16 && s[0] == '+' && all_of(s, 1, len, DIGIT);
}

/* $2a$/$2b$/$2y$, a two-digit cost 04-31, $, then 53 characters of [./A-Za-z0-9]. */
static int
bcrypt_text_ok(const char *s, Py_ssize_t len)
{
    if (len != 60 || s[0] != '$' || s[1] != '2' || (s[2] != 'a' && s[2] != 'b' && s[2] != 'y') ||
        s[3] != '$' || !is((unsigned char)s[4], DIGIT) || !is((unsigned char)s[5], DIGIT) ||
        s[6] != '$') {
        return 0;
    }
    int cost = (s[4] - '0') * 10 + (s[5] - '0');
    return cost >= 4 && cost <= 31 && all_of(s, 7, len, BCRYPT);
}

static int
bcrypt_ok(PyObject *obj)
{
    Py_ssize_t len;
    const char *s = ascii(obj, &len);
    return s != NULL && bcrypt_text_ok(s, len);
}

/* 1..limit UTF-16 units, judged as the schema does: at most half the limit in code points
 * (any string that short fits), or an ASCII string within the limit. */
static int
bounded_ok(PyObject *obj, Py_ssize_t limit)
{
    if (!is_str(obj)) {
        return 0;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(obj);
    return len > 0 && (len <= limit / 2 || (len <= limit && PyUnicode_IS_ASCII(obj)));
}

/* ---- custom_password_hash ----------------------------------------------------------------- */

/* (?:[0-9A-Fa-f]{2})+ */
static int
hex_text_ok(const char *s, Py_ssize_t len)
{
    return len % 2 == 0 && all_of(s, 0, len, HEX);
}

/* [A-Za-z0-9+/_-]+={0,2} */
static int
base64_text_ok(const char *s, Py_ssize_t len)
{
    Py_ssize_t end = len;
    while (end > 0 && len - end < 2 && s[end - 1] == '=') {
        end--;
    }
    return all_of(s, 0, end, BASE64);
}

/* [A-Za-z0-9+/]+ : one '$'-separated field of a PHC string. */
static int
b64_field_ok(const char *s, Py_ssize_t from, Py_ssize_t to)
{
    return all_of(s, from, to, B64);
}

/* Where the next '$' is at or after `from` (len if none). */
static Py_ssize_t
next_dollar(const char *s, Py_ssize_t len, Py_ssize_t from)
{
    const char *found = memchr(s + from, '$', (size_t)(len - from));
    return found == NULL ? len : found - s;
}

/* "$salt$hash" to the end: two B64 fields. */
static int
salt_and_hash_ok(const char *s, Py_ssize_t len, Py_ssize_t at)
{
    if (at >= len || s[at] != '$') {
        return 0;
    }
    Py_ssize_t salt_end = next_dollar(s, len, at + 1);
    return salt_end < len && b64_field_ok(s, at + 1, salt_end) &&
           b64_field_ok(s, salt_end + 1, len);
}

/* [il]=digits */
static int
pbkdf2_param(const char *s, Py_ssize_t len, Py_ssize_t *at)
{
    if (*at + 1 >= len || (s[*at] != 'i' && s[*at] != 'l') || s[*at + 1] != '=') {
        return 0;
    }
    *at += 2;
    return digits(s, len, at);
}

/* $pbkdf2-DIGEST[$[il]=N[,[il]=N]]$B64$B64 */
static int
pbkdf2_text_ok(const char *s, Py_ssize_t len)
{
    if (len < 8 || memcmp(s, "$pbkdf2-", 8) != 0) {
        return 0;
    }
    Py_ssize_t digest_end = next_dollar(s, len, 8);
    if (digest_end == len || !one_of(s + 8, digest_end - 8, PBKDF2_DIGESTS)) {
        return 0;
    }
    Py_ssize_t at = digest_end + 1;
    Py_ssize_t field_end = next_dollar(s, len, at);
    if (memchr(s + at, '=', (size_t)(field_end - at)) != NULL) { /* the parameters */
        if (!pbkdf2_param(s, len, &at)) {
            return 0;
        }
        if (at < len && s[at] == ',') {
            at++;
            if (!pbkdf2_param(s, len, &at)) {
                return 0;
            }
        }
        if (at != field_end) {
            return 0;
        }
        return salt_and_hash_ok(s, len, at);
    }
    return salt_and_hash_ok(s, len, digest_end);
}

/* $argon2(id|i|d)[$v=N]$m=N,t=N,p=N(,[a-z0-9-]+=[^$,]+)*$B64$B64 */
static int
argon2_text_ok(const char *s, Py_ssize_t len)
{
    if (len < 7 || memcmp(s, "$argon2", 7) != 0) {
        return 0;
    }
    Py_ssize_t at = 7;
    if (len - at >= 2 && s[at] == 'i' && s[at + 1] == 'd') {
        at += 2;
    }
    else if (at < len && (s[at] == 'i' || s[at] == 'd')) {
        at += 1;
    }
    else {
        return 0;
    }
    if (len - at >= 3 && memcmp(s + at, "$v=", 3) == 0) {
        at += 3;
        if (!digits(s, len, &at)) {
            return 0;
        }
    }
    static const char *const heads[] = {"$m=", ",t=", ",p="};
    for (int i = 0; i < 3; i++) {
        if (len - at < 3 || memcmp(s + at, heads[i], 3) != 0) {
            return 0;
        }
        at += 3;
        if (!digits(s, len, &at)) {
            return 0;
        }
    }
    while (at < len && s[at] == ',') { /* ,name=value */
        at++;
        Py_ssize_t start = at;
        while (at < len && is((unsigned char)s[at], PARAM)) {
            at++;
        }
        if (at == start || at >= len || s[at] != '=') {
            return 0;
        }
        at++;
        start = at;
        while (at < len && s[at] != '$' && s[at] != ',') {
            at++;
        }
        if (at == start) {
            return 0;
        }
    }
    return salt_and_hash_ok(s, len, at);
}

/* 'md5' with an optional leading 's', any case. */
static int
ldap_md5(const char *s, Py_ssize_t len)
{
    if (len == 4 && (s[0] | 0x20) == 's') {
        s++, len--;
    }
    return len == 3 && (s[0] | 0x20) == 'm' && (s[1] | 0x20) == 'd' && s[2] == '5';
}

/* 'sha' then digits, with an optional leading 's', any case. */
static int
ldap_sha(const char *s, Py_ssize_t len, int may_skip)
{
    if (len >= 3 && (s[0] | 0x20) == 's' && (s[1] | 0x20) == 'h' && (s[2] | 0x20) == 'a') {
        for (Py_ssize_t i = 3; i < len; i++) {
            if (!is((unsigned char)s[i], DIGIT)) {
                return 0;
            }
        }
        return 1;
    }
    return may_skip && len >= 1 && (s[0] | 0x20) == 's' && ldap_sha(s + 1, len - 1, 0);
}

/* {SCHEME}[A-Za-z0-9+/]+={0,2}, SCHEME one of [S]MD5, [S]SHA[digits] in any case. */
static int
ldap_text_ok(const char *s, Py_ssize_t len)
{
    if (len < 2 || s[0] != '{') {
        return 0;
    }
    const char *close = memchr(s, '}', (size_t)len);
    if (close == NULL) {
        return 0;
    }
    Py_ssize_t scheme_len = close - s - 1;
    if (!ldap_md5(s + 1, scheme_len) && !ldap_sha(s + 1, scheme_len, 1)) {
        return 0;
    }
    Py_ssize_t end = len;
    while (end > 0 && len - end < 2 && s[end - 1] == '=') {
        end--;
    }
    return b64_field_ok(s, close - s + 1, end);
}

/* Fill values[i] with the item of the exact dict `obj` named names[i] (NULL when absent); 0 if
 * `obj` is no exact dict or has a key outside `names` (a word table; a slot in `values` each). */
static int
items_named(PyObject *obj, const word *names, PyObject **values)
{
    if (!PyDict_CheckExact(obj)) {
        return 0;
    }
    for (int i = 0; names[i].text != NULL; i++) {
        values[i] = NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(obj, &pos, &key, &value)) {
        Py_ssize_t len;
        const char *text = ascii(key, &len);
        int i = 0;
        while (names[i].text != NULL && (text == NULL || names[i].len != len ||
                                         memcmp(text, names[i].text, (size_t)len) != 0)) {
            i++;
        }
        if (names[i].text == NULL) {
            return 0;
        }
        values[i] = value;
    }
    return 1;
}

/* A non-empty string `value` in `encoding` (NULL: none): hex or base64 are checked; utf8 or none
 * are fine only when `allow_plain`. */
static int
encoded_value_ok(PyObject *value, PyObject *encoding, int allow_plain)
{
    if (value == NULL || !is_str(value) || PyUnicode_GET_LENGTH(value) == 0) {
        return 0;
    }
    if (encoding == NULL || is_word(encoding, "utf8")) {
        return allow_plain;
    }
    Py_ssize_t len;
    const char *text = ascii(value, &len);
    if (text == NULL) {
        return 0;
    }
    if (is_word(encoding, "hex")) {
        return hex_text_ok(text, len);
    }
    if (is_word(encoding, "base64")) {
        return base64_text_ok(text, len);
    }
    return 0;
}

/* {value, encoding?} (a digest hash: encoded in hex or base64; `allow_plain`: also utf8/none). */
static int
encoded_ok(PyObject *obj, int allow_plain)
{
    static const word keys[] = {W("value"), W("encoding"), {NULL, 0}};
    PyObject *items[2];
    return items_named(obj, keys, items) && encoded_value_ok(items[0], items[1], allow_plain);
}

/* {value, encoding?, position?}, position prefix or suffix. */
static int
salt_ok(PyObject *obj)
{
    static const word keys[] = {W("value"), W("encoding"), W("position"), {NULL, 0}};
    PyObject *items[3];
    if (!items_named(obj, keys, items)) {
        return 0;
    }
    PyObject *position = items[2];
    if (position != NULL && !is_word(position, "prefix") && !is_word(position, "suffix")) {
        return 0;
    }
    return encoded_value_ok(items[0], items[1], 1);
}

/* hmac's hash: {value, encoding, digest, key}, the value hex or base64, key {value, encoding?}. */
static int
hmac_hash_ok(PyObject *obj)
{
    static const word keys[] = {W("value"), W("encoding"), W("digest"), W("key"), {NULL, 0}};
    PyObject *items[4];
    if (!items_named(obj, keys, items) || items[2] == NULL || items[3] == NULL) {
        return 0;
    }
    Py_ssize_t len;
    const char *digest = ascii(items[2], &len);
    return digest != NULL && one_of(digest, len, HMAC_DIGESTS) &&
           encoded_value_ok(items[0], items[1], 0) && encoded_ok(items[3], 1);
}

/* An exact int in 1..2^62 (`power_of_two`: a power of two greater than one). */
static int
count_ok(PyObject *obj, int power_of_two)
{
    if (obj == NULL) {
        return 1; /* optional */
    }
    if (!PyLong_CheckExact(obj)) {
        return 0;
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow != 0 || n < 1 || n > (1LL << 62)) {
        return 0;
    }
    return !power_of_two || (n > 1 && (n & (n - 1)) == 0);
}

/* The hash object of a PHC-style algorithm: {value[, encoding: utf8]}, value checked by `test`. */
static int
utf8_hash_ok(PyObject *hash, int (*test)(const char *, Py_ssize_t))
{
    static const word keys[] = {W("value"), W("encoding"), {NULL, 0}};
    PyObject *items[2];
    if (!items_named(hash, keys, items)) {
        return 0;
    }
    PyObject *value = items[0], *encoding = items[1];
    if (value == NULL || (encoding != NULL && !is_word(encoding, "utf8"))) {
        return 0;
    }
    Py_ssize_t len;
    const char *text = ascii(value, &len);
    return text != NULL && test(text, len);
}

/* Every algorithm's usual shape: {algorithm, hash[, salt]}, scrypt with its numbers. A password
 * encoding, or anything the schema allows only for another algorithm: not certain. */
static int
custom_password_hash_ok(PyObject *obj)
{
    static const word keys[] = {
        W("algorithm"), W("hash"), W("salt"), W("keylen"), W("cost"), W("blockSize"),
        W("parallelization"), {NULL, 0},
    };
    PyObject *items[7];
    if (!items_named(obj, keys, items)) {
        return 0;
    }
    PyObject *algorithm = items[0], *hash = items[1], *salt = items[2];
    int has_numbers = items[3] != NULL || items[4] != NULL || items[5] != NULL || items[6] != NULL;
    Py_ssize_t len;
    const char *name = algorithm == NULL ? NULL : ascii(algorithm, &len);
    if (name == NULL || hash == NULL) {
        return 0;
    }
    if (equals(name, len, "scrypt")) {
        return items[3] != NULL && count_ok(items[3], 0) && count_ok(items[4], 1) &&
               count_ok(items[5], 0) && count_ok(items[6], 0) && encoded_ok(hash, 0) &&
               (salt == NULL || salt_ok(salt));
    }
    if (has_numbers) {
        return 0;
    }
    if (one_of(name, len, DIGEST_ALGORITHMS)) {
        return encoded_ok(hash, 0) && (salt == NULL || salt_ok(salt));
    }
    if (equals(name, len, "hmac")) {
        return hmac_hash_ok(hash) && (salt == NULL || salt_ok(salt));
    }
    if (equals(name, len, "bcrypt")) {
        return utf8_hash_ok(hash, bcrypt_text_ok) && (salt == NULL || salt_ok(salt));
    }
    if (salt != NULL) {
        return 0;
    }
    if (equals(name, len, "pbkdf2")) {
        return utf8_hash_ok(hash, pbkdf2_text_ok);
    }
    if (equals(name, len, "argon2")) {
        return utf8_hash_ok(hash, argon2_text_ok);
    }
    if (equals(name, len, "ldap")) {
        return utf8_hash_ok(hash, ldap_text_ok);
    }
    return 0;
}

/* ---- mfa_factors -------------------------------------------------------------------------- */

/* The one item of an exact dict of one item (0 if it is not that). */
static int
only_item(PyObject *obj, PyObject **key, PyObject **value)
{
    Py_ssize_t pos = 0;
    return PyDict_CheckExact(obj) && PyDict_GET_SIZE(obj) == 1 &&
           PyDict_Next(obj, &pos, key, value);
}

static int
totp_secret_ok(PyObject *obj)
{
    Py_ssize_t len;
    const char *s = ascii(obj, &len);
    return s != NULL && all_of(s, 0, len, TOTP);
}

/* 1-10 factors, each {"totp": {"secret"}} or {"phone"|"email": {"value"}}. */
static int
mfa_factors_ok(PyObject *obj)
{
    if (!PyList_CheckExact(obj)) {
        return 0;
    }
    Py_ssize_t n = PyList_GET_SIZE(obj);
    if (n < 1 || n > MFA_MAX) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *kind, *inner, *field, *value;
        if (!only_item(PyList_GET_ITEM(obj, i), &kind, &inner) ||
            !only_item(inner, &field, &value)) {
            return 0;
        }
        int ok;
        if (is_word(kind, "totp")) {
            ok = is_word(field, "secret") && totp_secret_ok(value);
        }
        else if (is_word(kind, "phone")) {
            ok = is_word(field, "value") && phone_ok(value);
        }
        else if (is_word(kind, "email")) {
            ok = is_word(field, "value") && email_ok(value);
        }
        else {
            ok = 0;
        }
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* ---- metadata ----------------------------------------------------------------------------- */

/* A str key without '.' or '$'. */
static int
metadata_key_ok(PyObject *key)
{
    if (!is_str(key)) {
        return 0;
    }
    Py_ssize_t len;
    const char *s = ascii(key, &len);
    if (s != NULL) {
        for (Py_ssize_t i = 0; i < len; i++) {
            if (s[i] == '.' || s[i] == '$') {
                return 0;
            }
        }
        return 1;
    }
    len = PyUnicode_GET_LENGTH(key);
    Py_ssize_t dot = PyUnicode_FindChar(key, '.', 0, len, 1);
    Py_ssize_t dollar = dot == -1 ? PyUnicode_FindChar(key, '$', 0, len, 1) : -2;
    if (dot == -2 || dollar == -2) {
        PyErr_Clear();
        return 0;
    }
    return dot == -1 && dollar == -1;
}

static int metadata_value_ok(PyObject *obj, int depth);

/* Every key without '.' or '$' and none of `reserved` (NULL: none), every value fine. */
static int
metadata_object_ok(PyObject *obj, int depth, const word *reserved)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(obj, &pos, &key, &value)) {
        if (!metadata_key_ok(key) || !metadata_value_ok(value, depth)) {
            return 0;
        }
        if (reserved != NULL) {
            Py_ssize_t len;
            const char *name = ascii(key, &len);
            if (name != NULL && one_of(name, len, reserved)) {
                return 0;
            }
        }
    }
    return 1;
}

/* Any JSON value orjson can encode again, every key at any depth without '.' or '$'. */
static int
metadata_value_ok(PyObject *obj, int depth)
{
    if (PyUnicode_CheckExact(obj) || obj == Py_None || obj == Py_True || obj == Py_False ||
        PyFloat_CheckExact(obj)) {
        return 1;
    }
    if (PyLong_CheckExact(obj)) {
        int overflow;
        (void)PyLong_AsLongLongAndOverflow(obj, &overflow);
        return overflow == 0; /* beyond 64 bits: not certain */
    }
    if (depth >= MAX_DEPTH) {
        return 0;
    }
    if (PyDict_CheckExact(obj)) {
        return metadata_object_ok(obj, depth + 1, NULL);
    }
    if (PyList_CheckExact(obj)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(obj); i++) {
            if (!metadata_value_ok(PyList_GET_ITEM(obj, i), depth + 1)) {
                return 0;
            }
        }
        return 1;
    }
    return 0;
}

/* ---- the user ----------------------------------------------------------------------------- */

static const field *
field_named(PyObject *key)
{
    Py_ssize_t len;
    const char *name = ascii(key, &len);
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < N_FIELDS; i++) {
        if (FIELDS[i].len == len && memcmp(name, FIELDS[i].name, (size_t)len) == 0) {
            return &FIELDS[i];
        }
    }
    return NULL;
}

static int
value_ok(const field *f, PyObject *value)
{
    switch (f->kind) {
    case F_EMAIL: return email_ok(value);
    case F_USER_ID: return user_id_ok(value);
    case F_USERNAME: return username_ok(value);
    case F_PICTURE: return picture_ok(value);
    case F_PHONE: return phone_ok(value);
    case F_PASSWORD_HASH: return bcrypt_ok(value);
    case F_CUSTOM_PASSWORD_HASH: return custom_password_hash_ok(value);
    case F_MFA_FACTORS: return mfa_factors_ok(value);
    case F_APP_METADATA:
        return PyDict_CheckExact(value) &&
               metadata_object_ok(value, 1, FORBIDDEN_APP_METADATA_KEYS);
    case F_USER_METADATA: return PyDict_CheckExact(value) && metadata_object_ok(value, 1, NULL);
    case F_BOUNDED: return bounded_ok(value, f->limit);
    case F_BOOL: return value == Py_True || value == Py_False;
    }
    return 0;
}

/* 1: certainly valid; 0: ask the other tiers. */
static int
user_ok(PyObject *user)
{
    if (!PyDict_CheckExact(user)) {
        return 0;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int has_email = 0, password_fields = 0;
    while (PyDict_Next(user, &pos, &key, &value)) {
        const field *f = field_named(key);
        if (f == NULL || !value_ok(f, value)) {
            return 0;
        }
        has_email |= f->kind == F_EMAIL;
        password_fields += f->kind == F_PASSWORD_HASH || f->kind == F_CUSTOM_PASSWORD_HASH;
    }
    return has_email && password_fields < 2;
}

PyDoc_STRVAR(certain_doc,
"certain(user, /) -> bool\n"
"\n"
"Whether the normalised `user` is certainly valid (False: ask the slower checks). Never raises.");

static PyObject *
certain(PyObject *module, PyObject *user)
{
    return PyBool_FromLong(user_ok(user));
}

PyDoc_STRVAR(uncertain_doc,
"uncertain(users, /) -> list[int]\n"
"\n"
"The indexes of the users of the list `users` that are not certainly valid (usually none).");

static PyObject *
uncertain(PyObject *module, PyObject *users)
{
    if (!PyList_Check(users)) {
        PyErr_SetString(PyExc_TypeError, "users must be a list");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(users); i++) {
        if (user_ok(PyList_GET_ITEM(users, i))) {
            continue;
        }
        PyObject *index = PyLong_FromSsize_t(i);
        if (index == NULL || PyList_Append(out, index) < 0) {
            Py_XDECREF(index);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(index);
    }
    return out;
}

/* ---- normalisation ------------------------------------------------------------------------ */

#define USER_ID_PREFIX "auth0|"

PyDoc_STRVAR(strip_user_id_prefix_doc,
"strip_user_id_prefix(users, /) -> None\n"
"\n"
"Remove a leading 'auth0|' from the user_id of each dict of the list `users` (in place).");

static PyObject *
strip_user_id_prefix(PyObject *module, PyObject *users)
{
    if (!PyList_Check(users)) {
        PyErr_SetString(PyExc_TypeError, "users must be a list");
        return NULL;
    }
    const Py_ssize_t prefix_len = sizeof(USER_ID_PREFIX) - 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(users); i++) {
        PyObject *user = PyList_GET_ITEM(users, i);
        if (!PyDict_CheckExact(user)) {
            continue;
        }
        PyObject *user_id = PyDict_GetItemWithError(user, USER_ID_KEY); /* borrowed */
        if (user_id == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            continue;
        }
        if (!PyUnicode_CheckExact(user_id)) {
            continue;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(user_id);
        if (len < prefix_len || PyUnicode_Tailmatch(user_id, PREFIX, 0, prefix_len, -1) != 1) {
            continue;
        }
        PyObject *rest = PyUnicode_Substring(user_id, prefix_len, len);
        if (rest == NULL || PyDict_SetItem(user, USER_ID_KEY, rest) < 0) {
            Py_XDECREF(rest);
            return NULL;
        }
        Py_DECREF(rest);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"certain", certain, METH_O, certain_doc},
    {"uncertain", uncertain, METH_O, uncertain_doc},
    {"strip_user_id_prefix", strip_user_id_prefix, METH_O, strip_user_id_prefix_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "orchestrator._fastcheck",
    "Validation's per-user loops in C (optional: validation.py and json_schema.py do the same).",
    -1,
    methods,
};

/* The words of a table, as a tuple of str. */
static PyObject *
words_tuple(const word *words)
{
    Py_ssize_t n = 0;
    while (words[n].text != NULL) {
        n++;
    }
    PyObject *out = PyTuple_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *text = PyUnicode_FromStringAndSize(words[i].text, words[i].len);
        if (text == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, i, text);
    }
    return out;
}

PyMODINIT_FUNC
PyInit__fastcheck(void)
{
    fill_classes();
    USER_ID_KEY = PyUnicode_InternFromString("user_id");
    PREFIX = PyUnicode_InternFromString(USER_ID_PREFIX);
    if (USER_ID_KEY == NULL || PREFIX == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    /* The tables, for tests/test_fastcheck.py to compare with validation.py's. */
    PyObject *fields = PyDict_New();
    for (size_t i = 0; fields != NULL && i < N_FIELDS; i++) {
        PyObject *limit = PyLong_FromSsize_t(FIELDS[i].limit);
        if (limit == NULL || PyDict_SetItemString(fields, FIELDS[i].name, limit) < 0) {
            Py_XDECREF(limit);
            Py_CLEAR(fields);
            break;
        }
        Py_DECREF(limit);
    }
    if (PyModule_AddObject(m, "FIELDS", fields) < 0 ||
        PyModule_AddObject(m, "FORBIDDEN_APP_METADATA_KEYS",
                           words_tuple(FORBIDDEN_APP_METADATA_KEYS)) < 0 ||
        PyModule_AddObject(m, "DIGEST_ALGORITHMS", words_tuple(DIGEST_ALGORITHMS)) < 0 ||
        PyModule_AddObject(m, "HMAC_DIGESTS", words_tuple(HMAC_DIGESTS)) < 0 ||
        PyModule_AddObject(m, "PBKDF2_DIGESTS", words_tuple(PBKDF2_DIGESTS)) < 0 ||
        PyModule_AddIntConstant(m, "EMAIL_ASCII_MAX", EMAIL_ASCII_MAX) < 0 ||
        PyModule_AddIntConstant(m, "MAX_USER_ID", MAX_USER_ID) < 0 ||
        PyModule_AddIntConstant(m, "MAX_USERNAME", MAX_USERNAME) < 0 ||
        PyModule_AddIntConstant(m, "MFA_MAX", MFA_MAX) < 0 ||
        PyModule_AddStringConstant(m, "USER_ID_PREFIX", USER_ID_PREFIX) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
