/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the native VMM protocol: the frame codec (proto/native.c),
 * the file record (proto/native-file.c), zero-page detection and memory
 * node lookup, and the save and restore sessions (daemon/session-native*.c)
 * run on a thread over a socketpair, with libsavd as the real client on
 * the other end and memfds as guest memory.
 *
 * Frames: every type round-trips; a stream of all of them decodes the same
 * whole, byte by byte and in random pieces; every limit and malformation
 * is refused with its own message; random and mutated input never crashes
 * or loops.  Sessions: inline and zero-copy saves (0, 1 and 16 descriptors,
 * fake NUMA topologies) restore byte for byte with their device state;
 * a live save with a thread dirtying memory restores to the final memory;
 * a page written and then zeroed restores as zero; descriptor handoff
 * errors (none attached, too many at once: MSG_CTRUNC, wrong type, too
 * small, stray), every protocol limit and state rule, a client that hangs
 * up and a cancelled job fail cleanly with an ERROR frame and no file.
 * Restore also takes QEMU's own mapped-ram file ($SAVD_TESTDATA), refuses
 * wrong blocks and corrupt files, and zeroes memory that held garbage.
 *
 * Without $SAVD_TESTDATA the QEMU file case is not run and the binary exits
 * 77 (skipped) after the others passed.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bytes.h"
#include "macro.h"
#include "mem-node.h"
#include "mrm-reader.h"
#include "native-file.h"
#include "native.h"
#include "savd/client.h"
#include "session-native.h"
#include "session.h"
#include "test-util.h"
#include "zero-scan.h"

#define PAGE            SAVD_NATIVE_PAGE_SIZE
#define MIB             (1ULL << 20)
#define MAX_GBLOCKS     8U
#define STREAM_MAX      (64U << 10)

static char workdir[256];
static char out_path[512];              /* where the sessions save */

static uint64_t xorshift(uint64_t *s)
{
        uint64_t x = *s;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *s = x;
}

/* ---- fixtures --------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void setup_workdir(void)
{
        const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";

        snprintf(workdir, sizeof(workdir), "%s/check-native.XXXXXX", base);
        CHECK(mkdtemp(workdir), "mkdtemp %s: %m", workdir);
        snprintf(out_path, sizeof(out_path), "%s/out.mrm", workdir);
}

static void teardown_workdir(void)
{
        nftw(workdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static unsigned dir_entries(void)
{
        unsigned n = 0;
        DIR *d = opendir(workdir);
        struct dirent *e;

        CHECK(d, "opendir");
        while ((e = readdir(d)))
                n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        closedir(d);
        return n;
}

/* =====================================================================
 * Frames
 * ===================================================================== */

struct sbuf {
        uint8_t p[STREAM_MAX];
        size_t len;
};

static void sb_add(struct sbuf *s, const void *p, size_t n)
{
        CHECK(s->len + n <= sizeof(s->p), "stream buffer full");
        memcpy(s->p + s->len, p, n);
        s->len += n;
}

static void sb_frame(struct sbuf *s, size_t n, const uint8_t *frame)
{
        CHECK(n > 0, "encoder refused a valid frame");
        sb_add(s, frame, n);
}

/* One of every frame type, with bulk data where the type has some. */
static void build_stream(struct sbuf *s)
{
        uint8_t f[NATIVE_HEAD_MAX], page[PAGE], mask[2] = { 0x11, 0x01 }, blob[1000];
        uint64_t v[SAVD_REPLY_VALUES] = { 1, 2, 3, 4, 5, 6, 7, UINT64_MAX };

        s->len = 0;
        sb_frame(s, native_encode_hello(f, SAVD_HELLO_RESTORE, SAVD_CAP_ALL, "vm-x", 4), f);
        sb_frame(s, native_encode_block(f, MIB, 4096, "pc.ram", 6, true), f);
        sb_frame(s, native_encode_empty(f, SAVD_FRAME_START, 0), f);
        sb_frame(s, native_encode_dirty(f, 3, 64), f);
        sb_frame(s, native_encode_pages(f, 1, 10, 9, mask), f);
        for (unsigned i = 0; i < 9; i++)
                if (!native_mask_test(mask, i)) {
                        memset(page, (int)(i + 1), sizeof(page));
                        sb_add(s, page, sizeof(page));
                }
        sb_frame(s, native_encode_empty(f, SAVD_FRAME_SCAN, SAVD_SCAN_FINAL | SAVD_SCAN_ALL), f);
        for (unsigned i = 0; i < sizeof(blob); i++)
                blob[i] = (uint8_t)(i * 13);
        sb_frame(s, native_encode_device_state(f, sizeof(blob)), f);
        sb_add(s, blob, sizeof(blob));
        sb_frame(s, native_encode_device_state(f, 0), f);
        sb_frame(s, native_encode_empty(f, SAVD_FRAME_COMPLETE, 0), f);
        sb_frame(s, native_encode_reply(f, SAVD_FRAME_SCAN, v, "text", 4), f);
        sb_frame(s, native_encode_error(f, 22, "bad", 3), f);
}

/* What a decoder saw: one line per frame, and the bulk bytes. */
struct dlog {
        char text[4096];
        size_t tlen;
        uint8_t data[STREAM_MAX];
        size_t dlen;
        unsigned frames;
        int last;
};

static void describe(struct dlog *l, const struct native_msg *m)
{
        char line[512];
        int n = snprintf(line, sizeof(line), "%s f=%x fds=%u len=%u bulk=%llu",
                         native_frame_name(m->type), m->flags, m->nfds, m->length,
                         (unsigned long long)m->bulk);

        switch (m->type) {
        case SAVD_FRAME_HELLO:
                snprintf(line + n, sizeof(line) - (size_t)n, " v=%u ps=%u caps=%llx '%s'",
                         m->u.hello.version, m->u.hello.page_size,
                         (unsigned long long)m->u.hello.caps, m->u.hello.name);
                break;
        case SAVD_FRAME_BLOCK:
                snprintf(line + n, sizeof(line) - (size_t)n, " %llx@%llx '%s'",
                         (unsigned long long)m->u.block.length,
                         (unsigned long long)m->u.block.fd_offset, m->u.block.name);
                break;
        case SAVD_FRAME_DIRTY:
                snprintf(line + n, sizeof(line) - (size_t)n, " b=%u off=%llu", m->u.dirty.block,
                         (unsigned long long)m->u.dirty.offset);
                break;
        case SAVD_FRAME_PAGES:
                snprintf(line + n, sizeof(line) - (size_t)n, " b=%u %llu+%u data=%u mask=%02x%02x",
                         m->u.pages.block, (unsigned long long)m->u.pages.first_page,
                         m->u.pages.npages, m->u.pages.ndata, m->u.pages.zero_mask[0],
                         m->u.pages.zero_mask[1]);
                break;
        case SAVD_FRAME_REPLY:
                snprintf(line + n, sizeof(line) - (size_t)n, " req=%u v0=%llu v7=%llx '%s'",
                         m->u.reply.request, (unsigned long long)m->u.reply.value[0],
                         (unsigned long long)m->u.reply.value[7], m->u.reply.text);
                break;
        case SAVD_FRAME_ERROR:
                snprintf(line + n, sizeof(line) - (size_t)n, " code=%u '%s'", m->u.error.code,
                         m->u.error.text);
                break;
        default:
                break;
        }
        n = snprintf(l->text + l->tlen, sizeof(l->text) - l->tlen, "%s\n", line);
        l->tlen += (size_t)n;
        l->frames++;
}

/* Feed buf in pieces: step 0 = all at once, 1 = byte by byte, 2 = random
 * sizes from seed.  Stops at the first error (kept in l->last). */
static void decode_pieces(const uint8_t *buf, size_t len, int step, uint64_t seed,
                          uint64_t max_dev, struct dlog *l)
{
        struct native_decoder d;
        struct native_msg m;
        size_t pos = 0;
        uint64_t s = seed | 1;

        memset(l, 0, sizeof(*l));
        native_decoder_init(&d, max_dev);
        while (pos < len) {
                size_t n = step == 0 ? len - pos : step == 1 ? 1 : 1 + xorshift(&s) % 97;
                size_t off = 0;

                n = MIN(n, len - pos);
                while (off < n) {
                        size_t used;
                        int r = native_decode(&d, buf + pos + off, n - off, &used, &m);

                        off += used;
                        l->last = r;
                        if (r < 0)
                                return;
                        if (r == NATIVE_FRAME)
                                describe(l, &m);
                        else if (r == NATIVE_DATA) {
                                CHECK(m.data_len > 0, "empty data event");
                                memcpy(l->data + l->dlen, m.data, m.data_len);
                                l->dlen += m.data_len;
                        } else
                                CHECK(off == n, "need-more with bytes left");
                }
                pos += n;
        }
        CHECK(native_decoder_idle(&d), "decoder not idle at the end of the stream");
}

