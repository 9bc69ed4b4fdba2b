#!/bin/bash
# UsageScannerBenchmark, the jar of 132df01 (before) and this session's (after: numbers with a fraction or exponent, a count under both names, documents counted),
# alternating, 3 rounds each, on core 1; gc profiler for B/op.
for r in 1 2 3; do for v in before after; do
  echo "== round $r $v"
  taskset -c 1 java -jar /tmp/s19/bench-$v.jar jmh -f 1 -wi 3 -w 1 -i 4 -r 1 -prof gc UsageScannerBenchmark 2>&1 \
    | grep -E '^UsageScannerBenchmark.scan[ :]' | grep -E 'scan  |gc.alloc.rate.norm'
done; done
