/*
 * dac.events._linescan: the native half of dac/events/bulk_check.py.
 *
 * full_path_lines, the scanner: its specification is the reference in
 * tests/fuzz/test_fuzz_linescan.py, which holds the two to the same answers on mutated real
 * lines. A line needs the full path when it
 *   - holds one of the needles,
 *   - holds a backslash followed by 'u' that does not begin one of the harmless escapes,
 *   - holds more than max_opening bytes '{' and '[' (the reader's nesting pre-check),
 *   - is not valid UTF-8 (as orjson refuses it: no overlong forms, no surrogates, nothing
 *     above U+10FFFF), or
 *   - holds, outside strings, a number whose integer part has 155 or more digits or whose
 *     exponent has 3 or more: the numbers that may overflow a double, which orjson refuses.
 * quiet_block runs over a block of lines: on each, the scanner (but for numbers, which its
 * validator reads anyway), then it validates the line as JSON and reads the members
 * k8s_audit._validate checks (below), and the two timestamps when they are in the API server's
 * own form (utc_micros). It hands back the lines that take the full path and, between them,
 * each run of the others as a count and a time span.
 *
 * Every read is bounded by the line's length; nothing is allocated but the results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

#define INTEGER_DIGITS 155
#define EXPONENT_DIGITS 3
#define MAX_DEPTH 512 /* far above max_opening; bounds the recursion whatever it is */

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0 when it is invalid. */
static Py_ssize_t utf8_length(const unsigned char *s, Py_ssize_t left) {
    unsigned char c = s[0];
    Py_ssize_t length;
    unsigned char low = 0x80, high = 0xBF; /* bounds of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3;
        if (c == 0xE0) low = 0xA0;       /* no overlong forms */
        else if (c == 0xED) high = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4;
        if (c == 0xF0) low = 0x90;       /* no overlong forms */
        else if (c == 0xF4) high = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (left < length || s[1] < low || s[1] > high) return 0;
    for (Py_ssize_t k = 2; k < length; k++) {
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    }
    return length;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Whether the number token at s[0..] (s[0] is '-' or a digit) may overflow a double; *end is
 * set to where the token stops. */
static int large_number(const unsigned char *s, Py_ssize_t n, Py_ssize_t *end) {
    Py_ssize_t i = 0, digits = 0, exponent = 0;
    if (s[i] == '-') i++;
    while (i < n && is_digit(s[i])) { i++; digits++; }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        while (i < n && is_digit(s[i])) { i++; exponent++; }
    }
    *end = i;
    return digits >= INTEGER_DIGITS || exponent >= EXPONENT_DIGITS;
}

/* Whether the \u at s begins one of the harmless escapes (each 6 bytes). */
static int harmless_at(const unsigned char *s, Py_ssize_t left, PyObject *harmless) {
    if (left < 6) return 0;
    Py_ssize_t count = PyTuple_GET_SIZE(harmless);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *escape = PyTuple_GET_ITEM(harmless, k);
        if (PyBytes_GET_SIZE(escape) == 6 && memcmp(s, PyBytes_AS_STRING(escape), 6) == 0) return 1;
    }
    return 0;
}

/* Whether any byte of s is 0x80 or above (a loop the compiler vectorises). */
static int has_non_ascii(const unsigned char *s, Py_ssize_t n) {
    unsigned char any = 0;
    for (Py_ssize_t i = 0; i < n; i++) any |= s[i];
    return any >= 0x80;
}

/* How many bytes of s are c, counted up to limit + 1 (memchr: a real line has a few dozen). */
static Py_ssize_t count_byte(const unsigned char *s, Py_ssize_t n, unsigned char c, Py_ssize_t limit) {
    Py_ssize_t count = 0;
    const unsigned char *end = s + n;
    for (const unsigned char *p = memchr(s, c, (size_t)n); p != NULL && count <= limit;
         p = memchr(p + 1, c, (size_t)(end - p - 1))) {
        count++;
        if (p + 1 >= end) break;
    }
    return count;
}

static int valid_utf8(const unsigned char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < 0x80) continue;
        Py_ssize_t length = utf8_length(s + i, n - i);
        if (length == 0) return 0;
        i += length - 1;
    }
    return 1;
}

/* Where the string that opens at s[start] ('"') closes: the next '"' not preceded by an odd
 * number of backslashes after the opening one; n when it does not close. */
