#!/bin/bash
# What-if, not shipped: the access log's writer thread (logback's AsyncAppender-Worker of the
# access log, the one whose CPU grows with the request rate) under SCHED_BATCH, which the kernel
# does not let preempt a running thread when it wakes. Two processes of the same jar (this code),
# JDK 17 defaults, on core 1 beside Nginx; `chrt -b -p 0 <tid>` on the second one's writer; then
# warm.sh and wrk-ab.sh, 5 rotating rounds of 5 s at 16, 64 and 256 connections.
S=/work/main/proxy-bench/scripts; R=/tmp/s9/rig; cd $R; export KEYS_FILE=$R/keys.txt; ulimit -n 20000
(taskset -c 0 java -Xms256m -jar /work/main/proxy-bench/target/megallm-proxy-bench.jar mock 18900 > mock.log 2>&1 &)
rm -f nginx/access.log; taskset -c 1 nginx -c $R/nginx/nginx.conf
rm -rf s1 s2; mkdir -p s1 s2
$S/start-proxy.sh $R/s1 18961 /tmp/s9/cur.jar "" java
$S/start-proxy.sh $R/s2 18962 /tmp/s9/cur.jar "" java
sleep 6
taskset -c 0 wrk -t1 -c16 -d3s -s $S/post.lua http://127.0.0.1:18962/v1/chat/completions > /dev/null
pid=$(ss -ltnpH "sport = :18962" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
# The access log's writer: the AsyncAppender worker that has run the most.
tid=$(for t in /proc/$pid/task/*; do [ "$(cat $t/comm)" = AsyncAppender-W ] && echo "$(awk '{print $1}' $t/schedstat) $(basename $t)"; done | sort -n | tail -1 | cut -d' ' -f2)
chrt -b -p 0 $tid
$S/warm.sh 18961 18962 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=5 $S/wrk-ab.sh $c 5 shipped=18961 batch=18962 nginx=18902; done