START_TEST(test_frames_pieces)
{
        static struct sbuf s;
        static struct dlog whole, piece;

        build_stream(&s);
        decode_pieces(s.p, s.len, 0, 0, MIB, &whole);
        ck_assert_int_eq(whole.last, NATIVE_FRAME);
        ck_assert_uint_eq(whole.frames, 11);
        ck_assert_uint_eq(whole.dlen, 6 * PAGE + 1000);
        ck_assert_ptr_nonnull(strstr(whole.text, "HELLO f=1 fds=0 len=28 bulk=0 v=1 ps=4096 caps=f 'vm-x'"));
        ck_assert_ptr_nonnull(strstr(whole.text, "BLOCK f=0 fds=1 len=30 bulk=0 100000@1000 'pc.ram'"));
        ck_assert_ptr_nonnull(strstr(whole.text, "DIRTY f=0 fds=1 len=16 bulk=0 b=3 off=64"));
        ck_assert_ptr_nonnull(strstr(whole.text, "PAGES f=0 fds=0 len=24594 bulk=24576 b=1 10+9 data=6 mask=1101"));
        ck_assert_ptr_nonnull(strstr(whole.text, "SCAN f=3"));
        ck_assert_ptr_nonnull(strstr(whole.text, "DEVICE_STATE f=0 fds=0 len=1000 bulk=1000"));
        ck_assert_ptr_nonnull(strstr(whole.text, "DEVICE_STATE f=0 fds=0 len=0 bulk=0"));
        ck_assert_ptr_nonnull(strstr(whole.text, "REPLY f=0 fds=0 len=76 bulk=0 req=6 v0=1 v7=ffffffffffffffff 'text'"));
        ck_assert_ptr_nonnull(strstr(whole.text, "ERROR f=0 fds=0 len=11 bulk=0 code=22 'bad'"));
        /* page i of the data carries byte i + 1 for the pages not in the mask */
        ck_assert_uint_eq(whole.data[0], 2);
        ck_assert_uint_eq(whole.data[5 * PAGE], 8);
        ck_assert_uint_eq(whole.data[6 * PAGE + 1], 13);

        for (int step = 1; step <= 2; step++)
                for (uint64_t seed = 1; seed <= (step == 1 ? 1U : 20U); seed++) {
                        decode_pieces(s.p, s.len, step, seed, MIB, &piece);
                        ck_assert_int_eq(piece.last, NATIVE_FRAME);
                        ck_assert_str_eq(piece.text, whole.text);
                        ck_assert_uint_eq(piece.dlen, whole.dlen);
                        CHECK(memcmp(piece.data, whole.data, whole.dlen) == 0, "bulk differs");
                }
}
END_TEST

/* The bulk of a frame read around the decoder (as the session does for
 * page data) leaves it in step. */
START_TEST(test_frames_skip_bulk)
{
        uint8_t f[NATIVE_HEAD_MAX];
        struct native_decoder d;
        struct native_msg m;
        size_t n = native_encode_device_state(f, 5000), used;

        native_decoder_init(&d, MIB);
        ck_assert_int_eq(native_decode(&d, f, n, &used, &m), NATIVE_FRAME);
        ck_assert_uint_eq(native_decoder_bulk_left(&d), 5000);
        ck_assert_int_eq(native_decoder_skip_bulk(&d, 6000), -EINVAL);
        ck_assert_int_eq(native_decoder_skip_bulk(&d, 4999), 0);
        ck_assert(!native_decoder_idle(&d));
        ck_assert_int_eq(native_decoder_skip_bulk(&d, 1), 0);
        ck_assert(native_decoder_idle(&d));
        n = native_encode_empty(f, SAVD_FRAME_COMPLETE, 0);
        ck_assert_int_eq(native_decode(&d, f, n, &used, &m), NATIVE_FRAME);
        ck_assert_uint_eq(m.type, SAVD_FRAME_COMPLETE);
}
END_TEST

/* ---- malformed frames: one case each -------------------------------------- */

struct bad_frame {
        int err;
        const char *msg;
};

static const struct bad_frame bad_frames[] = {
        { -EBADMSG, "unknown frame type 0x0042" },
        { -EBADMSG, "reserved header field is not 0" },
        { -EBADMSG, "START: unknown flags 0x0001" },
        { -E2BIG, "BLOCK says 2 descriptors are attached" },
        { -EBADMSG, "HELLO says 1 descriptors are attached, expected 0" },
        { -EBADMSG, "DIRTY says 0 descriptors are attached, expected 1" },
        { -E2BIG, "HELLO payload of 324 bytes" },
        { -EBADMSG, "HELLO: name of 5 bytes in a payload of 28" },
        { -EBADMSG, "must be non-zero multiples of 4096" },
        { -EBADMSG, "must be non-zero multiples of 4096" },
        { -E2BIG, "exceeds the limit" },
        { -EBADMSG, "the block name is empty" },
        { -EBADMSG, "the block name contains a NUL byte" },
        { -EBADMSG, "PAGES: 0 pages" },
        { -E2BIG, "PAGES: 257 pages" },
        { -EBADMSG, "zero-mask bits set past page 3" },
        { -EBADMSG, "PAGES: payload of 4113 bytes, but 2 data pages need 8209" },
        { -E2BIG, "PAGES payload of 2000000 bytes" },
        { -E2BIG, "DEVICE_STATE of 1001 bytes exceeds the limit of 1000" },
        { -EBADMSG, "bitmap offset 0x4 is not a multiple of 8" },
        { -E2BIG, "START payload of 4 bytes, expected 0" },
        { -EBADMSG, "REPLY: text of 9 bytes in a payload of 76" },
        { -EBADMSG, "HELLO: reserved field is not 0" },
        { -E2BIG, "PAGES: first page" },
};

static size_t hdr(uint8_t *b, uint32_t len, uint16_t type, uint16_t flags, uint32_t nfds)
{
        put_le32(b, len);
        put_le16(b + 4, type);
        put_le16(b + 6, flags);
        put_le32(b + 8, nfds);
        put_le32(b + 12, 0);
        return SAVD_FRAME_HEADER_SIZE;
}

/* A valid frame first, then case i; returns the bytes. */
static size_t build_bad(int i, uint8_t *b)
{
        size_t n = native_encode_empty(b, SAVD_FRAME_START, 0);
        uint8_t *p = b + n, *q = p + SAVD_FRAME_HEADER_SIZE;

        memset(p, 0, 4096);
        switch (i) {
        case 0: return n + hdr(p, 0, 0x42, 0, 0);
        case 1: hdr(p, 0, SAVD_FRAME_START, 0, 0); put_le32(p + 12, 1); return n + 16;
        case 2: return n + hdr(p, 0, SAVD_FRAME_START, 1, 0);
        case 3: return n + hdr(p, 30, SAVD_FRAME_BLOCK, 0, 2);
        case 4: return n + hdr(p, 28, SAVD_FRAME_HELLO, 0, 1);
        case 5: return n + hdr(p, 16, SAVD_FRAME_DIRTY, 0, 0);
        case 6: return n + hdr(p, 24 + 300, SAVD_FRAME_HELLO, 0, 0);
        case 7:
                hdr(p, 28, SAVD_FRAME_HELLO, 0, 0);
                put_le32(q, 1); put_le32(q + 4, PAGE); put_le16(q + 16, 5);
                return n + 16 + 28;
        case 8: case 9: case 10: case 11: case 12:
                hdr(p, 24 + 4, SAVD_FRAME_BLOCK, 0, 0);
                put_le64(q, i == 8 ? 0 : i == 9 ? MIB + 1 : i == 10 ? (32ULL << 40) : MIB);
                put_le16(q + 16, i == 11 ? 0 : 4);
                if (i == 11)
                        put_le32(p, 24);
                memcpy(q + 24, i == 12 ? "a\0bc" : "abcd", 4);
                return n + 16 + (i == 11 ? 24 : 28);
        case 13: case 14:
                hdr(p, 16 + 1, SAVD_FRAME_PAGES, 0, 0);
                put_le32(q + 4, i == 13 ? 0 : 257);
                return n + 16 + 17;
        case 15:
                hdr(p, 16 + 1, SAVD_FRAME_PAGES, 0, 0);
                put_le32(q + 4, 3); q[16] = 0x0f;
                return n + 16 + 17;
        case 16:
                hdr(p, 16 + 1 + PAGE, SAVD_FRAME_PAGES, 0, 0);
                put_le32(q + 4, 3); q[16] = 0x01;
                return n + 16 + 17;
        case 17: return n + hdr(p, 2000000, SAVD_FRAME_PAGES, 0, 0);
        case 18: return n + hdr(p, 1001, SAVD_FRAME_DEVICE_STATE, 0, 0);
        case 19: hdr(p, 16, SAVD_FRAME_DIRTY, 0, 1); put_le64(q + 8, 4); return n + 32;
        case 20: return n + hdr(p, 4, SAVD_FRAME_START, 0, 0);
        case 21: hdr(p, 76, SAVD_FRAME_REPLY, 0, 0); put_le16(q + 2, 9); return n + 16 + 76;
        case 22: hdr(p, 24, SAVD_FRAME_HELLO, 0, 0); put_le16(q + 18, 1); return n + 40;
        case 23:
                hdr(p, 16 + 1, SAVD_FRAME_PAGES, 0, 0);
                put_le32(q + 4, 1); put_le64(q + 8, 1ULL << 40);
                return n + 16 + 17;
        default: return 0;
        }
}