static Py_ssize_t string_end(const unsigned char *s, Py_ssize_t n, Py_ssize_t start) {
    Py_ssize_t from = start + 1;
    while (from < n) {
        const unsigned char *quote = memchr(s + from, '"', (size_t)(n - from));
        if (quote == NULL) return n;
        Py_ssize_t at = quote - s, backslashes = 0;
        while (at - 1 - backslashes > start && s[at - 1 - backslashes] == '\\') backslashes++;
        if (backslashes % 2 == 0) return at;
        from = at + 1;
    }
    return n;
}

/* The scanner's verdict; numbers: look for numbers that may overflow (quiet_events leaves that
 * to its validator, which reads every number anyway). */
static int needs_full_path(const unsigned char *s, Py_ssize_t n, PyObject *needles, PyObject *harmless,
                           Py_ssize_t max_opening, int numbers) {
    Py_ssize_t count = PyTuple_GET_SIZE(needles);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *needle = PyTuple_GET_ITEM(needles, k);
        if (memmem(s, (size_t)n, PyBytes_AS_STRING(needle), (size_t)PyBytes_GET_SIZE(needle)) != NULL) return 1;
    }
    /* every backslash followed by 'u', wherever it is, must begin a harmless escape */
    const unsigned char *end = s + n;
    for (const unsigned char *p = memchr(s, '\\', (size_t)n); p != NULL && p + 1 < end;
         p = memchr(p + 1, '\\', (size_t)(end - p - 1))) {
        if (p[1] == 'u' && !harmless_at(p, end - p, harmless)) return 1;
    }
    Py_ssize_t braces = count_byte(s, n, '{', max_opening);
    if (braces + count_byte(s, n, '[', max_opening - braces) > max_opening) return 1;
    if (has_non_ascii(s, n) && !valid_utf8(s, n)) return 1;
    if (!numbers) return 0;
    /* numbers, outside strings (strings are skipped whole) */
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"') {
            i = string_end(s, n, i);
        } else if (c == '-' || is_digit(c)) {
            Py_ssize_t stop;
            if (large_number(s + i, n - i, &stop)) return 1;
            i += stop - 1;
        }
    }
    return 0;
}

static int valid_arguments(PyObject *needles, PyObject *harmless) {
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(needles); k++) {
        PyObject *needle = PyTuple_GET_ITEM(needles, k);
        if (!PyBytes_Check(needle) || PyBytes_GET_SIZE(needle) == 0) {
            PyErr_SetString(PyExc_TypeError, "needles must be non-empty bytes");
            return 0;
        }
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(harmless); k++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(harmless, k))) {
            PyErr_SetString(PyExc_TypeError, "harmless escapes must be bytes");
            return 0;
        }
    }
    return 1;
}

static int append_index(PyObject *list, Py_ssize_t i) {
    PyObject *index = PyLong_FromSsize_t(i);
    if (index == NULL) return -1;
    int result = PyList_Append(list, index);
    Py_DECREF(index);
    return result;
}

static PyObject *full_path_lines(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *lines, *needles, *harmless;
    Py_ssize_t max_opening;
    if (!PyArg_ParseTuple(args, "O!O!O!n", &PyList_Type, &lines, &PyTuple_Type, &needles, &PyTuple_Type,
                          &harmless, &max_opening)) {
        return NULL;
    }
    if (!valid_arguments(needles, harmless)) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(lines); i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyBytes_Check(line)) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_TypeError, "lines must be bytes");
            return NULL;
        }
        const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(line);
        if (needs_full_path(s, PyBytes_GET_SIZE(line), needles, harmless, max_opening, 1) && append_index(out, i) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* ---- the audit Event check: JSON validation and the members k8s_audit._validate reads ---- */

typedef struct {
    const unsigned char *s;
    Py_ssize_t n, i;
} Reader;

typedef struct {
    Py_ssize_t start, end;
} Span;

/* What the last occurrence of each checked member holds (a repeated member: the last counts,
 * as in orjson's dictionary). */
typedef struct {
    int kind, api_version, audit_id, received, stage; /* 1: a valid value */
    int user, objects;                                 /* 1: absent, null or valid */
    int object_member[5];
    Span received_at, stage_at;
} Members;

static const char *const OBJECT_MEMBERS[5] = {"impersonatedUser", "objectRef", "responseStatus", "annotations",
                                              "labels"};

/* Bytes that stand for themselves inside a JSON string: no control character, quote or
 * backslash (bytes above 0x7F were checked as UTF-8 beforehand). */
static unsigned char plain_in_string[256];

static void fill_tables(void) {
    for (int c = 0; c < 256; c++) plain_in_string[c] = c >= 0x20 && c != '"' && c != '\\';
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether a byte of the 8 in word is zero (the classic test: exact, no false positives). */
static uint64_t zero_byte(uint64_t word) { return (word - ONES) & ~word & HIGHS; }

/* Where the run of plain_in_string bytes starting at s[i] ends: 8 bytes at a time, then byte by
 * byte in the word that holds the end. */
static Py_ssize_t plain_run_end(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) {
#if defined(__SSE2__) && defined(__GNUC__)
    /* 16 bytes at a time where SSE2 is there (every x86-64): a byte stops the run when it is a
     * quote, a backslash, or at most 0x1F (unsigned: max(byte, 0x1F) is 0x1F) */
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), control = _mm_set1_epi8(0x1F);
    while (i + 16 <= n) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i stops = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(bytes, quote), _mm_cmpeq_epi8(bytes, backslash)),
                                     _mm_cmpeq_epi8(_mm_max_epu8(bytes, control), control));
        int mask = _mm_movemask_epi8(stops);
        if (mask) return i + __builtin_ctz((unsigned)mask);
        i += 16;
    }
