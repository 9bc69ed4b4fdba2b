#!/bin/bash
# Does the access-log writer thread's scheduling cost the event loop's p99? Same jar three times:
# as is, its two logback writer threads at nice 19, and at SCHED_IDLE; beside Nginx.
J=/tmp/s13/bench.jar; P=/tmp/s13/proxy-base.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s13/nice; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf
rm -rf a b c
$S/start-proxy.sh $W/a 18991 $P "" java
$S/start-proxy.sh $W/b 18992 $P "" java
$S/start-proxy.sh $W/c 18993 $P "" java
sleep 8
pidof() { ss -ltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
writers() { grep -l '^AsyncAppender' /proc/$1/task/*/comm | cut -d/ -f5; }
for t in $(writers $(pidof 18992)); do renice -n 19 -p $t; done
for t in $(writers $(pidof 18993)); do chrt -i -p 0 $t; done
for p in 18992 18993; do for t in $(writers $(pidof $p)); do echo "$p $t $(cat /proc/$(pidof $p)/task/$t/comm) nice=$(awk '{print $19}' /proc/$(pidof $p)/task/$t/stat) policy=$(chrt -p $t | head -1)"; done; done
$S/warm.sh 18991 18992 18993 > /dev/null 2>&1
for c in 16 64; do ROUNDS=7 $S/wrk-ab.sh $c 5 plain=18991 nice19=18992 idle=18993 nginx=18902; done
for port in 18991 18992 18993; do kill $(pidof $port); done; sleep 3
nginx -s stop -c /tmp/s9/rig/nginx/nginx.conf; pkill -f 'bench.jar mock'
rm -rf $W/a $W/b $W/c /tmp/s9/rig/nginx/access.log
