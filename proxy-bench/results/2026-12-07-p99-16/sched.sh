#!/bin/bash
# p99 at 16 connections with the access log off: what else runs on the proxy's core. One proxy
# (this commit's jar, JDK 17 defaults, access log off, -Xlog:gc to a file), wrk -c16 for 14 s;
# perf sched on core 1 for 4 s in the middle; the GC log over the same run.
J=/tmp/s11/bench-82554ee.jar
P=/tmp/s11/proxy-clock.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s11/p16; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
unzip -p $P logback.xml | sed -E 's/(<logger +name="megallm\.access" +level=")[A-Za-z]+(")/\1OFF\2/' > $W/logback-off.xml
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf o; $S/start-proxy.sh $W/o 18993 $P "" java -Dlogback.configurationFile=$W/logback-off.xml -Xlog:gc:file=$W/gc.log
sleep 8; $S/warm.sh 18993 > /dev/null 2>&1
: > $W/gc.log.mark; gcstart=$(wc -l < $W/gc.log)
(taskset -c 0 wrk -t1 -c16 -d14s --latency -s $S/post.lua http://127.0.0.1:18993/v1/chat/completions > wrk16.out 2>&1 &)
sleep 5; perf sched record -C 1 -o $W/sched.data -- sleep 4 2>&1 | tail -1
sleep 7
tail -n +$((gcstart + 1)) $W/gc.log > gc-during.log
pid=$(ss -ltnp "sport = :18993" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); kill $pid; sleep 2
pkill -f 'bench.jar mock'
grep -E "Requests/sec|50%|99%|99.9" wrk16.out
echo "GC pauses during the run: $(grep -c Pause gc-during.log)"; grep Pause gc-during.log | head -3
perf sched timehist -i $W/sched.data -C 1 2>/dev/null > timehist.txt
# per thread: count of slices and run time on core 1
awk 'NR>3 && $2 ~ /\[/ {n[$3]++; r[$3]+=$NF} END {for (t in n) printf "%-40s slices %6d run ms %8.1f\n", t, n[t], r[t]}' timehist.txt | sort -k5 -n -r | head -12
rm -rf $W/o