#endif
    while (i + 8 <= n) {
        uint64_t word;
        memcpy(&word, s + i, 8);
        /* bytes below 0x20 (of those below 0x80: the others are plain), quotes, backslashes */
        uint64_t stops = ((word - 0x20 * ONES) & ~word & HIGHS) | zero_byte(word ^ ('"' * ONES)) |
                         zero_byte(word ^ ('\\' * ONES));
        if (stops) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return i + (__builtin_ctzll(stops) >> 3); /* the lowest flagged byte is exact */
#else
            break;
#endif
        }
        i += 8;
    }
    while (i < n && plain_in_string[s[i]]) i++;
    return i;
}

static void skip_space(Reader *r) {
    while (r->i < r->n) {
        unsigned char c = r->s[r->i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return;
        r->i++;
    }
}

static int is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* The string opening at r->i: its raw content in *at, *escaped when it holds an escape. */
static int read_string(Reader *r, Span *at, int *escaped) {
    const unsigned char *s = r->s;
    Py_ssize_t i = r->i + 1, n = r->n;
    *escaped = 0;
    at->start = i;
    for (;;) {
        i = plain_run_end(s, i, n);
        if (i >= n) return 0;
        if (s[i] == '"') {
            at->end = i;
            r->i = i + 1;
            return 1;
        }
        if (s[i] != '\\' || i + 1 >= n) return 0; /* a control character, or the line ends */
        *escaped = 1;
        unsigned char e = s[i + 1];
        if (e == 'u') {
            if (i + 6 > n || !is_hex(s[i + 2]) || !is_hex(s[i + 3]) || !is_hex(s[i + 4]) || !is_hex(s[i + 5])) return 0;
            i += 6;
        } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
            i += 2;
        } else {
            return 0;
        }
    }
}

/* A JSON number (RFC 8259) that cannot overflow a double. */
static int read_number(Reader *r) {
    const unsigned char *s = r->s;
    Py_ssize_t i = r->i, n = r->n;
    if (s[i] == '-') i++;
    if (i >= n || !is_digit(s[i])) return 0;
    Py_ssize_t start = i;
    if (s[i] == '0') i++;
    else while (i < n && is_digit(s[i])) i++;
    if (i - start >= INTEGER_DIGITS) return 0;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) return 0;
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        Py_ssize_t exponent = i;
        if (i >= n || !is_digit(s[i])) return 0;
        while (i < n && is_digit(s[i])) i++;
        if (i - exponent >= EXPONENT_DIGITS) return 0;
    }
    r->i = i;
    return 1;
}

static int read_literal(Reader *r, const char *word, Py_ssize_t length) {
    if (r->n - r->i < length || memcmp(r->s + r->i, word, (size_t)length) != 0) return 0;
    r->i += length;
    return 1;
}

enum { OTHER, STRING, OBJECT, NULL_VALUE };

static int read_value(Reader *r, int depth, int *kind);

/* The members of the object opening at r->i; each key and its value go to on_member when given
 * (it reads the value itself), else the value is read and dropped. */
typedef int (*MemberReader)(Reader *r, Span key, int depth, void *state);

