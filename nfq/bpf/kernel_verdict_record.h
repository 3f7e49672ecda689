// The kernel verdict's ring record: the one layout written by
// nfq/bpf/kernel_verdict.bpf.c and read by nfq/kernel_verdict.h
// (KernelVerdictRecord, whose fields are asserted against these offsets).
// Plain C, included by both; a change here is a change of
// KERNEL_VERDICT_RECORD_VERSION, which the program writes into every record
// and the reader checks (a record of another layout is skipped, never read).
//
// The record is this header, then `packet_bytes` bytes of the packet from
// its IP header on.
#pragma once

#include <linux/types.h>

#define KERNEL_VERDICT_RECORD_VERSION 2

struct kernel_verdict_record {
  __u32 packet_bytes;
  __u32 ifindex;  // the interface the packet came in on
  __u64 time_ns;  // bpf_ktime_get_ns() when allowed
  __u32 source;   // KernelNameSource: 1 SNI, 2 Host
  __u32 version;  // KERNEL_VERDICT_RECORD_VERSION
  // The kernel guard's starts entry the program allowed with (KernelStart):
  // check 1's inputs, so the worker need not read the map again.
  __u32 start_seq;      // the SYN-ACK's acknowledgment number
  __u32 start_ifindex;  // the interface the SYN-ACK came in on
  __u64 start_time_ns;  // when the SYN-ACK was recorded
};

#ifdef __cplusplus
static_assert(sizeof(struct kernel_verdict_record) == 40, "kernel_verdict_record");
#else
_Static_assert(sizeof(struct kernel_verdict_record) == 40, "kernel_verdict_record");
#endif