START_TEST(test_frames_bad)
{
        static uint8_t b[8192];
        size_t len = build_bad(_i, b);
        struct dlog *l = calloc(1, sizeof(*l));
        struct native_decoder d;
        struct native_msg m;
        size_t used;

        ck_assert_uint_gt(len, 0);
        for (int step = 0; step <= 1; step++) {
                native_decoder_init(&d, 1000);
                decode_pieces(b, len, step, 0, 1000, l);
                ck_assert_int_eq(l->last, bad_frames[_i].err);
                ck_assert_uint_eq(l->frames, 1);        /* the valid START */
        }
        /* The message, and the decoder stays failed. */
        native_decoder_init(&d, 1000);
        ck_assert_int_eq(native_decode(&d, b, len, &used, &m), NATIVE_FRAME);
        int r = native_decode(&d, b + used, len - used, &used, &m);
        ck_assert_int_eq(r, bad_frames[_i].err);
        CHECK(strstr(native_decoder_error(&d), bad_frames[_i].msg), "case %d: '%s' lacks '%s'",
              _i, native_decoder_error(&d), bad_frames[_i].msg);
        CHECK(strstr(native_decoder_error(&d), "frame at byte 16"), "offset: %s",
              native_decoder_error(&d));
        ck_assert_int_eq(native_decode(&d, b, len, &used, &m), bad_frames[_i].err);
        ck_assert_uint_eq(used, 0);
        free(l);
}
END_TEST

/* Encoders refuse what the decoder would refuse. */
START_TEST(test_frames_encoder_limits)
{
        uint8_t f[NATIVE_HEAD_MAX];
        char name[SAVD_NATIVE_VM_NAME_MAX + 2];

        memset(name, 'n', sizeof(name));
        ck_assert_uint_eq(native_encode_hello(f, 0, 0, name, SAVD_NATIVE_VM_NAME_MAX + 1), 0);
        ck_assert_uint_gt(native_encode_hello(f, 0, 0, name, SAVD_NATIVE_VM_NAME_MAX), 0);
        ck_assert_uint_eq(native_encode_block(f, MIB, 0, name, 0, false), 0);
        ck_assert_uint_eq(native_encode_block(f, MIB, 0, name, SAVD_NATIVE_BLOCK_NAME_MAX + 1, false), 0);
        ck_assert_uint_eq(native_encode_pages(f, 0, 0, 0, NULL), 0);
        ck_assert_uint_eq(native_encode_pages(f, 0, 0, SAVD_NATIVE_MAX_PAGES + 1, NULL), 0);
        ck_assert_uint_eq(native_encode_device_state(f, SAVD_NATIVE_MAX_DEVICE_STATE + 1), 0);
        ck_assert_uint_eq(native_encode_empty(f, SAVD_FRAME_PAGES, 0), 0);
        ck_assert_uint_eq(native_encode_reply(f, 1, NULL, name, SAVD_NATIVE_TEXT_MAX + 1), 0);
        /* An over-long error text is cut, not refused. */
        char big[SAVD_NATIVE_TEXT_MAX + 100];
        memset(big, 'e', sizeof(big));
        ck_assert_uint_eq(native_encode_error(f, 5, big, sizeof(big)),
                          SAVD_FRAME_HEADER_SIZE + sizeof(struct savd_error) + SAVD_NATIVE_TEXT_MAX);
}
END_TEST

/* Random bytes and mutated valid streams, fed in random pieces: the
 * decoder ends failed or between frames, never crashes or stalls. */
START_TEST(test_frames_garbage)
{
        static struct sbuf s;
        static uint8_t buf[STREAM_MAX];
        uint64_t seed = 12345;
        unsigned failed = 0, frames = 0;

        build_stream(&s);
        for (unsigned iter = 0; iter < 3000; iter++) {
                struct native_decoder d;
                struct native_msg m;
                size_t len, pos = 0;

                if (iter % 2) {
                        len = 1 + xorshift(&seed) % 600;
                        for (size_t i = 0; i < len; i++)
                                buf[i] = (uint8_t)xorshift(&seed);
                        /* sometimes a plausible header to get further */
                        if (iter % 4 == 1 && len >= 16)
                                memcpy(buf, s.p, 16);
                } else {
                        len = s.len;
                        memcpy(buf, s.p, len);
                        for (unsigned k = 0; k < 1 + iter % 3; k++)
                                buf[xorshift(&seed) % len] ^= (uint8_t)(1 + xorshift(&seed) % 255);
                }
                native_decoder_init(&d, xorshift(&seed) % (2 * MIB));
                while (pos < len) {
                        size_t used, n = 1 + xorshift(&seed) % 64;
                        int r = native_decode(&d, buf + pos, MIN(n, len - pos), &used, &m);

                        if (r < 0) {
                                failed++;
                                ck_assert_str_ne(native_decoder_error(&d), "");
                                break;
                        }
                        frames += r == NATIVE_FRAME;
                        CHECK(used > 0 || r == NATIVE_FRAME, "no progress (r=%d)", r);
                        pos += used;
                }
        }
        /* Both outcomes happen: this test feeds real frames, not only noise. */
        ck_assert_uint_gt(failed, 100);
        ck_assert_uint_gt(frames, 1000);
}
END_TEST

/* =====================================================================
 * File record, zero pages, memory nodes
 * ===================================================================== */

START_TEST(test_crc32c)
{
        static uint8_t big[100000];

        ck_assert_uint_eq(native_crc32c(0, "123456789", 9), 0xe3069283U);
        ck_assert_uint_eq(native_crc32c(0, "", 0), 0);
        /* continuing in pieces gives the same value */
        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t)(i * 7 + 3);
        uint32_t whole = native_crc32c(0, big, sizeof(big));
        uint32_t c = native_crc32c(0, big, 13);
        c = native_crc32c(c, big + 13, 4000);
        c = native_crc32c(c, big + 4013, sizeof(big) - 4013);
        ck_assert_uint_eq(c, whole);
}
END_TEST

START_TEST(test_native_vmdesc)
{
        char *json = NULL;
        size_t len = 0;
        struct json_object *o, *n, *ds, *x;
        uint8_t h[NATIVE_DEV_HEADER_SIZE];

        ck_assert_int_eq(native_vmdesc_json(0x1234, 77, 0xdeadbeef, 11, &json, &len), 0);
        o = json_tokener_parse(json);
        ck_assert_ptr_nonnull(o);
        ck_assert(json_object_object_get_ex(o, "configuration", &x));
        ck_assert(json_object_object_get_ex(o, "devices", &x));
        ck_assert_uint_eq(json_object_array_length(x), 1);
        ck_assert(json_object_object_get_ex(o, NATIVE_JSON_KEY, &n));
        ck_assert(json_object_object_get_ex(n, "device-state", &ds));
        ck_assert(json_object_object_get_ex(ds, "offset", &x));
        ck_assert_uint_eq(json_object_get_uint64(x), 0x1234);
        ck_assert(json_object_object_get_ex(ds, "crc32c", &x));
        ck_assert_uint_eq(json_object_get_uint64(x), 0xdeadbeef);
        json_object_put(o);
        free(json);
        /* 0x04, be32 2, counted idstr, be32 0, be32 1, be64 77 */
        ck_assert_uint_eq(native_encode_dev_header(h, 77), NATIVE_DEV_HEADER_SIZE);
        ck_assert_uint_eq(h[0], 0x04);
        ck_assert_uint_eq(get_be32(h + 1), NATIVE_DEV_SECTION_ID);
        ck_assert_uint_eq(h[5], strlen(NATIVE_DEV_IDSTR));
        ck_assert_uint_eq(get_be32(h + 6 + h[5] + 4), NATIVE_DEV_VERSION);
        ck_assert_uint_eq(get_be64(h + 6 + h[5] + 8), 77);
}
END_TEST

START_TEST(test_zero_page)
{
        uint8_t *p = aligned_alloc(4096, PAGE);
        uint64_t s = 99;

        memset(p, 0, PAGE);
        ck_assert(zero_page(p));
        ck_assert(zero_page_scalar(p));
        for (size_t i = 0; i < PAGE; i++) {
                p[i] = (uint8_t)(1 + xorshift(&s) % 255);
                CHECK(!zero_page(p), "byte %zu non-zero not seen", i);
                p[i] = 0;
        }
        for (unsigned k = 0; k < 200; k++) {
                for (size_t i = 0; i < PAGE; i++)
                        p[i] = xorshift(&s) % 64 == 0 ? (uint8_t)xorshift(&s) : 0;
                ck_assert_int_eq(zero_page(p), zero_page_scalar(p));
        }
        free(p);
}
END_TEST

