/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NUMA topology for the writer pool (see numa-topo.h).  libnuma is used
 * only after numa_available() says the kernel supports it; memory is
 * mmap()ed and given a "preferred node" policy rather than a strict bind,
 * so a full node costs locality, never an allocation failure.
 */
#include "config.h"

#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "numa-topo.h"

/* Smallest region worth huge pages: one PMD page on x86-64. */
#define NUMA_TOPO_HUGE_MIN      (2U << 20)

/* libnuma prints to stderr on failed system calls by default; savd
 * reports errors itself, so keep libnuma quiet. */
void numa_warn(int number, char *where, ...)
{
}

void numa_error(char *where)
{
}

static void real_nodes(struct numa_topo *t)
{
        struct bitmask *mems;
        int max;

        t->n_real = 0;
        if (numa_available() < 0)
                return;
        mems = numa_get_mems_allowed();
        if (!mems)
                return;
        max = numa_max_node();
        for (int n = 0; n <= max && t->n_real < NUMA_TOPO_MAX_NODES; n++)
                if (numa_bitmask_isbitset(mems, (unsigned)n))
                        t->real_ids[t->n_real++] = n;
        numa_bitmask_free(mems);
}

int numa_topo_init(struct numa_topo *t, unsigned fake_nodes)
{
        memset(t, 0, sizeof(*t));
        if (fake_nodes > NUMA_TOPO_MAX_NODES)
                return -E2BIG;
        real_nodes(t);
        t->fake = fake_nodes > 0;
        t->n_nodes = t->fake ? fake_nodes : (t->n_real ? t->n_real : 1);
        return 0;
}

int numa_topo_real_node(const struct numa_topo *t, unsigned node)
{
        if (t->n_real == 0)
                return -1;
        return t->real_ids[node % t->n_real];
}

int numa_topo_bind_thread(const struct numa_topo *t, unsigned node)
{
        int real = numa_topo_real_node(t, node);

        /* One real node: every CPU is local, leave the scheduler alone. */
        if (real < 0 || t->n_real < 2)
                return 0;
        if (numa_run_on_node(real) < 0)
                return -errno;
        return 0;
}

void *numa_topo_alloc(const struct numa_topo *t, unsigned node, size_t size)
{
        int real = numa_topo_real_node(t, node);
        void *p;

        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;
        /* Huge pages where the kernel can give them: a 4 MiB write from
         * 4 KiB pages is a thousand scatter segments for the block layer
         * to map and the disk driver to describe; from 2 MiB pages it is
         * two (a virtio disk takes at most 254 per request).  Advice
         * only: without huge pages it is the same memory. */
        if (size >= NUMA_TOPO_HUGE_MIN)
                (void)madvise(p, size, MADV_HUGEPAGE);
        if (real >= 0 && t->n_real > 1) {
                unsigned long mask[NUMA_TOPO_MAX_NODES / (8 * sizeof(unsigned long)) + 1] = { 0 };

                mask[(unsigned)real / (8 * sizeof(unsigned long))] |= 1UL << ((unsigned)real % (8 * sizeof(unsigned long)));
                /* Best effort: without the policy the memory still works. */
                (void)mbind(p, size, MPOL_PREFERRED, mask, sizeof(mask) * 8, 0);
        }
        return p;
}

void numa_topo_free(void *p, size_t size)
{
        if (p)
                munmap(p, size);
}

int numa_topo_node_of(const struct numa_topo *t, const void *addr)
{
        int real = -1;

        if (t->n_real > 0 &&
            get_mempolicy(&real, NULL, 0, (void *)addr, MPOL_F_NODE | MPOL_F_ADDR) < 0)
                return -errno;
        if (t->fake && t->n_real <= 1)
                return (int)(((uintptr_t)addr >> 30) % t->n_nodes);
        for (unsigned i = 0; i < t->n_real; i++)
                if (t->real_ids[i] == real)
                        return (int)(i % t->n_nodes);
        return 0;
}
