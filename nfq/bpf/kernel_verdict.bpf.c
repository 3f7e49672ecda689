// The kernel verdict (nfq/kernel_verdict.h, docs/nfq.md "Kernel verdict"):
// an eBPF socket-filter program per address family that allows the first
// client payload of an undecided TCP connection in the kernel, only in the
// plain case and only when the user-space verdict procedure would allow it.
// Returns 1 (the iptables rule marks the packet CONFIRM) or 0 (the packet
// is queued to egressd as before).
//
// Restricted C for `clang -target bpf -O2 -mcpu=v3`, no libbpf: the maps
// are created by nfq/kernel_verdict.cc, which resolves the relocations of
// the symbols in the "maps" section by name. Nothing here may need a
// .rodata or .data section (no string constants, no lookup tables).
//
// Every parser below mirrors sni/tls.cc and sni/http.cc, check for check,
// and is stricter where that is simpler: anything the user-space parser
// would refuse, hold, or read another name from returns 0 here.
#include <linux/bpf.h>
#include <linux/types.h>

#include "kernel_verdict_record.h"

#define SEC(name) __attribute__((section(name), used))
#define INLINE static inline __attribute__((always_inline))

// The helpers (include/uapi/linux/bpf.h), called by number.
static void* (*bpf_map_lookup_elem)(void* map, const void* key) = (void*)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void* map, const void* key, const void* value,
                                   __u64 flags) = (void*)BPF_FUNC_map_update_elem;
static long (*bpf_map_delete_elem)(void* map, const void* key) = (void*)BPF_FUNC_map_delete_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void*)BPF_FUNC_ktime_get_ns;
static long (*bpf_skb_load_bytes)(const void* skb, __u32 offset, void* to,
                                  __u32 len) = (void*)BPF_FUNC_skb_load_bytes;
static long (*bpf_ringbuf_output)(void* ring, void* data, __u64 size,
                                  __u64 flags) = (void*)BPF_FUNC_ringbuf_output;
static long (*bpf_loop)(__u32 nr_loops, void* callback, void* ctx, __u64 flags) = (void*)BPF_FUNC_loop;

// Keeps clang from knowing a value, so that it keeps the masks the verifier
// needs to bound an offset (libbpf's barrier_var).
#define barrier_var(var) asm volatile("" : "+r"(var))

// --- maps (created in C++; only their names matter here) -------------------
struct map_symbol {
  int unused;
};
struct map_symbol starts SEC("maps");   // KernelGuard's: KernelFlowKey -> KernelStart
struct map_symbol confirm SEC("maps");  // KernelGuard's: KernelFlowKey -> KernelConfirm
struct map_symbol names SEC("maps");    // KernelNameKey -> KernelNameValue (LRU hash)
struct map_symbol state SEC("maps");    // array of one KernelVerdictState
struct map_symbol ring SEC("maps");     // ring buffer of KernelVerdictRecord + packet
struct map_symbol scratch SEC("maps");  // per-CPU array of one struct scratch

// --- layouts shared with C++ (nfq/kernel_guard.h, nfq/kernel_verdict.h) ----
struct flow_key {  // KernelFlowKey
  __u8 client[16];
  __u8 server[16];
  __u8 client_port[2];
  __u8 server_port[2];
  __u8 family;
  __u8 protocol;
  __u8 pad[2];
};
struct start_value {  // KernelStart
  __u32 seq;
  __u32 ifindex;
  __u64 time_ns;
};
struct confirm_value {  // KernelConfirm
  __u32 judged_end;
  __u32 passed_end;
  __u32 client_ifindex;
  __u32 confirmed;
  __u64 confirmed_ns;
};
#define NAME_BYTES 128  // kKernelNameBytes
struct name_key {       // KernelNameKey
  __u8 family;
  __u8 protocol;
  __u8 port[2];
  __u8 server[16];
  char name[NAME_BYTES];
};
struct name_value {  // KernelNameValue
  __u64 expiry_ns;
  __u32 generation;
  __u32 pad;
};
struct verdict_state {  // KernelVerdictState
  __u32 generation;
  __u32 pad;
  __u64 consumer_deadline_ns;
};
_Static_assert(sizeof(struct flow_key) == 40, "KernelFlowKey");
_Static_assert(sizeof(struct name_key) == 148, "KernelNameKey");

