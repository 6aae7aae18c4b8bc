#!/usr/bin/env bash
# Generates the tree of many small files that docs/trees.md measures
# mirror against rsync with (a first copy into an empty directory).
# Usage: bench/smalltree.sh DIR [FILES] [KIND]
#   FILES (default 100000) files of 200 to 2,000 bytes (uniform, seeded),
#   about 29 per directory in two levels (3,500 directories for 100,000).
#   KIND "random" (default): bytes that do not compress (the worst case
#   for packs); "text": lines of words, which compress like source code.
set -euo pipefail
DIR=$1 N=${2:-100000} KIND=${3:-random}
mkdir -p "$DIR"
python3 - "$DIR" "$N" "$KIND" <<'PY'
import os, random, sys
root, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(42)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 9))) for _ in range(2000)]
ndirs = max(1, n // 29)
top = max(1, int(ndirs ** 0.5))
for i in range(n):
    d = i % ndirs
    sub = os.path.join(root, 'd%03d' % (d % top), 'e%05d' % d)
    os.makedirs(sub, exist_ok=True)
    size = rng.randint(200, 2000)
    if kind == 'text':
        out, m = [], 0
        while m < size:
            line = ' '.join(rng.choice(words) for _ in range(rng.randint(3, 12))) + '\n'
            out.append(line)
            m += len(line)
        data = ''.join(out).encode()[:size]
    else:
        data = rng.randbytes(size)
    with open(os.path.join(sub, 'f%06d.dat' % i), 'wb') as f:
        f.write(data)
    t = 1700000000 + i
    os.utime(os.path.join(sub, 'f%06d.dat' % i), (t, t))
PY
