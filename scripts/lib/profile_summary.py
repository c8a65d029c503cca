#!/usr/bin/env python3
"""Where a process's CPU went, from folded stacks (inferno-collapse-perf output): the share
of samples (weighted by cpu-clock time) whose stack passes through each category, for
scripts/loadtest.sh --profile. Categories overlap (a TCP send is also a syscall)."""
import sys

CATEGORIES = [
    ("in the kernel (syscalls)", ["entry_SYSCALL_64"], False),
    ("  TCP send (on loopback, includes the receiver's TCP input)", ["tcp_sendmsg"], False),
    ("  TCP receive", ["tcp_recvmsg"], False),
    ("  waking the peer (sock_def_readable)", ["sock_def_readable"], False),
    ("  epoll_wait", ["do_epoll_wait"], False),
    ("  scheduling, context switches", ["__schedule"], False),
    ("  copies between user and kernel", ["copy_user", "_copy_to_iter", "_copy_from_iter"], False),
    ("AES-GCM (ring)", ["aes_gcm", "aesni", "gcm_", "ring_core"], False),
    ("memcpy/memmove in user space", ["__memmove", "__memcpy"], False),
    ("malloc/free", ["malloc", "_int_free", "__libc_free", "cfree", "realloc", "_int_malloc", "__libc_malloc"], True),
    ("tokio channels (tokio::sync)", ["tokio::sync"], False),
]


def matches(frame, keys, exact):
    return frame in keys if exact else any(k in frame for k in keys)


def main(path):
    total = 0
    counts = [0] * len(CATEGORIES)
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not n.isdigit():
                continue
            n = int(n)
            total += n
            frames = stack.split(";")
            for i, (_, keys, exact) in enumerate(CATEGORIES):
                if any(matches(fr, keys, exact) for fr in frames):
                    counts[i] += n
    if total == 0:
        print("no samples")
        return
    for (name, _, _), c in zip(CATEGORIES, counts):
        print(f"{name:<62} {100 * c / total:5.1f} %")


if __name__ == "__main__":
    main(sys.argv[1])