START_TEST(test_mem_node)
{
        struct mem_node m;
        int fd = savd_memfd_new("node", 64 * MIB);
        uint8_t *mem;

        ck_assert_int_ge(fd, 0);
        mem = mmap(NULL, 64 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        /* Fake topology of 2 nodes on this one-node machine: stripes. */
        ck_assert_int_eq(mem_node_init(&m, 2), 0);
        ck_assert_uint_eq(mem_node_count(&m), 2);
        ck_assert_int_eq(mem_node_of(&m, mem, 0), 0);
        ck_assert_int_eq(mem_node_of(&m, mem, MEM_NODE_FAKE_STRIPE - PAGE), 0);
        ck_assert_int_eq(mem_node_of(&m, mem, MEM_NODE_FAKE_STRIPE), 1);
        ck_assert_int_eq(mem_node_of(&m, mem, 2 * MEM_NODE_FAKE_STRIPE), 0);
        ck_assert_int_eq(mem_node_init(&m, 3), 0);
        ck_assert_int_eq(mem_node_of(&m, mem, 5 * MEM_NODE_FAKE_STRIPE), 2);
        ck_assert_int_eq(mem_node_init(&m, NUMA_TOPO_MAX_NODES + 1), -E2BIG);
        /* The kernel: a page never touched is not present; a written one
         * is on a real node. */
        int untouched = mem_node_real(mem + 8 * MIB);
        mem[0] = 1;
        int touched = mem_node_real(mem);
        if (untouched != -ENOSYS) {
                ck_assert_int_eq(untouched, -ENOENT);
                ck_assert_int_ge(touched, 0);
        }
        munmap(mem, 64 * MIB);
        close(fd);
}
END_TEST

/* =====================================================================
 * Sessions
 * ===================================================================== */

struct gblock {
        char name[32];
        uint64_t size;
        int fd;
        uint8_t *mem;
        struct savd_dirty_log log;
        int index;
};

static void gblock_new(struct gblock *b, const char *name, uint64_t size)
{
        memset(b, 0, sizeof(*b));
        snprintf(b->name, sizeof(b->name), "%s", name);
        b->size = size;
        b->log.fd = -1;
        b->fd = savd_memfd_new(name, size);
        CHECK(b->fd >= 0, "memfd: %s", strerror(-b->fd));
        b->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
        CHECK(b->mem != MAP_FAILED, "mmap: %m");
}

static void gblock_free(struct gblock *b)
{
        if (b->mem)
                munmap(b->mem, b->size);
        if (b->fd >= 0)
                close(b->fd);
        if (b->log.words)
                savd_dirty_log_free(&b->log);
        memset(b, 0, sizeof(*b));
        b->fd = -1;
}

/* Pages: runs of data (random, or one byte value) and zero pages, some
 * written as zeros (present in the memfd), others left as holes. */
static void gblock_fill(struct gblock *b, uint64_t seed)
{
        uint64_t s = seed | 1, npages = b->size / PAGE;

        for (uint64_t p = 0; p < npages;) {
                uint64_t run = 1 + xorshift(&s) % 300, kind = xorshift(&s) % 4;

                for (uint64_t i = p; i < MIN(npages, p + run); i++) {
                        uint64_t *w = (uint64_t *)(b->mem + i * PAGE);

                        if (kind == 0)
                                for (unsigned k = 0; k < PAGE / 8; k++)
                                        w[k] = xorshift(&s);
                        else if (kind == 1)
                                memset(w, (int)(1 + i % 251), PAGE);
                        else if (kind == 2)
                                memset(w, 0, PAGE);     /* present, but zero */
                }
                p += run;
        }
}

struct srv {
        pthread_t t;
        int fd;
        struct savd_limits lim;
        struct save_request sreq;
        struct restore_request rreq;
        atomic_bool cancelled;
        atomic_uint_fast64_t sent;
        char path[512];
        int r;
        char err[SESSION_ERR_MAX];
        bool restore;
};

static void srv_init(struct srv *s)
{
        memset(s, 0, sizeof(*s));
        s->lim = (struct savd_limits) {
                .max_blocks = 64, .max_block_size = 1ULL << 30,
                .max_inflight_bytes = 64 * MIB, .max_device_state = MIB,
        };
        s->sreq.out.fd = -1;
        s->sreq.out.writer.queue_depth = 8;
        s->sreq.out.writer.buffers_per_worker = 8;
        snprintf(s->path, sizeof(s->path), "%s", out_path);
}

static void *srv_main(void *arg)
{
        struct srv *s = arg;
        uint8_t magic[SAVD_NATIVE_MAGIC_LEN];
        ssize_t n = 0, k;

        if (s->restore) {
                s->r = native_restore_session_run(&s->rreq, s->err, sizeof(s->err));
        } else {
                /* What the daemon's sniffer does before it hands over. */
                while (n < (ssize_t)sizeof(magic) && (k = read(s->fd, magic + n, sizeof(magic) - (size_t)n)) > 0)
                        n += k;
                if (n < (ssize_t)sizeof(magic)) {
                        s->r = -EPIPE;
                        snprintf(s->err, sizeof(s->err), "no magic");
                } else
                        s->r = native_save_session_run(&s->sreq, magic, sizeof(magic), s->err,
                                                       sizeof(s->err));
        }
        close(s->fd);
        return NULL;
}

/* Start the session thread; returns the client's end of the socketpair. */
static int srv_start(struct srv *s, bool restore, const char *file)
{
        int sv[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        s->fd = sv[0];
        s->restore = restore;
        s->sreq.data_fd = s->rreq.data_fd = sv[0];
        s->sreq.limits = s->rreq.limits = &s->lim;
        s->sreq.cancelled = s->rreq.cancelled = &s->cancelled;
        s->sreq.out.path = s->path;
        s->rreq.path = file;
        s->rreq.input_fd = -1;
        s->rreq.bytes_sent = &s->sent;
        ck_assert_int_eq(pthread_create(&s->t, NULL, srv_main, s), 0);
        return sv[1];
}

static int srv_join(struct srv *s)
{
        pthread_join(s->t, NULL);
        return s->r;
}

static struct savd_client *client_for(int fd)
{
        struct savd_client *c = NULL;

        ck_assert_int_eq(savd_client_from_fd(&c, fd), 0);
        return c;
}

#define OK(c, call) do {                                                \
                int _r = (call);                                        \
                CHECK(_r >= 0, "%s: %s (%s)", #call, strerror(-_r),      \
                      savd_client_error(c));                            \
        } while (0)

/* ---- save and restore helpers ----------------------------------------------- */

struct save_opts {
        bool inline_pages;
        bool dirty_logs;
        unsigned fake_nodes, workers;
        enum io_mode io_mode;
};

static void register_guest(struct savd_client *c, struct gblock *g, unsigned n,
                           const struct save_opts *o)
{
        for (unsigned i = 0; i < n; i++) {
                int r = savd_save_block(c, g[i].name, g[i].size, o->inline_pages ? -1 : g[i].fd, 0);

                CHECK(r == (int)i, "block %u: %d (%s)", i, r, savd_client_error(c));
                g[i].index = r;
        }
        OK(c, savd_save_start(c));
        for (unsigned i = 0; i < n && o->dirty_logs; i++) {
                OK(c, savd_dirty_log_new(&g[i].log, g[i].size / PAGE));
                OK(c, savd_save_track_dirty(c, i, &g[i].log));
        }
}

/* Returns the NUMA node mask of the (only) pass, 0 for inline saves. */
static uint64_t save_guest(struct gblock *g, unsigned n, const struct save_opts *o,
                           const void *blob, size_t blob_len)
{
        struct srv s;
        struct savd_client *c;
        struct savd_save_result res;
        struct savd_pass_stats st = { 0 };

        srv_init(&s);
        s.sreq.out.writer.fake_nodes = o->fake_nodes;
        s.sreq.out.writer.n_workers = o->workers;
        s.sreq.out.writer.io_mode = o->io_mode;
        c = client_for(srv_start(&s, false, NULL));
        OK(c, savd_save_hello(c, "test-vm", SAVD_CAP_ALL));
        ck_assert_uint_eq(savd_client_server(c)->max_pages_per_frame, SAVD_NATIVE_MAX_PAGES);
        register_guest(c, g, n, o);
        if (o->inline_pages)
                for (unsigned i = 0; i < n; i++)
                        OK(c, savd_save_pages(c, i, 0, g[i].size / PAGE, g[i].mem));
        else {
                OK(c, savd_save_pass(c, SAVD_SCAN_FINAL, &st));
                ck_assert_uint_eq(st.pass, 1);
                ck_assert_uint_eq(st.pages_queued + st.pages_zero, st.pages_dirty);
        }
        if (blob_len)
                OK(c, savd_save_device_state(c, blob, blob_len));
        OK(c, savd_save_complete(c, &res));
        savd_client_free(c);
        CHECK(srv_join(&s) == 0, "save session: %s", s.err);
        ck_assert_str_eq(res.io_mode, s.sreq.io_mode);
        return st.node_mask;
}

static ssize_t fd_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
        ssize_t n = pread(*(int *)opaque, buf, len, (off_t)off);

        return n < 0 ? -errno : n;
}