static int read_object(Reader *r, int depth, MemberReader on_member, void *state) {
    if (depth > MAX_DEPTH) return 0;
    r->i++; /* '{' */
    skip_space(r);
    if (r->i < r->n && r->s[r->i] == '}') {
        r->i++;
        return 1;
    }
    for (;;) {
        if (r->i >= r->n || r->s[r->i] != '"') return 0;
        Span key;
        int escaped, kind;
        if (!read_string(r, &key, &escaped)) return 0;
        skip_space(r);
        if (r->i >= r->n || r->s[r->i] != ':') return 0;
        r->i++;
        skip_space(r);
        if (on_member != NULL && !escaped) { /* no checked member's name needs an escape */
            if (!on_member(r, key, depth, state)) return 0;
        } else if (!read_value(r, depth + 1, &kind)) {
            return 0;
        }
        skip_space(r);
        if (r->i >= r->n) return 0;
        if (r->s[r->i] == '}') {
            r->i++;
            return 1;
        }
        if (r->s[r->i] != ',') return 0;
        r->i++;
        skip_space(r);
    }
}

static int read_array(Reader *r, int depth) {
    if (depth > MAX_DEPTH) return 0;
    r->i++; /* '[' */
    skip_space(r);
    if (r->i < r->n && r->s[r->i] == ']') {
        r->i++;
        return 1;
    }
    for (;;) {
        int kind;
        if (!read_value(r, depth + 1, &kind)) return 0;
        skip_space(r);
        if (r->i >= r->n) return 0;
        if (r->s[r->i] == ']') {
            r->i++;
            return 1;
        }
        if (r->s[r->i] != ',') return 0;
        r->i++;
        skip_space(r);
    }
}

/* Any JSON value at r->i; *kind says which of OTHER, STRING, OBJECT, NULL_VALUE it was. */
static int read_value(Reader *r, int depth, int *kind) {
    if (r->i >= r->n) return 0;
    unsigned char c = r->s[r->i];
    *kind = OTHER;
    if (c == '"') {
        Span at;
        int escaped;
        *kind = STRING;
        return read_string(r, &at, &escaped);
    }
    if (c == '{') {
        *kind = OBJECT;
        return read_object(r, depth, NULL, NULL);
    }
    if (c == '[') return read_array(r, depth);
    if (c == 't') return read_literal(r, "true", 4);
    if (c == 'f') return read_literal(r, "false", 5);
    if (c == 'n') {
        *kind = NULL_VALUE;
        return read_literal(r, "null", 4);
    }
    if (c == '-' || is_digit(c)) return read_number(r);
    return 0;
}

static int key_is(Reader *r, Span key, const char *name) {
    Py_ssize_t length = (Py_ssize_t)strlen(name);
    return key.end - key.start == length && memcmp(r->s + key.start, name, (size_t)length) == 0;
}

static int span_is(Reader *r, Span at, const char *text) { return key_is(r, at, text); }

/* A string member: *ok when it is a string, unescaped unless escapes are allowed; its span. */
static int read_string_member(Reader *r, int depth, int *ok, Span *at, int escapes_allowed) {
    if (r->i < r->n && r->s[r->i] == '"') {
        int escaped;
        if (!read_string(r, at, &escaped)) return 0;
        *ok = escapes_allowed || !escaped;
        return 1;
    }
    int kind;
    *ok = 0;
    return read_value(r, depth + 1, &kind);
}

typedef struct {
    int username, uid; /* 1: absent, null or a string */
} UserMembers;

static int read_user_member(Reader *r, Span key, int depth, void *state) {
    UserMembers *user = state;
    int kind;
    if (!read_value(r, depth + 1, &kind)) return 0;
    int fine = kind == STRING || kind == NULL_VALUE;
    if (key_is(r, key, "username")) user->username = fine;
    else if (key_is(r, key, "uid")) user->uid = fine;
    return 1;
}