#define MAX_PACKET 4096  // kKernelMaxPacketBytes, a power of two (masks)
#define MAX_EXTENSIONS 128
#define SOURCE_SNI 1
#define SOURCE_HOST 2
#define START_MAX_AGE_NS (300ULL * 1000 * 1000 * 1000)

// The per-CPU scratch: the ring record's header right before the packet
// (one bpf_ringbuf_output copies both), then the parsers' state, which the
// bpf_loop callbacks share. Its size is checked against
// kKernelVerdictScratchBytes in nfq/kernel_verdict.cc.
struct scratch {
  __u32 busy;  // set while a run on this CPU uses the scratch
  __u32 pad0;
  struct kernel_verdict_record record;
  __u8 packet[MAX_PACKET];
  struct name_key key;
  // cursor state of the loops: [pos, end) of the bytes being walked
  __u32 pos;
  __u32 end;
  __u32 done;  // the walk reached `end` exactly and everything was valid
  __u32 count;
  __u32 psk;
  __u32 sni_off;
  __u32 sni_len;
  __u32 alpn_off;
  __u32 alpn_end;
  __u32 has_alpn;
  // HTTP header walk
  __u32 http_state;
  __u32 field_start;
  __u32 value_start;
  __u32 value_end;
  __u32 is_host;
  __u32 host_seen;
  __u32 host_off;
  __u32 host_end;
  // name check
  __u32 name_off;
  __u32 name_len;
  __u32 label;
  __u32 non_digit;
  __u64 filter;
  __u16 seen[MAX_EXTENSIONS];
};
#define SCRATCH_BYTES 8192  // kKernelVerdictScratchBytes
_Static_assert(sizeof(struct scratch) <= SCRATCH_BYTES, "scratch map value");

struct loop_ctx {
  struct scratch* s;
};

// One packet byte at `off` (< MAX_PACKET by the callers' checks; the mask
// is what the verifier sees).
INLINE __u32 byte_at(const struct scratch* s, __u32 off) {
  barrier_var(off);
  return s->packet[off & (MAX_PACKET - 1)];
}
INLINE __u32 u16_at(const struct scratch* s, __u32 off) {
  return byte_at(s, off) << 8 | byte_at(s, off + 1);
}
INLINE __u32 u32_at(const struct scratch* s, __u32 off) {
  return u16_at(s, off) << 16 | u16_at(s, off + 2);
}

// --- the name (SNI or Host) -------------------------------------------------
// sni/host_name.h classifyHostName, restricted: [a-z0-9._-] only (upper
// case, ':' and everything else return 0), labels of 1..63 bytes, no
// trailing dot, at most NAME_BYTES, not only digits and dots (an IPv4
// literal is no name for user space). Copies the name into key.name,
// zero-padded (one memset, then one callback per byte of the name).
static long name_step(__u32 i, void* ctx) {
  struct scratch* s = ((struct loop_ctx*)ctx)->s;
  __u32 at = i;
  barrier_var(at);
  at &= NAME_BYTES - 1;
  const __u32 c = byte_at(s, s->name_off + i);
  if (c == '.') {
    if (s->label == 0) goto bad;  // empty label (leading dot, "..")
    s->label = 0;
  } else if ((c >= 'a' && c <= 'z') || c == '-' || c == '_') {
    s->non_digit = 1;
    if (++s->label > 63) goto bad;
  } else if (c >= '0' && c <= '9') {
    if (++s->label > 63) goto bad;
  } else {
    goto bad;
  }
  s->key.name[at] = (char)c;
  return 0;
bad:
  s->done = 0;
  return 1;
}

INLINE int check_name(struct scratch* s, struct loop_ctx* ctx, __u32 off, __u32 len) {
  if (len == 0 || len > NAME_BYTES) return 0;
  s->name_off = off;
  s->name_len = len;
  s->label = 0;
  s->non_digit = 0;
  s->done = 1;
  __builtin_memset(s->key.name, 0, NAME_BYTES);  // zero-padded
  bpf_loop(len, name_step, ctx, 0);
  // No trailing dot (also no empty last label); not an IPv4 literal.
  return s->done && s->label != 0 && s->non_digit;
}

