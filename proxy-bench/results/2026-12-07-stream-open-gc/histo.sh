#!/bin/bash
# Live heap with 1,000 streams open: class histogram (a full GC first) of the proxy holding h2load's
# 1,000 SSE streams (200 events 50 ms apart), against the same process idle after them.
ulimit -n 20000; J=/tmp/s13/bench.jar; P=${P:-/tmp/s13/proxy-base.jar}
S=/work/main/proxy-bench/scripts
W=/tmp/s13/jfr; cd $W; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf ph; $S/start-proxy.sh $W/ph 18991 $P "" java
sleep 6; $S/warm.sh 18991 >/dev/null 2>&1
pid=$(ss -ltnp "sport = :18991" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
jcmd $pid GC.class_histogram > histo-idle.txt  # committed: its first 100 classes, histo-idle-top100.txt
(taskset -c 0 h2load --h1 -c1000 -n1000 -m1 -t1 -d body.json -H 'Content-Type: application/json' \
  -H 'Accept: text/event-stream' -H 'Authorization: Bearer client' -H 'X-Mock-Events: 200' -H 'X-Mock-Interval-Ms: 50' \
  http://127.0.0.1:18991/v1/chat/completions > h2load-held.out 2>&1 &)
sleep 4; jcmd $pid GC.class_histogram > histo-1000.txt  # committed: histo-1000-top100.txt
sleep 9; kill $pid; pkill -f 'bench.jar mock'; sleep 2; rm -rf $W/ph
