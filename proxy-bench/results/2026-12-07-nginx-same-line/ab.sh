#!/bin/bash
# Like-for-like access lines: Nginx as the harness runs it (combined format, a write per request)
# against the same Nginx writing a line with our access line's fields (unbuffered, and buffered
# as our batches are: 64 KB or 100 ms), beside the proxy as shipped; wrk-ab.sh rotating, 7 rounds.
J=/tmp/s13/bench.jar; P=/tmp/s13/proxy-base.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s13/ll; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c $W/nginx.conf
rm -rf a; $S/start-proxy.sh $W/a 18991 $P "" java
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
for c in 16 64; do ROUNDS=7 $S/wrk-ab.sh $c 5 proxy=18991 nginx=18902 nginx-line=18903 nginx-line-buf=18904; done
for f in a/logs/access.log access.log access-line.log access-line-buf.log; do
  echo "$f: $(wc -l < $f) lines, $(stat -c %s $f) bytes, $(( $(stat -c %s $f) / $(wc -l < $f) )) bytes a line"; tail -1 $f; done
kill $(ss -ltnp "sport = :18991" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); sleep 3
nginx -s stop -c $W/nginx.conf; pkill -f 'bench.jar mock'
rm -rf $W/a $W/access*.log