// --- TLS ClientHello (sni/tls.cc) ------------------------------------------
// One extension at s->pos (RFC 8446 section 4.2); stops at s->end.
static long tls_extension(__u32 i __attribute__((unused)), void* ctx) {
  struct scratch* s = ((struct loop_ctx*)ctx)->s;
  const __u32 at = s->pos;
  const __u32 end = s->end;
  if (at == end) {
    s->done = 1;
    return 1;
  }
  if (end - at < 4) return 1;
  const __u32 type = u16_at(s, at);
  const __u32 length = u16_at(s, at + 2);
  const __u32 data = at + 4;
  if (end - data < length) return 1;  // TlsExtensionOverflow
  if (s->psk) return 1;               // TlsPskNotLast
  if (s->count >= MAX_EXTENSIONS) return 1;
  // TlsDuplicateExtension: the low bits filter first, as sni/tls.cc does.
  const __u64 bit = 1ULL << (type & 63);
  if (s->filter & bit) {
    for (__u32 k = 0; k < MAX_EXTENSIONS; k++) {
      if (k >= s->count) break;
      if (s->seen[k] == type) return 1;
    }
  }
  s->filter |= bit;
  __u32 slot = s->count;
  barrier_var(slot);
  s->seen[slot & (MAX_EXTENSIONS - 1)] = (__u16)type;
  s->count++;

  if (type == 0) {
    // server_name (RFC 6066 section 3): a list of exactly one host_name;
    // sni/tls.cc refuses a second entry of any kind, an empty list or name.
    if (length < 2) return 1;
    const __u32 list = u16_at(s, data);
    if (list != length - 2 || list < 3) return 1;
    if (byte_at(s, data + 2) != 0) return 1;
    const __u32 name = u16_at(s, data + 3);
    if (name == 0 || name + 3 != list) return 1;
    s->sni_off = data + 5;
    s->sni_len = name;
  } else if (type == 16) {
    // ALPN (RFC 7301 section 3.1): its entries are walked after the loop.
    if (length < 2) return 1;
    const __u32 list = u16_at(s, data);
    if (list != length - 2 || list < 2) return 1;
    s->has_alpn = 1;
    s->alpn_off = data + 2;
    s->alpn_end = data + length;
  } else if (type == 43) {
    // supported_versions (RFC 8446 section 4.2.1): versions<2..254>.
    if (length < 1) return 1;
    const __u32 list = byte_at(s, data);
    if (list != length - 1 || list < 2 || (list & 1)) return 1;
  } else if (type == 41) {
    s->psk = 1;  // pre_shared_key: must be the last one
  } else if (type == 0xfe0d) {
    // encrypted_client_hello: ECHClientHelloType outer(0) or inner(1).
    if (length < 1 || byte_at(s, data) > 1) return 1;
  }
  s->pos = data + length;
  return 0;
}

// One ALPN protocol name: opaque ProtocolName<1..2^8-1>.
static long alpn_entry(__u32 i __attribute__((unused)), void* ctx) {
  struct scratch* s = ((struct loop_ctx*)ctx)->s;
  const __u32 at = s->pos;
  if (at == s->end) {
    s->done = 1;
    return 1;
  }
  const __u32 length = byte_at(s, at);
  if (length == 0 || s->end - at - 1 < length) return 1;
  s->pos = at + 1 + length;
  return 0;
}

