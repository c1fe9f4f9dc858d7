/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the native frame decoder (proto/native.h).
 *
 * Input: four chunk sizes (0 = "the rest"), one byte of options (bit 0:
 * the caller takes bulk data itself and reports it with
 * native_decoder_skip_bulk(), as the zero-copy session does; bits 1-7:
 * the DEVICE_STATE limit, 1 KiB << (value % 21)), then the frames a client sends
 * after the magic.  The frames are decoded once in one piece and once in
 * chunks of those sizes (each in a heap buffer of exactly its size); both
 * must yield the same frames, the same bulk bytes and the same verdict.
 * Every frame is checked against the limits the decoder promises.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "native.h"

#define CHUNK_SIZES     4U
#define PREFIX_SIZE     (CHUNK_SIZES + 1U)
#define OPT_SKIP_BULK   0x01

struct outcome {
        uint64_t frames;        /* FNV-1a over every frame */
        uint64_t bulk;          /* FNV-1a over the bulk bytes */
        uint64_t n_frames, n_bulk;
        int result;             /* 0 or the decoder's -errno */
        char error[NATIVE_ERR_MAX];
};

#define FNV_VAL(h, v) ((h) = fnv((h), &(v), sizeof(v)))

static void check_name(const char *name, size_t len, size_t max)
{
        require(len <= max && name[len] == '\0' && strlen(name) == len);
}

/* Fold the parsed part of a frame into h, checking it on the way. */
static uint64_t frame_digest(uint64_t h, const struct native_msg *m, uint64_t max_dev)
{
        FNV_VAL(h, m->type);
        FNV_VAL(h, m->flags);
        FNV_VAL(h, m->nfds);
        FNV_VAL(h, m->length);
        FNV_VAL(h, m->bulk);
        require(m->bulk <= m->length && m->nfds <= SAVD_NATIVE_MAX_FDS);
        switch (m->type) {
        case SAVD_FRAME_HELLO:
                check_name(m->u.hello.name, m->u.hello.name_len, SAVD_NATIVE_VM_NAME_MAX);
                require(m->bulk == 0);
                h = fnv(h, &m->u.hello.caps, sizeof(m->u.hello.caps));
                h = fnv(h, m->u.hello.name, m->u.hello.name_len);
                break;
        case SAVD_FRAME_BLOCK:
                check_name(m->u.block.name, m->u.block.name_len, SAVD_NATIVE_BLOCK_NAME_MAX);
                require(m->u.block.name_len > 0 && m->bulk == 0);
                require(m->u.block.length > 0 && m->u.block.length % SAVD_NATIVE_PAGE_SIZE == 0);
                require(m->u.block.length <= SAVD_NATIVE_MAX_BLOCK_SIZE);
                FNV_VAL(h, m->u.block.length);
                FNV_VAL(h, m->u.block.fd_offset);
                h = fnv(h, m->u.block.name, m->u.block.name_len);
                break;
        case SAVD_FRAME_DIRTY:
                require(m->nfds == 1 && m->u.dirty.offset % 8 == 0);
                FNV_VAL(h, m->u.dirty.block);
                FNV_VAL(h, m->u.dirty.offset);
                break;
        case SAVD_FRAME_PAGES: {
                const struct native_pages *p = &m->u.pages;
                uint32_t zeros = 0;
                require(p->npages >= 1 && p->npages <= SAVD_NATIVE_MAX_PAGES);
                for (uint32_t i = 0; i < p->npages; i++)
                        zeros += native_mask_test(p->zero_mask, i);
                require(p->ndata == p->npages - zeros);
                require(m->bulk == (uint64_t)p->ndata * SAVD_NATIVE_PAGE_SIZE);
                FNV_VAL(h, p->block);
                FNV_VAL(h, p->first_page);
                h = fnv(h, p->zero_mask, (p->npages + 7) / 8);
                break;
        }
        case SAVD_FRAME_DEVICE_STATE:
                require(m->bulk == m->length && m->length <= max_dev);
                break;
        case SAVD_FRAME_REPLY:
                /* text is shown, not used as a name: NUL bytes may be in it */
                require(m->u.reply.text_len <= SAVD_NATIVE_TEXT_MAX);
                require(m->u.reply.text[m->u.reply.text_len] == '\0');
                h = fnv(h, m->u.reply.value, sizeof(m->u.reply.value));
                break;
        case SAVD_FRAME_ERROR:
                require(m->u.error.text_len <= SAVD_NATIVE_TEXT_MAX);
                require(m->u.error.text[m->u.error.text_len] == '\0');
                FNV_VAL(h, m->u.error.code);
                break;
        case SAVD_FRAME_START: case SAVD_FRAME_SCAN: case SAVD_FRAME_COMPLETE:
                require(m->bulk == 0);
                break;
        default:
                require(!"unknown frame type returned");
        }
        return h;
}

