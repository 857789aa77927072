# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""``Signer._pack`` compiled (built by scripts/build_ext.py): a token's msgpack payload, its HMAC-SHA256
from copies of the keyed inner and outer SHA-256 states (OpenSSL's libcrypto) and both base64url parts,
in one call and one output string. The same bytes as ``apps.bidding.tokens._pack``
(tests/bidding/test_tokens.py compares them); any field it does not encode (not a str or an int of
64 bits) raises TypeError and the caller takes the Python path.
"""
from libc.string cimport memcpy
from libc.stdint cimport uint8_t, int64_t, uint64_t
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeASCII
from cpython.long cimport PyLong_AsLongLong

cdef extern from "openssl/sha.h" nogil:
    ctypedef struct SHA256_CTX:
        pass
    int SHA256_Init(SHA256_CTX *c)
    int SHA256_Update(SHA256_CTX *c, const void *data, size_t length)
    int SHA256_Final(unsigned char *md, SHA256_CTX *c)

cdef enum:
    MAX_PAYLOAD = 4096
    MAX_TEXT = 5504  # base64 of MAX_PAYLOAD bytes (5,462), ".", the signature (22), room to spare
    SIG_BYTES = 16

cdef const char* B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


cdef Py_ssize_t _b64url(const uint8_t* src, Py_ssize_t n, char* dst) noexcept:
    """base64url without padding; returns the characters written."""
    cdef Py_ssize_t i = 0, o = 0
    cdef unsigned int v
    while i + 3 <= n:
        v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2]
        dst[o] = B64[(v >> 18) & 63]
        dst[o + 1] = B64[(v >> 12) & 63]
        dst[o + 2] = B64[(v >> 6) & 63]
        dst[o + 3] = B64[v & 63]
        i += 3
        o += 4
    if n - i == 1:
        v = src[i] << 16
        dst[o] = B64[(v >> 18) & 63]
        dst[o + 1] = B64[(v >> 12) & 63]
        o += 2
    elif n - i == 2:
        v = (src[i] << 16) | (src[i + 1] << 8)
        dst[o] = B64[(v >> 18) & 63]
        dst[o + 1] = B64[(v >> 12) & 63]
        dst[o + 2] = B64[(v >> 6) & 63]
        o += 3
    return o


cdef Py_ssize_t _put_int(uint8_t* out, Py_ssize_t o, object value) except -1:
    """msgspec's msgpack integer: the shortest of fixint, uint8..64 / int8..64."""
    if type(value) is not int:
        raise TypeError("not an int")
    cdef int64_t x = PyLong_AsLongLong(value)  # OverflowError past 64 bits (the caller falls back)
    cdef uint64_t u
    cdef int k
    if o + 9 > MAX_PAYLOAD:
        raise TypeError("payload too large")
    if x >= 0:
        u = <uint64_t>x
        if u < 128:
            out[o] = <uint8_t>u
            return o + 1
        if u <= 0xFF:
            out[o] = 0xCC
            out[o + 1] = <uint8_t>u
            return o + 2
        if u <= 0xFFFF:
            out[o] = 0xCD
            k = 2
        elif u <= 0xFFFFFFFF:
            out[o] = 0xCE
            k = 4
        else:
            out[o] = 0xCF
            k = 8
    else:
        if x >= -32:
            out[o] = <uint8_t>(x & 0xFF)
            return o + 1
        u = <uint64_t>x
        if x >= -128:
            out[o] = 0xD0
            out[o + 1] = <uint8_t>(u & 0xFF)
            return o + 2
        if x >= -32768:
            out[o] = 0xD1
            k = 2
        elif x >= -2147483648:
            out[o] = 0xD2
            k = 4
        else:
            out[o] = 0xD3
            k = 8
    cdef int j
    for j in range(k):
        out[o + k - j] = <uint8_t>((u >> (8 * j)) & 0xFF)
    return o + 1 + k


cdef Py_ssize_t _put_str(uint8_t* out, Py_ssize_t o, object value) except -1:
    """msgspec's msgpack string: fixstr, str8, str16 or str32 of the UTF-8 bytes."""
    if type(value) is not str:
        raise TypeError("not a str")
    cdef Py_ssize_t n
    cdef const char* data = PyUnicode_AsUTF8AndSize(value, &n)  # UnicodeEncodeError for lone surrogates
    if o + 5 + n > MAX_PAYLOAD:
        raise TypeError("payload too large")
    if n < 32:
        out[o] = <uint8_t>(0xA0 | n)
        o += 1
    elif n <= 0xFF:
        out[o] = 0xD9
        out[o + 1] = <uint8_t>n
        o += 2
    elif n <= 0xFFFF:
        out[o] = 0xDA
        out[o + 1] = <uint8_t>(n >> 8)
        out[o + 2] = <uint8_t>(n & 0xFF)
        o += 3
    else:
        out[o] = 0xDB
        out[o + 1] = <uint8_t>(n >> 24)
        out[o + 2] = <uint8_t>((n >> 16) & 0xFF)
        out[o + 3] = <uint8_t>((n >> 8) & 0xFF)
        out[o + 4] = <uint8_t>(n & 0xFF)
        o += 5
    memcpy(out + o, data, n)
    return o + n


cdef class Packer:
    """The keyed HMAC-SHA256 states of one secret (RFC 2104: the padded key XOR ipad / opad absorbed)."""

    cdef SHA256_CTX inner
    cdef SHA256_CTX outer

    def __init__(self, bytes secret):
        cdef unsigned char key[64]
        cdef unsigned char pad[64]
        cdef Py_ssize_t i, n = len(secret)
        cdef const unsigned char* s = secret
        cdef SHA256_CTX tmp
        for i in range(64):
            key[i] = 0
        if n > 64:
            SHA256_Init(&tmp)
            SHA256_Update(&tmp, s, n)
            SHA256_Final(key, &tmp)
        else:
            memcpy(key, s, n)
        for i in range(64):
            pad[i] = key[i] ^ 0x36
        SHA256_Init(&self.inner)
        SHA256_Update(&self.inner, pad, 64)
        for i in range(64):
            pad[i] = key[i] ^ 0x5C
        SHA256_Init(&self.outer)
        SHA256_Update(&self.outer, pad, 64)

    def pack(self, list fields):
        """``base64url(msgpack(fields)) "." base64url(HMAC(payload)[:16])`` for a list of str and int."""
        cdef uint8_t payload[MAX_PAYLOAD]
        cdef char text[MAX_TEXT]
        cdef unsigned char digest[32]
        cdef SHA256_CTX ctx
        cdef Py_ssize_t n = len(fields), i, o = 1, t
        if n >= 16:
            raise TypeError("at most 15 fields")
        payload[0] = <uint8_t>(0x90 | n)
        for i in range(n):
            value = fields[i]
            if type(value) is str:
                o = _put_str(payload, o, value)
            else:
                o = _put_int(payload, o, value)
        memcpy(&ctx, &self.inner, sizeof(SHA256_CTX))
        SHA256_Update(&ctx, payload, o)
        SHA256_Final(digest, &ctx)
        memcpy(&ctx, &self.outer, sizeof(SHA256_CTX))
        SHA256_Update(&ctx, digest, 32)
        SHA256_Final(digest, &ctx)
        t = _b64url(payload, o, text)
        text[t] = 46  # "."
        t += 1
        t += _b64url(digest, SIG_BYTES, text + t)
        return PyUnicode_DecodeASCII(text, t, NULL)
