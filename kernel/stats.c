// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary counters, per network namespace, in /proc/net/ossuary_stat.
 */

#include <linux/kernel.h>
#include <linux/percpu.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/sock.h>

#include "ossuary.h"

struct ossuary_mibs {
	long mib[OSSUARY_MIB_MAX];
};

struct ossuary_net {
	struct ossuary_mibs __percpu *mibs;
};

static unsigned int ossuary_net_id __read_mostly;

static const char * const ossuary_mib_names[OSSUARY_MIB_MAX] = {
	[OSSUARY_MIB_CURR_TX]		= "OssuaryCurrTx",
	[OSSUARY_MIB_CURR_RX]		= "OssuaryCurrRx",
	[OSSUARY_MIB_TOTAL_TX]		= "OssuaryTotalTx",
	[OSSUARY_MIB_TOTAL_RX]		= "OssuaryTotalRx",
	[OSSUARY_MIB_SEALED]		= "OssuaryRecordsSealed",
	[OSSUARY_MIB_OPENED]		= "OssuaryRecordsOpened",
	[OSSUARY_MIB_DECRYPT_ERR]	= "OssuaryDecryptErrors",
	[OSSUARY_MIB_PROTO_ERR]		= "OssuaryProtocolErrors",
	[OSSUARY_MIB_TRUNCATED]		= "OssuaryTruncations",
	[OSSUARY_MIB_KEY_UPDATE_TX]	= "OssuaryKeyUpdatesTx",
	[OSSUARY_MIB_KEY_UPDATE_RX]	= "OssuaryKeyUpdatesRx",
	/* where the plaintext went: the copy-count evidence */
	[OSSUARY_MIB_TX_COPIED]		= "OssuaryTxCopiedBytes",
	[OSSUARY_MIB_TX_ZEROCOPY]	= "OssuaryTxZeroCopyBytes",
	[OSSUARY_MIB_RX_DIRECT]		= "OssuaryRxDirectRecords",
	[OSSUARY_MIB_RX_BUFFERED]	= "OssuaryRxBufferedRecords",
	[OSSUARY_MIB_RX_SPLICED]	= "OssuaryRxSplicedBytes",
	/* softirq met more small records in a row than it opens at once */
	[OSSUARY_MIB_RX_DEFERRED]	= "OssuaryRxSoftirqDeferrals",
	/* DATA records opened straight from TCP's skbs, no staging copy */
	[OSSUARY_MIB_RX_SKB]		= "OssuaryRxSkbRecords",
	/* sealed bytes copied out of TCP into the record buffer */
	[OSSUARY_MIB_RX_STAGED]		= "OssuaryRxStagedBytes",
	/* plaintext copied from the record buffer to a reader */
	[OSSUARY_MIB_RX_COPIED]		= "OssuaryRxCopiedBytes",
};

/*
 * Per-CPU counters (as SNMP's and TLS_INC_STATS()): every socket of a
 * namespace updates them, from process context and softirq alike, and
 * a shared cache line would bounce between CPUs.  The CurrTx/CurrRx
 * gauges go up on one CPU and down on another: only their sum means
 * anything.
 */
void ossuary_stat_add(const struct sock *sk, enum ossuary_mib mib, long v)
{
	struct ossuary_net *on = net_generic(sock_net(sk), ossuary_net_id);

	this_cpu_add(on->mibs->mib[mib], v);
}

static int ossuary_stat_show(struct seq_file *seq, void *v)
{
	struct ossuary_net *on = net_generic(seq_file_single_net(seq),
					     ossuary_net_id);
	int i, cpu;

	for (i = 0; i < OSSUARY_MIB_MAX; i++) {
		long sum = 0;

		for_each_possible_cpu(cpu)
			sum += per_cpu_ptr(on->mibs, cpu)->mib[i];
		seq_printf(seq, "%-32s%ld\n", ossuary_mib_names[i], sum);
	}
	return 0;
}

static int __net_init ossuary_net_init(struct net *net)
{
	struct ossuary_net *on = net_generic(net, ossuary_net_id);

	on->mibs = alloc_percpu(struct ossuary_mibs);
	if (!on->mibs)
		return -ENOMEM;
	if (!proc_create_net_single("ossuary_stat", 0444, net->proc_net,
				    ossuary_stat_show, NULL)) {
		free_percpu(on->mibs);
		return -ENOMEM;
	}
	return 0;
}

static void __net_exit ossuary_net_exit(struct net *net)
{
	struct ossuary_net *on = net_generic(net, ossuary_net_id);

	remove_proc_entry("ossuary_stat", net->proc_net);
	free_percpu(on->mibs);
}

static struct pernet_operations ossuary_net_ops = {
	.init	= ossuary_net_init,
	.exit	= ossuary_net_exit,
	.id	= &ossuary_net_id,
	.size	= sizeof(struct ossuary_net),
};

int ossuary_stats_init(void)
{
	return register_pernet_subsys(&ossuary_net_ops);
}

void ossuary_stats_exit(void)
{
	unregister_pernet_subsys(&ossuary_net_ops);
}