static int read_event_member(Reader *r, Span key, int depth, void *state) {
    Members *m = state;
    Span at;
    int ok, kind;
    if (key_is(r, key, "kind")) {
        if (!read_string_member(r, depth, &ok, &at, 0)) return 0;
        m->kind = ok && span_is(r, at, "Event");
    } else if (key_is(r, key, "apiVersion")) {
        if (!read_string_member(r, depth, &ok, &at, 0)) return 0;
        m->api_version = ok && (span_is(r, at, "audit.k8s.io/v1") || span_is(r, at, "audit.k8s.io/v1beta1"));
    } else if (key_is(r, key, "auditID")) {
        if (!read_string_member(r, depth, &ok, &at, 1)) return 0;
        m->audit_id = ok && at.end > at.start;
    } else if (key_is(r, key, "requestReceivedTimestamp")) {
        if (!read_string_member(r, depth, &m->received, &m->received_at, 0)) return 0;
    } else if (key_is(r, key, "stageTimestamp")) {
        if (!read_string_member(r, depth, &m->stage, &m->stage_at, 0)) return 0;
    } else if (key_is(r, key, "user")) {
        if (r->i < r->n && r->s[r->i] == '{') {
            UserMembers user = {1, 1};
            if (!read_object(r, depth + 1, read_user_member, &user)) return 0;
            m->user = user.username && user.uid;
        } else {
            if (!read_value(r, depth + 1, &kind)) return 0;
            m->user = kind == NULL_VALUE;
        }
    } else {
        if (!read_value(r, depth + 1, &kind)) return 0;
        for (int k = 0; k < 5; k++) {
            if (key_is(r, key, OBJECT_MEMBERS[k])) m->object_member[k] = kind == OBJECT || kind == NULL_VALUE;
        }
    }
    return 1;
}

/* Whether the line is one JSON object, a valid audit Event as k8s_audit._validate judges it
 * (apiVersion: the versions the API server writes; the rest takes the full path); the spans
 * of its two timestamps. */
static int read_event(const unsigned char *s, Py_ssize_t n, Span *received, Span *stage) {
    Reader r = {s, n, 0};
    Members m = {0, 0, 0, 0, 0, 1, 1, {1, 1, 1, 1, 1}, {0, 0}, {0, 0}};
    skip_space(&r);
    if (r.i >= n || s[r.i] != '{') return 0;
    if (!read_object(&r, 1, read_event_member, &m)) return 0;
    skip_space(&r);
    if (r.i != n) return 0;
    for (int k = 0; k < 5; k++) m.objects &= m.object_member[k];
    *received = m.received_at;
    *stage = m.stage_at;
    return m.kind && m.api_version && m.audit_id && m.received && m.stage && m.user && m.objects;
}

static int two_digits(const unsigned char *d, int *value) {
    if (!is_digit(d[0]) || !is_digit(d[1])) return 0;
    *value = (d[0] - '0') * 10 + (d[1] - '0');
    return 1;
}

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil). */
static long long days_from_civil(int year, int month, int day) {
    year -= month <= 2;
    long long era = year / 400; /* year >= 0 here: years start at 1 */
    long long year_of_era = year - era * 400;
    long long day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long long day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

/* The time in the span as microseconds since 1970-01-01T00:00:00Z, when it is written
 * YYYY-MM-DDTHH:MM:SS, then 1 to 6 fraction digits after a dot or none, then Z: the form the API
 * server writes, of which datetime.fromisoformat gives that same UTC time (a shorter fraction
 * is padded with zeros). Any other form, valid or not, is left to the full path. */
static int utc_micros(const unsigned char *s, Span at, long long *micros) {
    static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const unsigned char *t = s + at.start;
    Py_ssize_t n = at.end - at.start;
    int century, year2, month, day, hour, minute, second;
    if (n < 20 || n == 21 || n > 27 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
        t[16] != ':' || t[n - 1] != 'Z') {
        return 0;
    }
    if (!two_digits(t, &century) || !two_digits(t + 2, &year2) || !two_digits(t + 5, &month) ||
        !two_digits(t + 8, &day) || !two_digits(t + 11, &hour) || !two_digits(t + 14, &minute) ||
        !two_digits(t + 17, &second)) {
        return 0;
    }
    int year = century * 100 + year2;
    int leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > month_days[month - 1] ||
        (month == 2 && day == 29 && !leap) || hour > 23 || minute > 59 || second > 59) {
        return 0;
    }
    long long fraction = 0;
    if (n > 20) { /* .d to .dddddd before the Z */
        if (t[19] != '.') return 0;
        Py_ssize_t digits = 0;
        for (Py_ssize_t k = 20; k < n - 1; k++, digits++) {
            if (!is_digit(t[k])) return 0;
            fraction = fraction * 10 + (t[k] - '0');
        }
        for (; digits < 6; digits++) fraction *= 10;
    }
    long long seconds = days_from_civil(year, month, day) * 86400LL + hour * 3600 + minute * 60 + second;
    *micros = seconds * 1000000LL + fraction;
    return 1;
}

/* Bytes.strip()'s white space: the ASCII space characters (Py_ISSPACE). */
static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* The line data[begin, end) (no newline in it): 1 when it needs the full path, 0 when it is quiet,
 * with the stageTimestamp of its audit Event in *micros. */
