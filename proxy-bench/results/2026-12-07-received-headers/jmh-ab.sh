#!/bin/bash
# RelayRequestBenchmark (one chat completion end to end over loopback, the proxy in the JMH JVM),
# the bench jar of eba59a9 (before) and with ReceivedHeaders (after), alternating, 3 rounds; gc
# profiler for the bytes allocated per request.
for r in 1 2 3; do for v in before rh; do
  echo "== round $r $v"
  java -jar /tmp/s11/bench-$v.jar jmh -f 1 -wi 4 -w 2 -i 5 -r 2 -prof gc RelayRequestBenchmark 2>&1 \
    | grep -E '^RelayRequestBenchmark.relayOneRequest( |:gc.alloc.rate.norm)'
done; done