/* The file verifies, with a native record holding blob_len bytes. */
static void verify_file(const char *path, uint64_t blob_len)
{
        struct mrm_file f;
        struct mrm_error e = { 0 };
        struct native_file_info ni;
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        CHECK(fd >= 0 && fstat(fd, &st) == 0, "open %s: %m", path);
        CHECK(mrm_read(&f, fd_pread, &fd, (uint64_t)st.st_size, &e) == 0, "read: %s at 0x%llx",
              e.msg, (unsigned long long)e.offset);
        CHECK(mrm_verify(&f, fd_pread, &fd, &e) == 0, "verify: %s", e.msg);
        ck_assert_str_eq(f.layout.machine, "test-vm");
        CHECK(native_file_info(&f, fd_pread, &fd, true, &ni, &e) == 0, "native: %s", e.msg);
        ck_assert_uint_eq(ni.blob_len, blob_len);
        ck_assert_uint_eq(ni.section_offset, f.device_offset);
        mrm_file_free(&f);
        close(fd);
}

/* Restore path into fresh memory that first holds garbage (so that
 * zero pages must really be made zero) and compare with g. */
static void restore_compare(const char *path, struct gblock *g, unsigned n, const void *blob,
                            size_t blob_len)
{
        struct srv s;
        struct savd_client *c;
        struct savd_restore_info info;
        struct savd_restore_result res;
        struct gblock r[MAX_GBLOCKS];
        void *got = NULL;
        size_t got_len = 0;

        srv_init(&s);
        c = client_for(srv_start(&s, true, path));
        OK(c, savd_restore_hello(c, &info));
        ck_assert_str_eq(info.vm_name, "test-vm");
        ck_assert_uint_eq(info.n_blocks, n);
        ck_assert_uint_eq(info.device_state_len, blob_len);
        for (unsigned i = 0; i < n; i++) {
                ck_assert_str_eq(info.blocks[i].name, g[i].name);
                ck_assert_uint_eq(info.blocks[i].length, g[i].size);
                gblock_new(&r[i], g[i].name, g[i].size);
                memset(r[i].mem, 0xa5, r[i].size);
                OK(c, savd_restore_block(c, g[i].name, r[i].fd, 0));
        }
        OK(c, savd_restore_run(c, &got, &got_len, &res));
        savd_client_free(c);
        CHECK(srv_join(&s) == 0, "restore session: %s", s.err);
        ck_assert_uint_eq(got_len, blob_len);
        CHECK(blob_len == 0 || memcmp(got, blob, blob_len) == 0, "device state differs");
        for (unsigned i = 0; i < n; i++) {
                for (uint64_t p = 0; p < g[i].size; p += PAGE)
                        CHECK(memcmp(r[i].mem + p, g[i].mem + p, PAGE) == 0,
                              "block %s page %llu differs", g[i].name,
                              (unsigned long long)(p / PAGE));
                gblock_free(&r[i]);
        }
        ck_assert_uint_eq(atomic_load(&s.sent), s.rreq.bytes_total);
        free(got);
}

/* ---- round trips -------------------------------------------------------------- */

struct rt_case {
        const char *what;
        unsigned n_blocks;
        uint64_t first_mib;
        struct save_opts o;
        size_t blob;
        uint64_t node_mask;             /* nodes whose writers got pages */
};

static const struct rt_case rt_cases[] = {
        { "inline, no fds, 3 blocks", 3, 2, { .inline_pages = true }, 3000 },
        { "one memory fd", 1, 8, { 0 }, 0, 0x1 },
        /* each block is its own memfd, all below the first 16 MiB stripe */
        { "8 memory fds + 8 dirty bitmaps, 2 fake nodes, 4 workers", 8, 2,
          { .dirty_logs = true, .fake_nodes = 2, .workers = 4 }, 65536, 0x1 },
        /* 40 and 41 MiB: stripes on fake nodes 0, 1 and 2 */
        { "2 blocks across fake-node stripes, 3 nodes, buffered", 2, 40,
          { .fake_nodes = 3, .workers = 3, .io_mode = IO_MODE_BUFFERED }, 1, 0x7 },
};

START_TEST(test_roundtrip)
{
        const struct rt_case *t = &rt_cases[_i];
        struct gblock g[MAX_GBLOCKS];
        uint8_t *blob = malloc(t->blob + 1);

        for (size_t i = 0; i < t->blob; i++)
                blob[i] = (uint8_t)(i * 31 + _i);
        for (unsigned i = 0; i < t->n_blocks; i++) {
                char name[16];

                snprintf(name, sizeof(name), "ram%u", i);
                /* odd sizes too: a block whose page count is no multiple of 64 */
                gblock_new(&g[i], name, (t->first_mib + i) * MIB + (i % 2 ? 3 * PAGE : 0));
                gblock_fill(&g[i], 1000 + i + 17 * (uint64_t)_i);
        }
        ck_assert_uint_eq(save_guest(g, t->n_blocks, &t->o, blob, t->blob), t->node_mask);
        ck_assert_uint_eq(dir_entries(), 1);            /* the file, no leftovers */
        verify_file(out_path, t->blob);
        restore_compare(out_path, g, t->n_blocks, blob, t->blob);
        for (unsigned i = 0; i < t->n_blocks; i++)
                gblock_free(&g[i]);
        free(blob);
}
END_TEST

/* ---- a live save --------------------------------------------------------------- */

struct dirtier {
        struct gblock *g;
        unsigned n;
        atomic_bool stop;
        atomic_uint_fast64_t count;
};

/* A running guest: random pages get random data, one write in four
 * zeroes the page; each write is marked after it is done. */
static void *dirtier_main(void *arg)
{
        struct dirtier *d = arg;
        struct timespec pause = { .tv_nsec = 10000 };
        uint64_t s = 777;

        while (!atomic_load(&d->stop)) {
                struct gblock *b = &d->g[xorshift(&s) % d->n];
                uint64_t page = xorshift(&s) % (b->size / PAGE);
                uint64_t *w = (uint64_t *)(b->mem + page * PAGE);

                if (xorshift(&s) % 4 == 0)
                        memset(w, 0, PAGE);
                else
                        for (unsigned k = 0; k < PAGE / 8; k++)
                                w[k] = xorshift(&s);
                savd_dirty_mark(&b->log, page);
                atomic_fetch_add(&d->count, 1);
                nanosleep(&pause, NULL);        /* a guest, not a memset loop */
        }
        return NULL;
}

/* Wait (no timing: just until it happened) for the guest to write more. */
static void wait_dirtied(struct dirtier *d, uint64_t more)
{
        uint64_t want = atomic_load(&d->count) + more;

        while (atomic_load(&d->count) < want)
                sched_yield();
}

START_TEST(test_live)
{
        static const struct save_opts o = { .dirty_logs = true, .fake_nodes = 2 };
        struct gblock g[2];
        struct dirtier d = { .g = g, .n = 2 };
        struct savd_pass_stats st;
        struct savd_save_result res;
        pthread_t t;
        struct srv s;
        struct savd_client *c;
        uint64_t total_pages;

        gblock_new(&g[0], "ram", 24 * MIB);
        gblock_new(&g[1], "vram", 4 * MIB);
        gblock_fill(&g[0], 5);
        gblock_fill(&g[1], 6);
        total_pages = (g[0].size + g[1].size) / PAGE;
        srv_init(&s);
        s.sreq.out.writer.fake_nodes = o.fake_nodes;
        c = client_for(srv_start(&s, false, NULL));
        OK(c, savd_save_hello(c, "test-vm", SAVD_CAP_ALL));
        register_guest(c, g, 2, &o);
        ck_assert_int_eq(pthread_create(&t, NULL, dirtier_main, &d), 0);
        OK(c, savd_save_pass(c, 0, &st));
        ck_assert_uint_eq(st.pages_dirty, total_pages);         /* first pass: all */
        for (unsigned pass = 2; pass <= 5; pass++) {
                wait_dirtied(&d, 200);
                OK(c, savd_save_pass(c, 0, &st));
                ck_assert_uint_eq(st.pass, pass);
                /* Only what the guest wrote since pass 1 began, and the
                 * guest did write (wait_dirtied). */
                ck_assert_uint_gt(st.pages_dirty, 0);
                ck_assert_uint_le(st.pages_dirty, atomic_load(&d.count));
                ck_assert_uint_le(st.pages_dirty, total_pages);
        }
        atomic_store(&d.stop, true);                            /* pause the VM */
        pthread_join(t, NULL);
        OK(c, savd_save_pass(c, SAVD_SCAN_FINAL, &st));
        OK(c, savd_save_device_state(c, "dev", 3));
        OK(c, savd_save_complete(c, &res));
        savd_client_free(c);
        CHECK(srv_join(&s) == 0, "save: %s", s.err);
        verify_file(out_path, 3);
        restore_compare(out_path, g, 2, "dev", 3);
        gblock_free(&g[0]);
        gblock_free(&g[1]);
}
END_TEST