static int takes_full_path(const unsigned char *s, Py_ssize_t n, PyObject *needles, PyObject *harmless,
                           Py_ssize_t max_opening, long long *micros) {
    Span received_at, stage_at;
    long long received_time;
    return needs_full_path(s, n, needles, harmless, max_opening, 0) || !read_event(s, n, &received_at, &stage_at) ||
           !utc_micros(s, received_at, &received_time) || !utc_micros(s, stage_at, micros);
}

static int append_tuple(PyObject *list, PyObject *item) {
    if (item == NULL) return -1;
    int result = PyList_Append(list, item);
    Py_DECREF(item);
    return result;
}

/* A run of quiet lines: how many, their earliest and latest stage time, where it starts and ends. */
typedef struct {
    Py_ssize_t count, begin, end;
    long long low, high;
} Run;

static void extend_run(Run *run, Py_ssize_t begin, Py_ssize_t end, long long micros) {
    if (run->count == 0) {
        run->begin = begin;
        run->low = run->high = micros;
    }
    run->low = micros < run->low ? micros : run->low;
    run->high = micros > run->high ? micros : run->high;
    run->end = end;
    run->count++;
}

/* Appends the run, if it holds any line, and empties it; -1 on failure. */
static int flush_run(PyObject *parts, Run *run) {
    if (run->count == 0) return 0;
    Run done = *run;
    run->count = 0;
    return append_tuple(parts, Py_BuildValue("(nLLnn)", done.count, done.low, done.high, done.begin, done.end));
}

static PyObject *quiet_block(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    PyObject *needles, *harmless;
    Py_ssize_t max_opening;
    if (!PyArg_ParseTuple(args, "y*O!O!n", &data, &PyTuple_Type, &needles, &PyTuple_Type, &harmless, &max_opening)) {
        return NULL;
    }
    PyObject *parts = NULL;
    if (!valid_arguments(needles, harmless) || (parts = PyList_New(0)) == NULL) goto done;
    const unsigned char *s = data.buf;
    Py_ssize_t n = data.len, line = 0;
    Run run = {0, 0, 0, 0, 0};
    for (Py_ssize_t at = 0; at <= n; line++) {
        const unsigned char *newline = memchr(s + at, '\n', (size_t)(n - at));
        Py_ssize_t next = newline == NULL ? n + 1 : newline - s + 1;
        Py_ssize_t begin = at, end = next - 1;
        at = next;
        while (begin < end && is_space(s[begin])) begin++;
        while (end > begin && is_space(s[end - 1])) end--;
        if (begin == end) continue; /* blank: counted, not read */
        long long micros;
        if (!takes_full_path(s + begin, end - begin, needles, harmless, max_opening, &micros)) {
            extend_run(&run, begin, end, micros);
        } else if (flush_run(parts, &run) < 0 || append_tuple(parts, Py_BuildValue("(nnn)", line, begin, end)) < 0) {
            Py_CLEAR(parts);
            goto done;
        }
    }
    if (flush_run(parts, &run) < 0) Py_CLEAR(parts);
done:
    PyBuffer_Release(&data);
    return parts;
}

/* bytes.count(b"\n") in CPython 3.11 tests byte by byte; memchr skips ahead many at a time. */
static PyObject *newlines(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    const char *s = data.buf, *end = s + data.len;
    Py_ssize_t count = 0;
    for (const char *p = memchr(s, '\n', (size_t)data.len); p != NULL; p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
        count++;
    }
    PyBuffer_Release(&data);
    return PyLong_FromSsize_t(count);
}

static PyMethodDef methods[] = {
    {"newlines", newlines, METH_VARARGS, "newlines(data) -> how many newline bytes data holds"},
    {"quiet_block", quiet_block, METH_VARARGS,
     "quiet_block(data, needles, harmless, max_opening) -> the lines of data (split at newlines, stripped, blank "
     "ones skipped) in order: (line index, start, end) for each one that takes the full path, and between them "
     "(count, earliest, latest, start, end) for each run of the others, with the earliest and latest "
     "stageTimestamp of their audit Events in microseconds since 1970-01-01T00:00:00Z"},
    {"full_path_lines", full_path_lines, METH_VARARGS,
     "full_path_lines(lines, needles, harmless, max_opening) -> the positions of the lines that must take "
     "the full path (see dac/events/linescan.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_linescan", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__linescan(void) {
    fill_tables();
    return PyModule_Create(&module);
}