// The ClientHello in [p, e): returns 1 with the SNI at s->sni_off/len.
INLINE int parse_tls(struct scratch* s, struct loop_ctx* ctx, __u32 p, __u32 e) {
  // RFC 8446 section 5.1: one handshake record holding exactly the hello
  // (sni/tls.cc takes several records, or bytes after the hello in its
  // record, differently or not at all: those are left to user space).
  if (e - p < 9) return 0;
  if (byte_at(s, p) != 22 || byte_at(s, p + 1) != 3 || byte_at(s, p + 2) > 4) return 0;
  const __u32 record = u16_at(s, p + 3);
  if (record == 0 || record > 16384) return 0;
  if (byte_at(s, p + 5) != 1) return 0;  // ClientHello
  if (byte_at(s, p + 6) != 0) return 0;  // > 64 KiB, and more than a record
  const __u32 message = 4 + u16_at(s, p + 7);
  if (message != record || e - p - 5 < record) return 0;
  __u32 c = p + 9;
  const __u32 end = p + 5 + record;
  // RFC 8446 section 4.1.2: legacy_version, random, legacy_session_id,
  // cipher_suites, legacy_compression_methods, extensions.
  if (end - c < 35) return 0;
  const __u32 session = byte_at(s, c + 34);
  if (session > 32) return 0;
  c += 35 + session;
  if (end - c < 2) return 0;
  const __u32 suites = u16_at(s, c);
  if (suites < 2 || (suites & 1)) return 0;
  c += 2;
  if (end - c < suites) return 0;
  c += suites;
  if (end - c < 1) return 0;
  const __u32 compression = byte_at(s, c);
  if (compression == 0) return 0;
  c += 1;
  if (end - c < compression) return 0;
  c += compression;
  if (end - c < 2) return 0;  // no extensions: no SNI
  const __u32 extensions = u16_at(s, c);
  c += 2;
  if (extensions != end - c) return 0;

  s->pos = c;
  s->end = end;
  s->done = 0;
  s->count = 0;
  s->psk = 0;
  s->filter = 0;
  s->sni_len = 0;
  s->has_alpn = 0;
  bpf_loop(MAX_EXTENSIONS + 1, tls_extension, ctx, 0);
  if (!s->done || s->sni_len == 0) return 0;
  if (s->has_alpn) {
    s->pos = s->alpn_off;
    s->end = s->alpn_end;
    s->done = 0;
    bpf_loop(MAX_PACKET / 2, alpn_entry, ctx, 0);
    if (!s->done) return 0;
  }
  return 1;
}

// --- HTTP/1 request head (sni/http.cc, nfq/first_payload.cc) ---------------
// RFC 9110 section 5.6.2 tchar.
INLINE int is_tchar(__u32 c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  return c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' || c == '+' ||
         c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~';
}

// The request-target's bytes (VCHAR) up to its SP.
static long target_byte(__u32 i __attribute__((unused)), void* ctx) {
  struct scratch* s = ((struct loop_ctx*)ctx)->s;
  const __u32 at = s->pos;
  if (at >= s->end) return 1;  // incomplete
  const __u32 c = byte_at(s, at);
  if (c == ' ') {
    s->done = 1;
    return 1;
  }
  if (c <= 0x20 || c >= 0x7f) return 1;  // CR, LF, controls: malformed
  s->pos = at + 1;
  return 0;
}

enum { LINE_START, FIELD_NAME, VALUE_OWS, VALUE, VALUE_LF, FINAL_LF };

// RFC 9112 section 5: field-line = field-name ":" OWS field-value OWS CRLF,
// then the empty line; one byte per step, 1 to stop.
INLINE long header_byte(struct scratch* s) {
  const __u32 at = s->pos;
  if (at >= s->end) return 1;  // no end of the header section: held
  const __u32 c = byte_at(s, at);
  s->pos = at + 1;
  switch (s->http_state) {
    case LINE_START:
      if (c == '\r') {
        s->http_state = FINAL_LF;
        return 0;
      }
      if (!is_tchar(c)) return 1;  // bare LF, obs-fold, an empty field name
      s->field_start = at;
      s->http_state = FIELD_NAME;
      return 0;
    case FIELD_NAME:
      if (is_tchar(c)) return 0;
      if (c != ':') return 1;  // whitespace before the colon, other bytes
      s->is_host = at - s->field_start == 4 && (byte_at(s, s->field_start) | 0x20) == 'h' &&
                   (byte_at(s, s->field_start + 1) | 0x20) == 'o' &&
                   (byte_at(s, s->field_start + 2) | 0x20) == 's' &&
                   (byte_at(s, s->field_start + 3) | 0x20) == 't';
      s->http_state = VALUE_OWS;
      s->value_start = at + 1;
      s->value_end = at + 1;
      return 0;
    case VALUE_OWS:
      if (c == ' ' || c == '\t') {
        s->value_start = at + 1;
        s->value_end = at + 1;
        return 0;
      }
      s->http_state = VALUE;
      // fall through: the first byte of the value
    case VALUE:
      if (c == '\r') {
        s->http_state = VALUE_LF;
        return 0;
      }
      if ((c < 0x20 && c != '\t') || c == 0x7f) return 1;  // LF, NUL, controls
      if (c != ' ' && c != '\t') s->value_end = at + 1;    // trailing OWS is not the value
      return 0;
    case VALUE_LF:
      if (c != '\n') return 1;
      if (s->is_host) {
        if (s->host_seen) return 1;  // RFC 9112 section 3.2: one Host line
        s->host_seen = 1;
        s->host_off = s->value_start;
        s->host_end = s->value_end;
      }
      s->http_state = LINE_START;
      return 0;
    case FINAL_LF:
      if (c != '\n') return 1;
      s->done = 1;
      return 1;
  }
  return 1;
}