/* ---- a page written, then zero ---------------------------------------------------- */

START_TEST(test_written_then_zero)
{
        static const uint64_t zeroed[] = { 5, 6, 300, 1023 };
        struct save_opts o = { .inline_pages = _i == 1, .dirty_logs = _i == 0 };
        struct gblock g;
        struct savd_pass_stats st;
        struct srv s;
        struct savd_client *c;
        struct mrm_file f;
        struct mrm_error e;
        struct stat sb;
        int fd;

        gblock_new(&g, "ram", 4 * MIB);
        memset(g.mem, 0x5a, g.size);                            /* every page data */
        srv_init(&s);
        c = client_for(srv_start(&s, false, NULL));
        OK(c, savd_save_hello(c, "test-vm", SAVD_CAP_ALL));
        register_guest(c, &g, 1, &o);
        if (o.inline_pages)
                OK(c, savd_save_pages(c, 0, 0, g.size / PAGE, g.mem));
        else
                OK(c, savd_save_pass(c, 0, &st));
        /* The guest zeroes four pages and rewrites one. */
        for (unsigned i = 0; i < ELEMENTSOF(zeroed); i++) {
                memset(g.mem + zeroed[i] * PAGE, 0, PAGE);
                if (!o.inline_pages)
                        savd_dirty_mark(&g.log, zeroed[i]);
                else
                        OK(c, savd_save_pages(c, 0, zeroed[i], 1, g.mem + zeroed[i] * PAGE));
        }
        memset(g.mem + 7 * PAGE, 0x77, PAGE);
        if (!o.inline_pages) {
                savd_dirty_mark(&g.log, 7);
                OK(c, savd_save_pass(c, SAVD_SCAN_FINAL, &st));
                ck_assert_uint_eq(st.pages_dirty, 5);
                ck_assert_uint_eq(st.pages_zero, 4);
                ck_assert_uint_eq(st.pages_queued, 1);
        } else
                OK(c, savd_save_pages(c, 0, 7, 1, g.mem + 7 * PAGE));
        OK(c, savd_save_complete(c, NULL));
        savd_client_free(c);
        CHECK(srv_join(&s) == 0, "save: %s", s.err);
        /* The file's bitmap says: four zero pages. */
        fd = open(out_path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &sb), 0);
        ck_assert_int_eq(mrm_read(&f, fd_pread, &fd, (uint64_t)sb.st_size, &e), 0);
        ck_assert_int_eq(mrm_verify(&f, fd_pread, &fd, &e), 0);
        ck_assert_uint_eq(f.pages_zero, ELEMENTSOF(zeroed));
        ck_assert_uint_eq(f.pages_present, g.size / PAGE - ELEMENTSOF(zeroed));
        mrm_file_free(&f);
        close(fd);
        restore_compare(out_path, &g, 1, NULL, 0);
        gblock_free(&g);
}
END_TEST

/* ---- refusals ----------------------------------------------------------------------- */

