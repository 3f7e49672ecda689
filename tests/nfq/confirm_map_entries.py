#!/usr/bin/env python3
"""Prints how many entries the kernel guard's confirm map of process PID
holds (nfq/kernel_guard.h: a hash map, 40-byte keys, 24-byte values),
found through the process's descriptors (/proc/PID/fdinfo: map_id) and
walked with BPF_MAP_GET_NEXT_KEY. Needs CAP_SYS_ADMIN (root). Usage:
confirm_map_entries.py PID"""
import ctypes
import os
import sys

BPF_MAP_GET_NEXT_KEY = 4
BPF_MAP_GET_FD_BY_ID = 14
BPF_MAP_TYPE_HASH = 1
NR_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
libc = ctypes.CDLL(None, use_errno=True)


def bpf(command, attr):
    result = libc.syscall(NR_BPF, command, ctypes.byref(attr), ctypes.sizeof(attr))
    return result, ctypes.get_errno()


def confirm_map_id(pid):
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        fields = {k.strip(): v.strip() for k, v in info.items()}
        if (fields.get("map_type") == str(BPF_MAP_TYPE_HASH) and fields.get("key_size") == "40"
                and fields.get("value_size") == "24"):
            return int(fields["map_id"])
    return None


def main():
    map_id = confirm_map_id(int(sys.argv[1]))
    if map_id is None:
        print("no confirm map", file=sys.stderr)
        return 1
    attr = (ctypes.c_uint8 * 128)()
    ctypes.c_uint32.from_buffer(attr, 0).value = map_id
    fd, err = bpf(BPF_MAP_GET_FD_BY_ID, attr)
    if fd < 0:
        print(f"BPF_MAP_GET_FD_BY_ID: {os.strerror(err)}", file=sys.stderr)
        return 1
    key = (ctypes.c_uint8 * 40)()
    next_key = (ctypes.c_uint8 * 40)()
    count = 0
    first = True
    while True:
        attr = (ctypes.c_uint8 * 128)()
        ctypes.c_uint32.from_buffer(attr, 0).value = fd
        ctypes.c_uint64.from_buffer(attr, 8).value = 0 if first else ctypes.addressof(key)
        ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(next_key)
        result, err = bpf(BPF_MAP_GET_NEXT_KEY, attr)
        if result != 0:
            break
        count += 1
        first = False
        ctypes.memmove(key, next_key, 40)
    os.close(fd)
    print(count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