/* Decode one chunk.  Returns false once the decoder failed. */
static bool feed(struct native_decoder *d, const uint8_t *buf, size_t len, bool skip,
                 struct outcome *out)
{
        while (len > 0) {
                struct native_msg m;
                size_t used = SIZE_MAX;
                uint64_t left = native_decoder_bulk_left(d);
                int k = native_decode(d, buf, len, &used, &m);

                require(used <= len);
                if (k < 0) {
                        require(native_decoder_error(d)[0]);
                        out->result = k;
                        snprintf(out->error, sizeof(out->error), "%s", native_decoder_error(d));
                        return false;
                }
                buf += used;
                len -= used;
                if (k == NATIVE_NEED_MORE) {
                        require(len == 0);
                        return true;
                }
                if (k == NATIVE_DATA) {
                        require(m.data_len > 0 && m.data_len <= left);
                        require(m.data == buf - used && used == m.data_len);
                        out->bulk = fnv(out->bulk, m.data, m.data_len);
                        out->n_bulk += m.data_len;
                        continue;
                }
                require(k == NATIVE_FRAME);
                out->frames = frame_digest(out->frames, &m, d->max_device_state);
                out->n_frames++;
                require(native_decoder_bulk_left(d) == m.bulk);
                require(native_decoder_idle(d) == (m.bulk == 0));
                if (skip && m.bulk) {
                        /* The caller reads what is there straight into its
                         * destination. */
                        size_t n = (size_t)MIN((uint64_t)len, m.bulk);
                        require(native_decoder_skip_bulk(d, n) == 0);
                        out->bulk = fnv(out->bulk, buf, n);
                        out->n_bulk += n;
                        buf += n;
                        len -= n;
                }
        }
        return true;
}

struct feeder {
        struct native_decoder *d;
        bool skip;
        struct outcome *out;
};

static bool feed_chunk(void *opaque, const uint8_t *buf, size_t len)
{
        struct feeder *f = opaque;

        return feed(f->d, buf, len, f->skip, f->out);
}

static void run(const uint8_t *data, size_t size, const uint8_t *sizes, uint8_t opts,
                struct outcome *out)
{
        struct native_decoder d;
        struct feeder f = { &d, opts & OPT_SKIP_BULK, out };

        memset(out, 0, sizeof(*out));
        native_decoder_init(&d, 1024ULL << ((opts >> 1) % 21));
        fuzz_feed_chunks(data, size, sizes, CHUNK_SIZES, &f, feed_chunk);
        require(native_decoder_skip_bulk(&d, native_decoder_bulk_left(&d) + 1) == -EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct outcome whole, split;

        if (size < PREFIX_SIZE)
                return 0;
        uint8_t opts = data[CHUNK_SIZES];
        run(data + PREFIX_SIZE, size - PREFIX_SIZE, NULL, opts, &whole);
        run(data + PREFIX_SIZE, size - PREFIX_SIZE, data, opts, &split);

        require(whole.frames == split.frames && whole.n_frames == split.n_frames);
        require(whole.bulk == split.bulk && whole.n_bulk == split.n_bulk);
        require(whole.result == split.result);
        require(strcmp(whole.error, split.error) == 0);
        return 0;
}