// Eight bytes per callback: a call per byte was most of an HTTP head's cost.
#define HEADER_BYTES_PER_CALL 8
static long header_bytes(__u32 i __attribute__((unused)), void* ctx) {
  struct scratch* s = ((struct loop_ctx*)ctx)->s;
#pragma unroll
  for (int k = 0; k < HEADER_BYTES_PER_CALL; k++) {
    if (header_byte(s)) return 1;
  }
  return 0;
}

// Compares the payload at `p` with up to 8 bytes of `word` (first byte in
// the lowest bits): the methods below, without a string constant.
INLINE int starts_with(const struct scratch* s, __u32 p, __u32 e, __u64 word, __u32 length) {
  if (e - p < length) return 0;
  for (__u32 k = 0; k < 8; k++) {
    if (k >= length) break;
    if (byte_at(s, p + k) != ((word >> (8 * k)) & 0xff)) return 0;
  }
  return 1;
}
#define W2(a, b) ((__u64)(a) | (__u64)(b) << 8)
#define W4(a, b, c, d) (W2(a, b) | W2(c, d) << 16)
#define W8(a, b, c, d, e, f, g, h) (W4(a, b, c, d) | W4(e, f, g, h) << 32)

// The method and its SP (nfq/first_payload.cc kHttpMethods): its length,
// or 0. CONNECT (authority-form) is left to user space.
INLINE __u32 http_method(const struct scratch* s, __u32 p, __u32 e) {
  if (starts_with(s, p, e, W4('G', 'E', 'T', ' '), 4)) return 4;
  if (starts_with(s, p, e, W4('P', 'U', 'T', ' '), 4)) return 4;
  if (starts_with(s, p, e, W8('P', 'O', 'S', 'T', ' ', 0, 0, 0), 5)) return 5;
  if (starts_with(s, p, e, W8('H', 'E', 'A', 'D', ' ', 0, 0, 0), 5)) return 5;
  if (starts_with(s, p, e, W8('P', 'A', 'T', 'C', 'H', ' ', 0, 0), 6)) return 6;
  if (starts_with(s, p, e, W8('T', 'R', 'A', 'C', 'E', ' ', 0, 0), 6)) return 6;
  if (starts_with(s, p, e, W8('D', 'E', 'L', 'E', 'T', 'E', ' ', 0), 7)) return 7;
  if (starts_with(s, p, e, W8('O', 'P', 'T', 'I', 'O', 'N', 'S', ' '), 8)) return 8;
  return 0;
}

