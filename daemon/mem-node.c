/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Node of a page of client memory (see mem-node.h).  One move_pages(2)
 * query per call; callers ask once per large write (1 MiB), so the cost is
 * one system call per megabyte at most, and none on one-node machines.
 */
#include "config.h"

#include <errno.h>
#include <numaif.h>
#include <stdint.h>

#include "mem-node.h"

int mem_node_init(struct mem_node *m, unsigned fake_nodes)
{
        int r = numa_topo_init(&m->topo, fake_nodes);

        if (r < 0)
                return r;
        m->stripes = m->topo.fake && m->topo.n_real <= 1 && m->topo.n_nodes > 1;
        m->ask_kernel = !m->stripes && m->topo.n_real > 1 && m->topo.n_nodes > 1;
        return 0;
}

unsigned mem_node_count(const struct mem_node *m)
{
        return m->topo.n_nodes;
}

/* Real node id -> topology node, as numa-topo maps worker nodes. */
static int topo_node(const struct mem_node *m, int real)
{
        for (unsigned i = 0; i < m->topo.n_real; i++)
                if (m->topo.real_ids[i] == real)
                        return (int)(i % m->topo.n_nodes);
        return -1;
}

int mem_node_real(const void *addr)
{
        void *page = (void *)((uintptr_t)addr & ~(uintptr_t)4095);
        int status = -EFAULT;

        /* nodes == NULL: report where the page is, move nothing. */
        if (move_pages(0, 1, &page, NULL, &status, 0) < 0)
                return -errno;
        return status;
}

int mem_node_of(const struct mem_node *m, const void *addr, uint64_t fd_offset)
{
        int real;

        if (m->stripes)
                return (int)((fd_offset / MEM_NODE_FAKE_STRIPE) % m->topo.n_nodes);
        if (!m->ask_kernel)
                return m->topo.n_nodes == 1 ? 0 : -1;
        real = mem_node_real(addr);
        return real < 0 ? -1 : topo_node(m, real);
}