static void raw_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds)
{
        union {
                char b[CMSG_SPACE(sizeof(int) * 8)];
                struct cmsghdr align;
        } cbuf;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (nfds) {
                struct cmsghdr *cm;

                memset(&cbuf, 0, sizeof(cbuf));
                mh.msg_control = cbuf.b;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        /* Errors are fine: savd may have hung up already. */
        (void)sendmsg(fd, &mh, MSG_NOSIGNAL);
}

static void raw_hello(int fd, uint16_t flags, uint32_t version, uint32_t page_size, uint64_t caps)
{
        uint8_t f[SAVD_NATIVE_MAGIC_LEN + NATIVE_HEAD_MAX];
        size_t n = native_encode_hello(f + 8, flags, caps, "vm", 2);

        memcpy(f, SAVD_NATIVE_MAGIC, 8);
        put_le32(f + 8 + 16, version);
        put_le32(f + 8 + 20, page_size);
        raw_send(fd, f, 8 + n, NULL, 0);
}

/* Read frames until an ERROR (its text into out) or the end. */
static void raw_read_error(int fd, char *out, size_t outlen)
{
        static uint8_t buf[65536];
        struct native_decoder d;
        struct native_msg m;
        ssize_t n;

        out[0] = '\0';
        native_decoder_init(&d, SAVD_NATIVE_MAX_DEVICE_STATE);
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                for (size_t pos = 0; pos < (size_t)n;) {
                        size_t used;
                        int r = native_decode(&d, buf + pos, (size_t)n - pos, &used, &m);

                        pos += used;
                        if (r < 0)
                                return;
                        if (r == NATIVE_FRAME && m.type == SAVD_FRAME_ERROR) {
                                snprintf(out, outlen, "%s", m.u.error.text);
                                return;
                        }
                }
}

static void raw_frame(int fd, size_t n, const uint8_t *f, const int *fds, unsigned nfds)
{
        raw_send(fd, f, n, fds, nfds);
}

/* Read until `count` frames (replies) arrived. */
static void raw_read_frames(int fd, unsigned count)
{
        struct native_decoder d;
        struct native_msg m;
        uint8_t b;

        native_decoder_init(&d, 0);
        while (count > 0 && read(fd, &b, 1) == 1) {
                size_t used;

                if (native_decode(&d, &b, 1, &used, &m) == NATIVE_FRAME)
                        count--;
        }
}

enum { RAW = 1 };       /* the case speaks raw frames */

struct save_refusal {
        const char *msg;
        unsigned max_blocks;
        uint64_t max_block_size, max_device_state;
};

static const struct save_refusal save_refusals[] = {
        { "expected HELLO first, got START" },
        { "page size 8192 is not supported" },
        { "protocol version 0 is not supported" },
        { "belongs to a save job, but the client asked to restore" },
        { "a VM name is required" },
        { "more than 2 blocks", .max_blocks = 2 },
        { "exceeds the limit of 0x100000", .max_block_size = MIB },
        { "block 'a' is registered twice" },
        { "START without any BLOCK" },
        { "PAGES is not allowed before START" },
        { "PAGES for block 5: no such block" },
        { "are outside block 'a'" },
        { "DEVICE_STATE of 5000 bytes exceeds the limit of 4096", .max_device_state = 4096 },
        { "DEVICE_STATE sent twice" },
        { "COMPLETE before the final pass" },
        { "SCAN is not allowed after the final SCAN" },
        { "unknown frame type 0x0077" },
        { "BLOCK announces 1 descriptors, 0 arrived" },
        { "descriptor data was truncated" },
        { "is not a memfd or regular file" },
        { "less than offset 0x0 + length 0x200000" },
        { "DIRTY for block 0: the block has no memory fd" },
        { "descriptors arrived that no frame announced" },
        { "closed the data channel" },
        { "a client does not send REPLY frames" },
        { "BLOCK with a memory fd needs a capability" },
        { "is not open for reading" },
        { "became inaccessible during the scan (SIGBUS)" },
        { "expected 0 or 1" },
        { "more than 4 descriptors sent ahead of the frames that use them" },
};

static int memfd_of(uint64_t size)
{
        int fd = savd_memfd_new("t", size);

        ck_assert_int_ge(fd, 0);
        return fd;
}

/* Cases that go through libsavd; the failing call's error is returned. */
static void refuse_with_client(int i, int fd, char *cerr, size_t n)
{
        struct savd_client *c = client_for(fd);
        struct savd_restore_info info;
        struct savd_dirty_log log = { .fd = -1 };
        static uint8_t page[2 * PAGE];
        int mfd = -1, r = 0, p[2] = { -1, -1 };

        memset(page, 1, sizeof(page));
        if (i == 3)
                r = savd_restore_hello(c, &info);
        else
                r = savd_save_hello(c, i == 4 ? "" : "vm", i == 25 ? SAVD_CAP_INLINE : SAVD_CAP_ALL);
        switch (i) {
        case 3: case 4:
                break;
        case 5: for (int k = 0; r >= 0 && k < 3; k++) r = savd_save_block(c, k ? (k == 1 ? "b" : "c") : "a", MIB, -1, 0); break;
        case 6: r = r < 0 ? r : savd_save_block(c, "a", 2 * MIB, -1, 0); break;
        case 7: if (r >= 0) r = savd_save_block(c, "a", MIB, -1, 0);
                if (r >= 0) r = savd_save_block(c, "a", MIB, -1, 0);
                break;
        case 8: if (r >= 0) r = savd_save_start(c);
        break;
        case 9: if (r >= 0) r = savd_save_block(c, "a", MIB, -1, 0);
                if (r >= 0) r = savd_save_pages(c, 0, 0, 1, page);
                if (r >= 0) r = savd_save_start(c);
                break;
        case 10: case 11: case 12: case 13: case 14: case 15:
                mfd = memfd_of(MIB);
                if (r >= 0) r = savd_save_block(c, "a", MIB, i == 14 || i == 15 ? mfd : -1, 0);
                if (r >= 0) r = savd_save_start(c);
                if (r >= 0 && i == 10) r = savd_save_pages(c, 5, 0, 1, page);
                if (r >= 0 && i == 11) r = savd_save_pages(c, 0, 255, 2, page);
                if (r >= 0 && i == 12) {
                        static uint8_t big[5000];
                        r = savd_save_device_state(c, big, sizeof(big));
                }
                if (r >= 0 && i == 13) r = savd_save_device_state(c, page, 10);
                if (r >= 0 && i == 13) r = savd_save_device_state(c, page, 10);
                if (r >= 0 && i == 15) r = savd_save_pass(c, SAVD_SCAN_FINAL, NULL);
                if (r >= 0 && i == 15) r = savd_save_pass(c, 0, NULL);
                if (r >= 0) r = savd_save_complete(c, NULL);
                break;
        case 19: ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                if (r >= 0) r = savd_save_block(c, "a", MIB, p[0], 0);
                break;
        case 20: mfd = memfd_of(MIB);
                if (r >= 0) r = savd_save_block(c, "a", 2 * MIB, mfd, 0);
                break;
        case 21: if (r >= 0) r = savd_save_block(c, "a", MIB, -1, 0);
                if (r >= 0) r = savd_save_start(c);
                if (r >= 0) r = savd_dirty_log_new(&log, MIB / PAGE);
                if (r >= 0) r = savd_save_track_dirty(c, 0, &log);
                break;
        case 25: mfd = memfd_of(MIB);
                if (r >= 0) r = savd_save_block(c, "a", MIB, mfd, 0);
                break;
        case 26: { char proc[64];
                mfd = memfd_of(MIB);
                snprintf(proc, sizeof(proc), "/proc/self/fd/%d", mfd);
                p[0] = open(proc, O_WRONLY | O_CLOEXEC);
                if (r >= 0) r = savd_save_block(c, "a", MIB, p[0], 0); }
                break;
        case 27: /* a dirty bitmap cut short under savd */
                mfd = memfd_of(MIB);
                log.fd = memfd_create("unsealed", MFD_CLOEXEC);
                ck_assert_int_eq(ftruncate(log.fd, 4096), 0);
                if (r >= 0) r = savd_save_block(c, "a", MIB, mfd, 0);
                if (r >= 0) r = savd_save_start(c);
                if (r >= 0) r = savd_save_track_dirty(c, 0, &log);
                ck_assert_int_eq(ftruncate(log.fd, 0), 0);
                if (r >= 0) r = savd_save_pass(c, 0, NULL);
                break;
        default: ck_abort_msg("case %d", i);
        }
        ck_assert_int_lt(r, 0);
        snprintf(cerr, n, "%s", savd_client_error(c));
        savd_client_free(c);
        if (mfd >= 0) close(mfd);
        if (p[0] >= 0) close(p[0]);
        if (p[1] >= 0) close(p[1]);
        if (i == 27) close(log.fd);
        else if (log.words) savd_dirty_log_free(&log);
}

/* Cases that need frames libsavd would never send. */
static void refuse_raw(int i, int fd, char *cerr, size_t n)
{
        uint8_t f[NATIVE_HEAD_MAX + PAGE];
        int fds[5], mfd = memfd_of(MIB);

        for (unsigned k = 0; k < 5; k++)
                fds[k] = mfd;
        if (i == 0) {
                raw_send(fd, SAVD_NATIVE_MAGIC, 8, NULL, 0);
                raw_frame(fd, native_encode_empty(f, SAVD_FRAME_START, 0), f, NULL, 0);
        } else
                raw_hello(fd, 0, i == 2 ? 0 : 1, i == 1 ? 8192 : PAGE, SAVD_CAP_ALL);
        switch (i) {
        case 0: case 1: case 2: break;
        case 16: hdr(f, 0, 0x77, 0, 0); raw_frame(fd, 16, f, NULL, 0); break;
        case 17: raw_frame(fd, native_encode_block(f, MIB, 0, "a", 1, true), f, NULL, 0); break;
        case 18: raw_frame(fd, native_encode_block(f, MIB, 0, "a", 1, true), f, fds, 5); break;
        case 22: raw_frame(fd, native_encode_block(f, MIB, 0, "a", 1, false), f, NULL, 0);
                raw_frame(fd, native_encode_empty(f, SAVD_FRAME_START, 0), f, fds, 1);
                raw_frame(fd, native_encode_empty(f, SAVD_FRAME_COMPLETE, 0), f, NULL, 0);
                break;
        case 23: raw_frame(fd, native_encode_block(f, MIB, 0, "a", 1, false), f, NULL, 0);
                raw_frame(fd, native_encode_empty(f, SAVD_FRAME_START, 0), f, NULL, 0);
                memset(f + 64, 3, PAGE);
                raw_frame(fd, native_encode_pages(f, 0, 0, 2, NULL), f, NULL, 0);
                raw_frame(fd, PAGE, f + 64, NULL, 0);  /* one page of two, then hang up */
                close(mfd);
                close(fd);
                cerr[0] = '\0';
                return;
        case 24: raw_frame(fd, native_encode_reply(f, 1, NULL, "", 0), f, NULL, 0); break;
        case 28: hdr(f, 30, SAVD_FRAME_BLOCK, 0, 3); raw_frame(fd, 16, f, NULL, 0); break;
        case 29: /* 4 stray descriptors wait in the queue; one more is too many */
                raw_frame(fd, native_encode_block(f, MIB, 0, "a", 1, false), f, fds, 4);
                raw_read_frames(fd, 2);         /* HELLO and BLOCK replies */
                raw_frame(fd, native_encode_block(f, MIB, 0, "b", 1, false), f, fds, 1);
                break;
        default: ck_abort_msg("case %d", i);
        }
        raw_read_error(fd, cerr, n);
        close(mfd);
        close(fd);
}

static bool is_raw_case(int i)
{
        return i <= 2 || i == 16 || i == 17 || i == 18 || i == 22 || i == 23 || i == 24 ||
               i >= 28;
}

START_TEST(test_save_refusals)
{
        const struct save_refusal *t = &save_refusals[_i];
        char cerr[SAVD_NATIVE_TEXT_MAX + 64];
        struct srv s;
        int fd;

        srv_init(&s);
        if (t->max_blocks)
                s.lim.max_blocks = t->max_blocks;
        if (t->max_block_size)
                s.lim.max_block_size = t->max_block_size;
        if (t->max_device_state)
                s.lim.max_device_state = t->max_device_state;
        fd = srv_start(&s, false, NULL);
        if (is_raw_case(_i))
                refuse_raw(_i, fd, cerr, sizeof(cerr));
        else
                refuse_with_client(_i, fd, cerr, sizeof(cerr));
        ck_assert_int_lt(srv_join(&s), 0);
        CHECK(strstr(s.err, t->msg), "case %d: session error '%s' lacks '%s'", _i, s.err, t->msg);
        /* The client was told the same (it hung up itself in case 23). */
        if (_i != 23)
                CHECK(strstr(cerr, t->msg), "case %d: client saw '%s', not '%s'", _i, cerr, t->msg);
        ck_assert_uint_eq(dir_entries(), 0);            /* no file, no temporary file */
}
END_TEST

START_TEST(test_save_cancel)
{
        struct srv s;
        struct savd_client *c;

        srv_init(&s);
        c = client_for(srv_start(&s, false, NULL));
        OK(c, savd_save_hello(c, "vm", SAVD_CAP_ALL));
        ck_assert_int_eq(savd_save_block(c, "a", MIB, -1, 0), 0);
        OK(c, savd_save_start(c));
        ck_assert_uint_eq(dir_entries(), 1);            /* the temporary file */
        /* What job-cancel does: flag, then shut the channel down. */
        atomic_store(&s.cancelled, true);
        shutdown(s.fd, SHUT_RDWR);
        ck_assert_int_eq(srv_join(&s), -ECANCELED);
        ck_assert_str_eq(s.err, "cancelled");
        ck_assert_uint_eq(dir_entries(), 0);
        savd_client_free(c);
}
END_TEST

/* The SIGBUS guard itself: reading memory of a file cut short. */
START_TEST(test_sigbus_guard)
{
        int fd = memfd_create("cut", MFD_CLOEXEC);
        volatile uint8_t *p;
        sigjmp_buf jb;
        volatile int hit = 0;

        ck_assert_int_eq(ftruncate(fd, 2 * PAGE), 0);
        p = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne((void *)p, MAP_FAILED);
        ck_assert_int_eq(ftruncate(fd, 0), 0);
        if (sigsetjmp(jb, 0) == 0) {
                native_bus_arm(&jb);
                (void)p[PAGE];
                native_bus_disarm();
        } else
                hit = 1;
        native_bus_disarm();
        ck_assert_int_eq(hit, 1);
        /* and a second time (the handler is not left blocked), even from
         * a thread that had blocked SIGBUS */
        sigset_t bus;
        sigemptyset(&bus);
        sigaddset(&bus, SIGBUS);
        pthread_sigmask(SIG_BLOCK, &bus, NULL);
        hit = 0;
        if (sigsetjmp(jb, 0) == 0) {
                native_bus_arm(&jb);
                (void)p[0];
                native_bus_disarm();
        } else
                hit = 1;
        ck_assert_int_eq(hit, 1);
        munmap((void *)p, 2 * PAGE);
        close(fd);
}
END_TEST

/* ---- restore refusals and QEMU's own file ------------------------------------------ */

static void make_native_file(struct gblock *g)
{
        static const struct save_opts o = { .inline_pages = true };

        gblock_new(&g[0], "a", MIB);
        gblock_new(&g[1], "b", 2 * MIB);
        gblock_fill(&g[0], 1);
        gblock_fill(&g[1], 2);
        save_guest(g, 2, &o, "blob", 4);
}

static const char *const restore_refusals[] = {
        "belongs to a restore job, but the client asked to save",
        "the file has no block 'nope'",
        "block 'a' is 0x100000 bytes in the file, the client has 0x200000",
        "START before the memory of block 'b' was given",
        "BLOCK 'a' without a memory fd",
        "is not open for reading and writing",
        "the device state does not match its CRC-32C",
        "block 'a' given twice",
        "'",                    /* a cut file: mrm-input names it */
};

START_TEST(test_restore_refusals)
{
        struct gblock g[2];
        struct srv s;
        struct savd_client *c;
        struct savd_restore_info info;
        uint8_t f[NATIVE_HEAD_MAX];
        char cerr[SAVD_NATIVE_TEXT_MAX + 64] = "";
        void *blob = NULL;
        size_t len = 0;
        int fd, raw, mfd, r = 0;

        make_native_file(g);
        if (_i == 6 || _i == 8) {
                /* corrupt the blob ("blob" is right before the section
                 * footer), or cut the file in half */
                struct stat st;
                int ffd = open(out_path, O_RDWR | O_CLOEXEC);

                ck_assert_int_ge(ffd, 0);
                ck_assert_int_eq(fstat(ffd, &st), 0);
                if (_i == 8)
                        ck_assert_int_eq(ftruncate(ffd, st.st_size / 2), 0);
                else {
                        struct mrm_file mf;
                        struct mrm_error e;
                        struct native_file_info ni;

                        ck_assert_int_eq(mrm_read(&mf, fd_pread, &ffd, (uint64_t)st.st_size, &e), 0);
                        ck_assert_int_eq(native_file_info(&mf, fd_pread, &ffd, true, &ni, &e), 0);
                        ck_assert_int_eq(pwrite(ffd, "X", 1, (off_t)ni.blob_offset), 1);
                        ck_assert_int_eq(native_file_info(&mf, fd_pread, &ffd, true, &ni, &e), -EBADMSG);
                        mrm_file_free(&mf);
                }
                close(ffd);
        }
        srv_init(&s);
        fd = srv_start(&s, true, out_path);
        raw = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        c = client_for(fd);
        mfd = memfd_of(2 * MIB);
        if (_i == 0)
                r = savd_save_hello(c, "vm", SAVD_CAP_ALL);
        else
                r = savd_restore_hello(c, &info);
        switch (_i) {
        case 1: raw_frame(raw, native_encode_block(f, MIB, 0, "nope", 4, true), f, &mfd, 1); break;
        case 2: raw_frame(raw, native_encode_block(f, 2 * MIB, 0, "a", 1, true), f, &mfd, 1); break;
        case 3: if (r >= 0) r = savd_restore_block(c, "a", mfd, 0);
                if (r >= 0) r = savd_restore_run(c, &blob, &len, NULL);
                break;
        case 4: raw_frame(raw, native_encode_block(f, MIB, 0, "a", 1, false), f, NULL, 0); break;
        case 5: { char proc[64];
                snprintf(proc, sizeof(proc), "/proc/self/fd/%d", mfd);
                int ro = open(proc, O_RDONLY | O_CLOEXEC);
                if (r >= 0) r = savd_restore_block(c, "a", ro, 0);
                close(ro); break; }
        case 6: break;
        case 7: if (r >= 0) r = savd_restore_block(c, "a", mfd, 0);
                if (r >= 0) r = savd_restore_block(c, "a", mfd, 0);
                break;
        case 8: break;
        default: break;
        }
        if (_i == 1 || _i == 2 || _i == 4)
                r = savd_restore_run(c, &blob, &len, NULL);
        ck_assert_int_lt(r, 0);
        snprintf(cerr, sizeof(cerr), "%s", savd_client_error(c));
        savd_client_free(c);
        close(raw);
        close(mfd);
        ck_assert_int_lt(srv_join(&s), 0);
        CHECK(strstr(s.err, restore_refusals[_i]), "case %d: '%s' lacks '%s'", _i, s.err,
              restore_refusals[_i]);
        CHECK(strstr(cerr, restore_refusals[_i]), "case %d: client saw '%s'", _i, cerr);
        free(blob);
        gblock_free(&g[0]);
        gblock_free(&g[1]);
}
END_TEST

/* QEMU 10.2's mapped-ram file of the reference guest restores into native
 * memory: block m0 holds the README's page pattern; no device state. */
START_TEST(test_restore_qemu_file)
{
        char path[512];
        struct srv s;
        struct savd_client *c;
        struct savd_restore_info info;
        struct savd_restore_result res;
        struct gblock g[MAX_GBLOCKS];
        void *blob = NULL;
        size_t len = 1;
        int m0 = -1;

        snprintf(path, sizeof(path), "%s", testdata_path("q10-mapped-ram.mrm"));
        srv_init(&s);
        c = client_for(srv_start(&s, true, path));
        OK(c, savd_restore_hello(c, &info));
        ck_assert_uint_eq(info.device_state_len, 0);
        ck_assert_uint_le(info.n_blocks, MAX_GBLOCKS);
        for (unsigned i = 0; i < info.n_blocks; i++) {
                gblock_new(&g[i], info.blocks[i].name, info.blocks[i].length);
                memset(g[i].mem, 0xee, g[i].size);
                OK(c, savd_restore_block(c, info.blocks[i].name, g[i].fd, 0));
                if (strcmp(info.blocks[i].name, "m0") == 0)
                        m0 = (int)i;
        }
        OK(c, savd_restore_run(c, &blob, &len, &res));
        savd_client_free(c);
        CHECK(srv_join(&s) == 0, "restore: %s", s.err);
        ck_assert_uint_eq(len, 0);
        ck_assert_int_ge(m0, 0);
        ck_assert_uint_eq(g[m0].size, 32 * MIB);
        for (uint64_t i = 0; i < 8192; i++) {
                uint8_t want = i % 3 == 0 ? (uint8_t)((i * 7 + 1) & 0xff) : 0;
                const uint8_t *p = g[m0].mem + i * PAGE;

                CHECK(p[0] == want && memcmp(p, p + 1, PAGE - 1) == 0,
                      "m0 page %llu: %02x, expected %02x everywhere", (unsigned long long)i,
                      p[0], want);
        }
        ck_assert_uint_gt(res.pages_read, 0);
        for (unsigned i = 0; i < info.n_blocks; i++)
                gblock_free(&g[i]);
}
END_TEST

static Suite *suite(bool with_data)
{
        Suite *s = suite_create("native");
        TCase *tc;

        tc = tcase_create("frames");
        tcase_add_test(tc, test_frames_pieces);
        tcase_add_test(tc, test_frames_skip_bulk);
        tcase_add_loop_test(tc, test_frames_bad, 0, ELEMENTSOF(bad_frames));
        tcase_add_test(tc, test_frames_encoder_limits);
        tcase_add_test(tc, test_frames_garbage);
        suite_add_tcase(s, tc);

        tc = tcase_create("file-memory");
        tcase_add_test(tc, test_crc32c);
        tcase_add_test(tc, test_native_vmdesc);
        tcase_add_test(tc, test_zero_page);
        tcase_add_test(tc, test_mem_node);
        tcase_add_test(tc, test_sigbus_guard);
        suite_add_tcase(s, tc);

        tc = tcase_create("sessions");
        tcase_add_checked_fixture(tc, setup_workdir, teardown_workdir);
        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, test_roundtrip, 0, ELEMENTSOF(rt_cases));
        tcase_add_test(tc, test_live);
        tcase_add_loop_test(tc, test_written_then_zero, 0, 2);
        tcase_add_loop_test(tc, test_save_refusals, 0, ELEMENTSOF(save_refusals));
        tcase_add_test(tc, test_save_cancel);
        tcase_add_loop_test(tc, test_restore_refusals, 0, ELEMENTSOF(restore_refusals));
        if (with_data)
                tcase_add_test(tc, test_restore_qemu_file);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        bool with_data = testdata_usable("q10-mapped-ram.mrm", "the QEMU file case is not run");

        return test_run_suite(suite(with_data), with_data);
}