// The request head in [p, e): returns 1 with the Host name (port removed)
// at s->host_off and its length in s->host_end - s->host_off.
INLINE int parse_http(struct scratch* s, struct loop_ctx* ctx, __u32 p, __u32 e) {
  const __u32 method = http_method(s, p, e);
  if (method == 0) return 0;
  // RFC 9112 section 3.2.1: origin-form only; absolute-form, asterisk-form
  // and authority-form go to user space.
  __u32 c = p + method;
  if (c >= e || byte_at(s, c) != '/') return 0;
  s->pos = c;
  s->end = e;
  s->done = 0;
  bpf_loop(MAX_PACKET, target_byte, ctx, 0);
  if (!s->done) return 0;
  c = s->pos + 1;
  // RFC 9112 section 2.3: "HTTP/1.0" or "HTTP/1.1", then CRLF.
  if (!starts_with(s, c, e, W8('H', 'T', 'T', 'P', '/', '1', '.', 0), 7)) return 0;
  c += 7;
  if (e - c < 3) return 0;
  const __u32 minor = byte_at(s, c);
  if ((minor != '0' && minor != '1') || byte_at(s, c + 1) != '\r' || byte_at(s, c + 2) != '\n') return 0;
  s->pos = c + 3;
  s->end = e;
  s->done = 0;
  s->http_state = LINE_START;
  s->host_seen = 0;
  bpf_loop(MAX_PACKET / HEADER_BYTES_PER_CALL, header_bytes, ctx, 0);
  // HTTP/1.1 needs Host (HttpMissingHost); HTTP/1.0 without one has no name.
  if (!s->done || !s->host_seen) return 0;
  // RFC 3986 section 3.2.2-3: host [":" port], port 1..65535 (sni/http.cc
  // parseAuthority). The host's own bytes are checked by check_name; an
  // IP-literal ("[") fails there.
  __u32 colon = s->host_off;
  for (__u32 k = 0; k < NAME_BYTES + 1; k++) {
    if (colon >= s->host_end || byte_at(s, colon) == ':') break;
    colon++;
  }
  if (colon < s->host_end) {
    const __u32 digits = s->host_end - colon - 1;
    if (digits < 1 || digits > 5) return 0;
    __u32 port = 0;
    for (__u32 k = 0; k < 5; k++) {
      if (k >= digits) break;
      const __u32 d = byte_at(s, colon + 1 + k);
      if (d < '0' || d > '9') return 0;
      port = port * 10 + (d - '0');
    }
    if (port == 0 || port > 65535) return 0;
  }
  s->host_end = colon;
  return 1;
}

