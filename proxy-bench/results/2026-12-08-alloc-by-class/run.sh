#!/bin/bash
# Exact heap bytes per request by class: the proxy on Epsilon GC (nothing is ever collected), a class
# histogram of everything allocated (-all) before and after a counted wrk run, the difference divided
# by the requests wrk made. JDK 17, proxy on core 1, mock and wrk on core 0, after a warm-up.
W=/tmp/s20/eps; cd $W; export KEYS_FILE=$W/keys.txt; S=/work/main/proxy-bench/scripts; P=${P:-/tmp/s20/proxy-base.jar}
taskset -c 0 java -Xms256m -jar /tmp/s20/bench-base.jar mock 18900 > mock.log 2>&1 & mock=$!
rm -rf p; $S/start-proxy.sh $W/p 18991 $P "" java -XX:+UnlockExperimentalVMOptions -XX:+UseEpsilonGC -Xms8g -Xmx8g -XX:-UseTLAB
sleep 6
taskset -c 0 wrk -t1 -c16 -d20s -s $S/post.lua http://127.0.0.1:18991/v1/chat/completions > warm.out
pid=$(ss -ltnp "sport = :18991" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
jcmd $pid GC.class_histogram -all > h1.txt
taskset -c 0 wrk -t1 -c16 -d10s -s $S/post.lua http://127.0.0.1:18991/v1/chat/completions > run.out
jcmd $pid GC.class_histogram -all > h2.txt
kill $pid $mock; sleep 1; rm -rf $W/p/logs