// --- the verdict ------------------------------------------------------------
INLINE int judge(struct __sk_buff* skb, struct scratch* s, const int v6) {
  struct loop_ctx ctx = {s};
  __u32 len = skb->len;
  if (len < 41 || len > MAX_PACKET) return 0;
  barrier_var(len);
  if (len > MAX_PACKET) return 0;
  if (bpf_skb_load_bytes(skb, 0, s->packet, len) != 0) return 0;

  // The IP header: no IPv4 options or fragments, no IPv6 extension
  // headers, the length field equal to the packet (no BIG TCP, jumbograms).
  __u32 t;
  if (!v6) {
    if (byte_at(s, 0) != 0x45 || u16_at(s, 2) != len) return 0;
    if ((u16_at(s, 6) & 0x3fff) != 0 || byte_at(s, 9) != 6) return 0;
    t = 20;
  } else {
    if ((byte_at(s, 0) >> 4) != 6 || u16_at(s, 4) + 40 != len || byte_at(s, 6) != 6) return 0;
    t = 40;
  }
  // TCP: ACK, no SYN/FIN/RST (and no URG: an urgent byte is not in the
  // stream the server's application reads), and a payload.
  if (len - t < 20) return 0;
  const __u32 offset = (byte_at(s, t + 12) >> 4) * 4;
  const __u32 flags = byte_at(s, t + 13);
  if (offset < 20 || len - t < offset) return 0;
  if ((flags & 0x37) != 0x10) return 0;  // URG ACK . RST SYN FIN
  const __u32 p = t + offset;
  const __u32 payload = len - p;
  if (payload == 0) return 0;

  // Someone drains the ring (the events), else nothing is allowed here.
  const __u64 now = bpf_ktime_get_ns();
  const __u32 zero = 0;
  struct verdict_state* st = bpf_map_lookup_elem(&state, &zero);
  if (!st || now >= st->consumer_deadline_ns) return 0;

  // Check 1 of the insertion guard (docs/nfq.md "Insertion"): the payload
  // starts at the ISN + 1 the server's SYN-ACK acknowledged, which came in
  // on another interface than this packet, less than 300 s ago.
  struct flow_key flow = {};
  if (!v6) {
    for (int k = 0; k < 4; k++) {
      flow.client[k] = (__u8)byte_at(s, 12 + k);
      flow.server[k] = (__u8)byte_at(s, 16 + k);
    }
  } else {
    for (int k = 0; k < 16; k++) {
      flow.client[k] = (__u8)byte_at(s, 8 + k);
      flow.server[k] = (__u8)byte_at(s, 24 + k);
    }
  }
  flow.client_port[0] = (__u8)byte_at(s, t);
  flow.client_port[1] = (__u8)byte_at(s, t + 1);
  flow.server_port[0] = (__u8)byte_at(s, t + 2);
  flow.server_port[1] = (__u8)byte_at(s, t + 3);
  flow.family = v6 ? 6 : 4;
  flow.protocol = 6;
  const __u32 seq = u32_at(s, t + 4);
  struct start_value* start = bpf_map_lookup_elem(&starts, &flow);
  if (!start) return 0;
  // One read of each field (volatile: never read again later, while the
  // synack program may rewrite the entry): what is checked here is what
  // the record carries.
  const __u32 start_seq = *(volatile const __u32*)&start->seq;
  const __u32 start_ifindex = *(volatile const __u32*)&start->ifindex;
  const __u64 start_time_ns = *(volatile const __u64*)&start->time_ns;
  if (start_seq != seq || start_ifindex == skb->ifindex) return 0;
  if (now - start_time_ns >= START_MAX_AGE_NS) return 0;

  // The name: a whole ClientHello or request head in this segment.
  const __u32 e = len;
  __u32 source, name_off, name_len;
  if (byte_at(s, p) == 22) {
    if (!parse_tls(s, &ctx, p, e)) return 0;
    source = SOURCE_SNI;
    name_off = s->sni_off;
    name_len = s->sni_len;
  } else {
    if (!parse_http(s, &ctx, p, e)) return 0;
    source = SOURCE_HOST;
    name_off = s->host_off;
    name_len = s->host_end - s->host_off;
  }
  if (!check_name(s, &ctx, name_off, name_len)) return 0;

  // The names map: (family, tcp, server port, server address, name),
  // written under this generation and not expired.
  s->key.family = flow.family;
  s->key.protocol = 6;
  s->key.port[0] = flow.server_port[0];
  s->key.port[1] = flow.server_port[1];
  for (int k = 0; k < 16; k++) s->key.server[k] = flow.server[k];
  struct name_value* allowed = bpf_map_lookup_elem(&names, &s->key);
  if (!allowed) return 0;
  // The generation as it is now, after the parse: a policy change that
  // bumped it meanwhile already counts (user space re-decides anyway).
  if (allowed->generation != st->generation || now >= allowed->expiry_ns) return 0;

  // The kernel guard's confirm entry, as the worker writes it for a
  // provisional allow; then the event, with the packet.
  struct confirm_value expect = {};
  expect.judged_end = seq + payload;
  expect.passed_end = seq + payload;
  expect.client_ifindex = skb->ifindex;
  if (bpf_map_update_elem(&confirm, &flow, &expect, BPF_ANY) != 0) return 0;
  s->record.packet_bytes = len;
  s->record.ifindex = skb->ifindex;
  s->record.time_ns = now;
  s->record.source = source;
  s->record.version = KERNEL_VERDICT_RECORD_VERSION;
  // Check 1's inputs as allowed: the worker checks them again from here.
  s->record.start_seq = start_seq;
  s->record.start_ifindex = start_ifindex;
  s->record.start_time_ns = start_time_ns;
  if (bpf_ringbuf_output(&ring, &s->record, sizeof(s->record) + len, 0) != 0) {
    bpf_map_delete_elem(&confirm, &flow);  // no event, no allow
    return 0;
  }
  return 1;
}

// The scratch is per CPU; a run that interrupts another on the same CPU
// (a softirq over the OUTPUT path) finds it busy and leaves its packet to
// user space.
INLINE int run(struct __sk_buff* skb, const int v6) {
  const __u32 zero = 0;
  struct scratch* s = bpf_map_lookup_elem(&scratch, &zero);
  if (!s) return 0;
  if (__sync_lock_test_and_set(&s->busy, 1) != 0) return 0;
  const int verdict = judge(skb, s, v6);
  __sync_lock_test_and_set(&s->busy, 0);
  return verdict;
}

SEC("socket/verdict4") int verdict4(struct __sk_buff* skb) {
  return run(skb, 0);
}

SEC("socket/verdict6") int verdict6(struct __sk_buff* skb) {
  return run(skb, 1);
}
